"""kvm (optional): libvirt, and GPU guests pinned to the host's NUMA layout.

For hosts in group ``kvm_hosts`` or with ``kvm_guests`` set. Each guest is defined from
data (vCPUs, memory, GPUs passed through by PCI address, hugepage backing) and placed with
``deepseek_infra.pinning.plan_vcpu_pinning``: vCPUs 1:1 on one NUMA node (its GPUs' node when it
fits), emulator threads on that node's reserved CPUs, memory bound to the node. The
placement is applied with virsh (``--config``, ``--live`` when running), changing only
what the domain does not have already.
"""

from __future__ import annotations

import dataclasses
import json
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, files, systemd

from deepseek_node import paths
from deepseek_infra.cpulist import format_cpulist
from deepseek_infra.facts import host as host_facts
from deepseek_infra.facts.host import remembered_fact
from deepseek_infra.hardware import Hardware, Numa, NumaNode
from deepseek_infra.operations import sync
from deepseek_infra.pinning import VcpuPlan, _housekeeping, plan_vcpu_pinning, smt_siblings
from roles import template_path
from roles.kvm.defaults import KvmDefaults, KvmGuest
from roles.kvm.facts import LibvirtDomain
from roles.settings import refuse_missing_hardware
from roles.kvm.operations import guest_defined, guest_pinning
from roles.tuning.defaults import TuningDefaults
from roles.tuning.facts import PciLocality

GUEST_DIR = f"{paths.CONFIG_DIR}/kvm"
RECORD_FILE = f"{paths.CONFIG_DIR}/kvm-guests.json"  # the placement of every guest (verify reads it)
DOMAIN_TEMPLATE = f"{GUEST_DIR}/domain.xml"


def applies(config: KvmDefaults) -> bool:
    """The role runs on hosts in group ``kvm_hosts`` or with guests in their data."""
    return bool(config.kvm_guests) or "kvm_hosts" in host.groups


def plan_guests(config: KvmDefaults, tuning: TuningDefaults, hardware: Hardware, locality: dict) -> dict[str, VcpuPlan]:
    """Every guest's placement, each on CPUs no other guest has; DeployError naming host and field."""
    numa = hardware.numa
    if not numa.nodes:  # numactl not installed yet (base installs it in the same run): lscpu's view
        numa = Numa(nodes={n: NumaNode(cpus=cpus) for n, cpus in hardware.cpu.numa_nodes.items()})
    node_cpus = {n: list(cpus) for n, cpus in numa.node_cpus().items()}
    if config.kvm_guests and not node_cpus:
        raise DeployError(f"{host.name}: kvm_guests: neither numactl nor lscpu reports a NUMA node; no host was changed")
    per_node = tuning.tuning_housekeeping_cpus_per_node if config.kvm_reserved_cpus_per_node is None else config.kvm_reserved_cpus_per_node
    gpu_nodes = {gpu["slot"]: gpu["numa_node"] for gpu in locality.get("gpus", [])}
    try:
        housekeeping = set(_housekeeping(node_cpus, per_node, smt_siblings(hardware.cpu, node_cpus)))
    except ValueError as error:
        raise DeployError(f"{host.name}: kvm_reserved_cpus_per_node: {error}; no host was changed") from None
    plans: dict[str, VcpuPlan] = {}
    taken: set[int] = set()
    for guest in config.kvm_guests:
        nodes = [gpu_nodes.get(gpu) for gpu in guest.gpus if gpu_nodes.get(gpu) is not None]
        try:
            plan = plan_vcpu_pinning(numa, guest.vcpus, nodes[0] if nodes else None, housekeeping | taken, guest.allow_span)
        except ValueError as error:
            raise DeployError(f"{host.name}: kvm_guests: guest {guest.name}: {error}; no host was changed") from None
        # Reserved CPUs double as emulator homes in the planner; other guests' vCPUs are not ones.
        emulator = tuple(cpu for cpu in plan.emulator_cpus if cpu not in taken)
        if not emulator:
            raise DeployError(f"{host.name}: kvm_guests: guest {guest.name}: no CPU left for its emulator threads; no host was changed")
        plans[guest.name] = dataclasses.replace(plan, emulator_cpus=emulator)
        taken |= set(plan.vcpu_pins.values())
    return plans


@deploy("kvm: guests")
def install(config: KvmDefaults, tuning: TuningDefaults) -> None:
    hardware = host_facts.hardware(host)
    refuse_missing_hardware(host, hardware, config)  # the guests' GPU addresses
    plans = plan_guests(config, tuning, hardware, remembered_fact(host, PciLocality))
    _check_hugepages(config, hardware)
    apt.packages(
        name="Ensure libvirt and QEMU are installed", packages=list(config.kvm_packages),
        extra_install_args="--no-install-recommends", update=True, cache_time=3600,
    )
    systemd.service(name="Ensure libvirtd is enabled and running", service="libvirtd", running=True, enabled=True)
    files.directory(name=f"Ensure {GUEST_DIR} exists", path=GUEST_DIR, user="root", group="root", mode="0750")
    for guest in config.kvm_guests:
        plan = plans[guest.name]
        logger.info(f"{host.name}: guest {guest.name}: " + plan.explain().replace("\n", "; "))
        exists = host.get_fact(LibvirtDomain, domain=guest.name)["exists"]
        xml = sync.template_synced(
            name=f"Ensure {GUEST_DIR}/{guest.name}.xml defines guest {guest.name}",
            src=template_path(__package__, DOMAIN_TEMPLATE), dest=f"{GUEST_DIR}/{guest.name}.xml", mode="0640",
            guest=guest, gpus=[_pci_parts(gpu) for gpu in guest.gpus], domain_type=config.kvm_domain_type,
        )
        redefine = xml.will_change or not exists
        guest_defined(name=f"Ensure guest {guest.name} is defined", domain=guest.name,
                      xml_path=f"{GUEST_DIR}/{guest.name}.xml", redefine=exists and xml.will_change)
        guest_pinning(name=f"Ensure guest {guest.name} is pinned to node(s) {format_cpulist(plan.numa_nodes)}",
                      domain=guest.name, plan=plan, redefined=redefine)
    sync.file_synced(
        name=f"Ensure {RECORD_FILE} records every guest's placement",
        src=StringIO(_record(config, plans)), dest=RECORD_FILE, mode="0644",
    )


def _pci_parts(address: str) -> dict[str, str]:
    domain, bus, rest = address.split(":")
    slot, function = rest.split(".")
    return {"domain": domain, "bus": bus, "slot": slot, "function": function}


def _check_hugepages(config: KvmDefaults, hardware: Hardware) -> None:
    wanted_mib = sum(guest.memory_mib for guest in config.kvm_guests if guest.hugepages)
    have_mib = hardware.hugepages.total_mib
    if wanted_mib > have_mib:
        logger.warning(
            f"{host.name}: kvm_guests: hugepage-backed guests need {wanted_mib} MiB, the running kernel's "
            f"hugepage pools hold {have_mib} MiB; the guests will not start until kernel_hugepages_* "
            "provides it (kernel role)"
        )


def _record(config: KvmDefaults, plans: dict[str, VcpuPlan]) -> str:
    guests: dict[str, dict] = {}
    for guest in config.kvm_guests:
        plan = plans[guest.name]
        guests[guest.name] = {
            "guest": guest.model_dump(mode="json"),
            "vcpu_pins": {str(vcpu): cpu for vcpu, cpu in plan.vcpu_pins.items()},
            "emulator_cpus": format_cpulist(plan.emulator_cpus),
            "numa_nodes": format_cpulist(plan.numa_nodes),
            "numa_mode": plan.numa_mode,
            "notes": list(plan.notes),
        }
    return json.dumps({"domain_type": config.kvm_domain_type, "guests": guests}, indent=2, sort_keys=True) + "\n"


__all__ = ["KvmGuest", "applies", "install", "plan_guests"]