"""Operations of the kvm role: a guest's definition and its CPU/memory placement."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from deepseek_infra.pinning import VcpuPlan
from roles.kvm.domain import pinning_changes
from roles.kvm.facts import LibvirtDomain


@operation()
def guest_defined(domain: str, xml_path: str, redefine: bool = False):
    """
    Define the libvirt domain ``domain`` from ``xml_path`` when it does not exist (or ``redefine``).

    + domain: domain name (must match the XML's <name>)
    + xml_path: the domain XML on the host
    + redefine: define again although it exists (its XML file changed in this run)
    """
    if host.get_fact(LibvirtDomain, domain=domain)["exists"] and not redefine:
        host.noop(f"domain {domain} is defined")
        return
    yield StringCommand("virsh", "define", QuoteString(xml_path))


@operation()
def guest_pinning(domain: str, plan: VcpuPlan, redefined: bool = False):
    """
    Pin ``domain``'s vCPUs, emulator threads and memory as ``plan`` says, changing only what differs.

    + domain: libvirt domain name
    + plan: ``deepseek_infra.pinning.plan_vcpu_pinning`` result
    + redefined: the domain is (re)defined earlier in this run, so its current pinning
      cannot be read now: apply every setting (``--config``)

    Reads the current pinning from ``virsh dumpxml`` (inactive, and live when running).
    A running guest also gets ``--live`` vCPU/emulator pinning; its memory policy changes
    at its next start.
    """
    current = host.get_fact(LibvirtDomain, domain=domain)
    config = None if redefined or not current["exists"] else current["config"]
    live = None if redefined else current["live"]
    changes = pinning_changes(domain, plan, config, live)
    if not changes:
        host.noop(f"domain {domain} is pinned as planned")
        return
    for command in changes:
        yield StringCommand(*(QuoteString(word) for word in command))
