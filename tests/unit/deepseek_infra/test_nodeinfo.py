"""node.json: the typed reading renders the very bytes operators and the verify suite read.

The expected files in tests/fixtures/hw/node-json/ were rendered from the untyped
``HostHardware`` dict before the reading became ``deepseek_infra.hardware.Hardware``; the
same sections must still give the same file (a changed byte would be a spurious change on
every node, and would break readers of ``/etc/deepseek/node.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

from deepseek_infra.facts.cpu import parse_lscpu
from deepseek_infra.facts.gpu import parse_topology
from deepseek_infra.facts.host import HostHardware, parse_host_hardware
from deepseek_infra.facts.infiniband import parse_ibstat
from deepseek_infra.facts.numa import parse_numactl_hardware
from deepseek_infra.facts.storage import parse_lsblk_json
from deepseek_infra.facts.system import parse_os_release
from deepseek_infra.hardware import Hardware
from deepseek_infra.nodeinfo import node_facts_document, render_node_facts

HW = Path(__file__).resolve().parents[2] / "fixtures" / "hw"
CAPTURE = json.loads((HW / "gpu-host/h200-vm.capture.json").read_text())


def lines(relative: str) -> list[str]:
    return (HW / relative).read_text().splitlines()


LSBLK = (
    '{"blockdevices": [{"name": "nvme0n1", "type": "disk", "size": 3840755982336, "model": "SAMSUNG MZQL23T8HCLS-00A07 ",'
    ' "rota": false, "tran": "nvme", "mountpoint": null, "children": [{"name": "nvme0n1p1", "type": "part",'
    ' "size": 3840754933760, "model": null, "rota": false, "tran": "nvme", "mountpoint": "/data"}]},'
    ' {"name": "sda", "type": "disk", "size": 480103981056, "model": "MTFDDAK480TDS", "rota": "0", "tran": "sata",'
    ' "mountpoint": null}]}'
)


def dgx_sections() -> dict:
    """An 8x H200 node from the real captures: every section node.json reads is filled."""
    sections = parse_host_hardware([])
    sections.update({
        "hostname": "dgx-01",
        "gpu_inventory": [{"index": i, "name": "NVIDIA H200", "pci.bus_id": f"00000000:{0x18 + i:02X}:00.0",
                           "memory.total": 143771, "compute_cap": 9.0} for i in range(8)],
        "gpu_topology": parse_topology(lines("topo/distributedai-dgx-h200-x8-12nic.txt")),
        "nvidia_pci": [{"slot": f"0000:{0x18 + i:02x}:00.0", "class_id": "0302", "class_name": "3D controller",
                        "vendor_id": "10de", "device_id": "2335", "description": "NVIDIA Corporation",
                        "revision": "a1"} for i in range(8)],
        "cpu": parse_lscpu(lines("lscpu/p5en48xl-h200x8-xeon8488c-kvm.txt")),
        "numa": parse_numactl_hardware(lines("numactl/p5en48xl-h200x8.txt")),
        "ibstat": parse_ibstat(lines("ib/gpud-h100-node-ibstat-12ca-some-down.txt")),
        "block_devices": parse_lsblk_json([LSBLK]),
        "os_release": parse_os_release(["ID=ubuntu", 'VERSION_ID="22.04"', "VERSION_CODENAME=jammy"]),
        "kernel_release": "6.8.0-48-generic",
        "meminfo": {"MemTotal": 2097090564, "mem_total_mb": 2047940},
        "virtualization": {"container": None, "vm": "kvm"},
    })
    return sections


def test_real_h200_capture_renders_the_same_node_json():
    hardware = HostHardware().process(CAPTURE["commands"]["fact:HostHardware"]["stdout"].splitlines())
    assert isinstance(hardware, Hardware)
    rendered = render_node_facts(hardware.hostname or "h200", hardware)
    assert rendered == (HW / "node-json/h200-vm.node.json").read_text()


def test_full_node_renders_the_same_node_json():
    rendered = render_node_facts("dgx-01", Hardware.from_sections(dgx_sections()))
    assert rendered == (HW / "node-json/dgx-h200-synthetic.node.json").read_text()


def test_node_json_places_each_gpu_on_its_topology_node():
    document = node_facts_document("dgx-01", Hardware.from_sections(dgx_sections()))
    assert [gpu["numa_node"] for gpu in document["gpus"]] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [disk["name"] for disk in document["block_devices"]] == ["nvme0n1", "sda"]  # partitions left out
    assert document["memory_mb"] == 2047940 and len(document["numa_nodes"]) == 2
