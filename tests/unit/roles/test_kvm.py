"""kvm role: domain XML parsing, minimal virsh changes, guest variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import Template
from pyinfra.api import Config, Inventory, State
from pyinfra.api.exceptions import DeployError

from deepseek_infra.facts.numa import parse_numactl_hardware
from deepseek_infra.hardware import Numa
from deepseek_infra.pinning import plan_vcpu_pinning
from roles import template_path
from roles.kvm.tasks import DOMAIN_TEMPLATE
from roles.kvm.defaults import KvmDefaults, KvmGuest
from roles.kvm.domain import parse_domain_xml, pinning_changes
from roles.kvm.facts import parse_libvirt_domain
from roles.settings import validate_inventory

HW = Path(__file__).resolve().parents[2] / "fixtures" / "hw"
NUMA = Numa.from_fact(parse_numactl_hardware((HW / "numactl/p5en48xl-h200x8.txt").read_text().splitlines()))
PLAN = plan_vcpu_pinning(NUMA, 4, 1, reserved_cpus=[48, 49, 144, 145])

# What libvirt 9 prints for a guest pinned by the role (trimmed to the managed parts).
PINNED_XML = """<domain type='kvm'>
  <name>g0</name>
  <memory unit='KiB'>16777216</memory>
  <vcpu placement='static'>4</vcpu>
  <memoryBacking><hugepages/></memoryBacking>
  <cputune>
    <vcpupin vcpu='0' cpuset='50'/>
    <vcpupin vcpu='1' cpuset='51'/>
    <vcpupin vcpu='2' cpuset='52'/>
    <vcpupin vcpu='3' cpuset='53'/>
    <emulatorpin cpuset='48-49,144-145'/>
  </cputune>
  <numatune><memory mode='strict' nodeset='1'/></numatune>
  <devices>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x97' slot='0x00' function='0x0'/></source>
    </hostdev>
  </devices>
</domain>"""


def render(guest: KvmGuest, domain_type: str = "kvm") -> str:
    from roles.kvm.tasks import _pci_parts

    template = Template(Path(template_path("roles.kvm", DOMAIN_TEMPLATE)).read_text())
    return template.render(guest=guest, gpus=[_pci_parts(g) for g in guest.gpus], domain_type=domain_type)


def test_plan_is_the_one_the_xml_holds():
    assert PLAN.vcpu_pins == {0: 50, 1: 51, 2: 52, 3: 53} and PLAN.emulator_cpus == (48, 49, 144, 145)


def test_parse_domain_xml():
    domain = parse_domain_xml(PINNED_XML)
    assert domain["vcpus"] == 4 and domain["memory_mib"] == 16384 and domain["hugepages"]
    assert domain["vcpupin"] == {0: [50], 1: [51], 2: [52], 3: [53]}
    assert domain["emulatorpin"] == [48, 49, 144, 145]
    assert domain["numatune"] == {"mode": "strict", "nodeset": [1]}
    assert domain["hostdevs"] == ["0000:97:00.0"]


def test_pinned_domain_needs_no_change():
    assert pinning_changes("g0", PLAN, parse_domain_xml(PINNED_XML), None) == []


def test_only_the_differing_settings_change():
    drifted = parse_domain_xml(PINNED_XML.replace("cpuset='52'", "cpuset='0-191'").replace("mode='strict'", "mode='interleave'"))
    assert pinning_changes("g0", PLAN, drifted, None) == [
        ["virsh", "vcpupin", "g0", "2", "52", "--config"],
        ["virsh", "numatune", "g0", "--mode", "strict", "--nodeset", "1", "--config"],
    ]


def test_running_guest_gets_live_pinning_but_not_a_live_memory_mode():
    config = parse_domain_xml(PINNED_XML)
    live = parse_domain_xml(PINNED_XML.replace("<emulatorpin cpuset='48-49,144-145'/>", "").replace("mode='strict'", "mode='preferred'"))
    assert pinning_changes("g0", PLAN, config, live) == [["virsh", "emulatorpin", "g0", "48-49,144-145", "--live"]]


def test_unknown_current_state_applies_everything():
    changes = pinning_changes("g0", PLAN, None, None)
    assert len(changes) == 4 + 2 and all(command[-1] == "--config" for command in changes)


def test_rendered_definition_round_trips():
    guest = KvmGuest(name="g0", vcpus=4, memory_mib=16384, gpus=("97:00.0",))
    domain = parse_domain_xml(render(guest))
    assert (domain["type"], domain["vcpus"], domain["memory_mib"], domain["hugepages"], domain["hostdevs"]) == (
        "kvm", 4, 16384, True, ["0000:97:00.0"]
    )
    assert domain["vcpupin"] == {} and domain["numatune"] is None  # placement is virsh's job
    tcg = parse_domain_xml(render(KvmGuest(name="g1", vcpus=1, memory_mib=512, hugepages=False), "qemu"))
    assert tcg["type"] == "qemu" and not tcg["hugepages"]


def test_libvirt_domain_fact_parsing():
    running = parse_libvirt_domain(["@@state", "running", "@@config", *PINNED_XML.splitlines(), "@@live", *PINNED_XML.splitlines()])
    assert running["exists"] and running["live"]["vcpus"] == 4
    off = parse_libvirt_domain(["@@state", "shut off", "@@config", *PINNED_XML.splitlines(), "@@live"])
    assert off["state"] == "shut off" and off["live"] is None
    assert parse_libvirt_domain(["@@state", "@@config", "@@live"])["exists"] is False


BAD = [
    ("guest-name", {"kvm_guests": [{"name": "bad name", "vcpus": 1, "memory_mib": 512}]}, "kvm_guests", "pattern"),
    ("guest-vcpus", {"kvm_guests": [{"name": "g", "vcpus": 0, "memory_mib": 512}]}, "kvm_guests", "greater than or equal to 1"),
    ("guest-memory", {"kvm_guests": [{"name": "g", "vcpus": 1, "memory_mib": 16}]}, "kvm_guests", "greater than or equal to 256"),
    ("guest-pci", {"kvm_guests": [{"name": "g", "vcpus": 1, "memory_mib": 512, "gpus": ["18:00"]}]}, "kvm_guests", "not a PCI address"),
    ("guest-unknown-key", {"kvm_guests": [{"name": "g", "vcpus": 1, "memory_mib": 512, "cpu": 3}]}, "kvm_guests", "extra"),
    ("guest-duplicate", {"kvm_guests": [{"name": "g", "vcpus": 1, "memory_mib": 512}] * 2}, "kvm_guests", "unique"),
    ("gpu-twice", {"kvm_guests": [{"name": "a", "vcpus": 1, "memory_mib": 512, "gpus": ["18:00.0"]},
                                  {"name": "b", "vcpus": 1, "memory_mib": 512, "gpus": ["0000:18:00.0"]}]}, "kvm_guests", "two guests"),
    ("domain-type", {"kvm_domain_type": "xen"}, "kvm_domain_type", "'kvm' or 'qemu'"),
    ("reserved", {"kvm_reserved_cpus_per_node": -1}, "kvm_reserved_cpus_per_node", "greater than or equal to 0"),
]


@pytest.mark.parametrize(("data", "field", "words"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_values_are_refused_naming_host_and_field(data, field, words):
    state = State(Inventory(([("good", {}), ("bad", data)], {})), Config())
    with pytest.raises(DeployError) as raised:
        validate_inventory(state)
    lines = [line.strip() for line in str(raised.value).splitlines()[1:]]
    assert any(line.startswith(f"bad: {field}:") for line in lines), str(raised.value)
    assert words.lower() in str(raised.value).lower()


def test_defaults_define_no_guest():
    assert KvmDefaults().kvm_guests == ()
