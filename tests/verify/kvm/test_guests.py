"""Guests of the kvm role carry the planned pinning in their libvirt definition.

Runs only on hosts where the kvm role placed guests (/etc/deepseek/kvm-guests.json, the
record of the role's data and plans); every other host is skipped with that reason.
"""

from __future__ import annotations

import json

import pytest

from deepseek_infra.cpulist import parse_cpulist
from deepseek_infra.facts.numa import parse_numactl_hardware
from roles.kvm.tasks import RECORD_FILE
from roles.kvm.domain import parse_domain_xml


def _name(host) -> str:
    return host.backend.hostname


@pytest.fixture(scope="module")
def guests(host) -> dict:
    record = host.file(RECORD_FILE)
    if not record.exists:
        pytest.skip(f"{_name(host)}: no kvm role data on this host ({RECORD_FILE} absent): not a KVM host")
    guests = json.loads(record.content_string)["guests"]
    if not guests:
        pytest.skip(f"{_name(host)}: kvm role ran without kvm_guests: nothing to check")
    return guests


def test_libvirtd_running(host, guests):
    assert host.service("libvirtd").is_running, f"{_name(host)}: libvirtd: expected running, found stopped"


def test_domain_xml_carries_the_pinning(host, guests):
    for name, guest in guests.items():
        with host.sudo():
            xml = host.run(f"virsh dumpxml --inactive {name}")
        assert xml.rc == 0, f"{_name(host)}: guest {name}: expected a libvirt domain, found none ({xml.stderr.strip()})"
        domain = parse_domain_xml(xml.stdout)
        where = f"{_name(host)}: guest {name}"
        pins = {int(vcpu): [cpu] for vcpu, cpu in guest["vcpu_pins"].items()}
        assert domain["vcpupin"] == pins, f"{where}: vcpupin: expected {pins}, found {domain['vcpupin']}"
        emulator = parse_cpulist(guest["emulator_cpus"])
        assert domain["emulatorpin"] == emulator, f"{where}: emulatorpin: expected {emulator}, found {domain['emulatorpin']}"
        numatune = {"mode": guest["numa_mode"], "nodeset": parse_cpulist(guest["numa_nodes"])}
        assert domain["numatune"] == numatune, f"{where}: numatune: expected {numatune}, found {domain['numatune']}"
        data = guest["guest"]
        found = (domain["vcpus"], domain["memory_mib"], domain["hugepages"], domain["hostdevs"])
        wanted = (data["vcpus"], data["memory_mib"], data["hugepages"], sorted(data["gpus"]))
        assert found == wanted, f"{where}: (vcpus, memory MiB, hugepages, GPUs): expected {wanted}, found {found}"


def test_pinning_respects_the_numa_layout(host, guests):
    nodes = parse_numactl_hardware(host.check_output("numactl --hardware").splitlines())["nodes"]
    taken: dict[int, str] = {}
    for name, guest in guests.items():
        where = f"{_name(host)}: guest {name}"
        local = {cpu for node in parse_cpulist(guest["numa_nodes"]) for cpu in nodes[node]["cpus"]}
        vcpu_cpus = set(guest["vcpu_pins"].values())
        assert len(vcpu_cpus) == len(guest["vcpu_pins"]), f"{where}: two vCPUs share a host CPU: {guest['vcpu_pins']}"
        assert vcpu_cpus <= local, f"{where}: vCPUs on {sorted(vcpu_cpus - local)}, outside node(s) {guest['numa_nodes']}"
        emulator = set(parse_cpulist(guest["emulator_cpus"]))
        assert not emulator & vcpu_cpus, f"{where}: emulator threads share CPUs {sorted(emulator & vcpu_cpus)} with vCPUs"
        for cpu in vcpu_cpus:
            assert cpu not in taken, f"{where}: host CPU {cpu} is also a vCPU of guest {taken[cpu]}"
            taken[cpu] = name
    for name, guest in guests.items():
        shared = set(parse_cpulist(guest["emulator_cpus"])) & set(taken)
        assert not shared, f"{_name(host)}: guest {name}: emulator CPUs {sorted(shared)} are vCPUs of other guests"
