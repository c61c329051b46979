"""deepseek_infra.hardware: the typed reading from real captures, and the rule that no role
reads a hardware section by string key."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from deepseek_infra.facts.cpu import parse_lscpu, parse_online
from deepseek_infra.facts.gpu import parse_gpu_query_csv, parse_topology
from deepseek_infra.facts.infiniband import parse_ibstat
from deepseek_infra.facts.memory import parse_hugepages_sysfs, parse_meminfo
from deepseek_infra.facts.numa import parse_numactl_hardware
from deepseek_infra.hardware import (
    PART_SECTION,
    SECTIONS,
    Cpu,
    Gpu,
    Hardware,
    Hostname,
    IbPorts,
    Memory,
    Numa,
    OsRelease,
    PciDevice,
    Virtualization,
    build_part,
)

REPO = Path(__file__).resolve().parents[3]
HW = REPO / "tests" / "fixtures" / "hw"


def lines(relative: str) -> list[str]:
    return (HW / relative).read_text().splitlines()


# --- the typed sections from the captures in tests/fixtures/hw/ ------------------------------


def test_h200_csv_gives_typed_gpus():
    gpus = tuple(Gpu.from_fact(row) for row in parse_gpu_query_csv(lines("smi/distributedai-h200-x8-query-csv.txt")))
    assert len(gpus) == 8 and {(gpu.name, gpu.memory_total_mib) for gpu in gpus} == {("NVIDIA H200", 143771)}
    assert gpus[0].index is None and gpus[0].compute_capability is None  # not in that query: not reported


def test_wide_h100_csv_keeps_identifiers_as_text_and_numbers_as_numbers():
    (gpu,) = [Gpu.from_fact(row) for row in parse_gpu_query_csv(lines("smi/nvgpuexp-h100-vm-x1-query-csv-wide.txt"))]
    assert (gpu.index, gpu.name, gpu.pci_bus_id) == (0, "NVIDIA H100 80GB HBM3", "00000000:00:09.0")
    assert (gpu.memory_total_mib, gpu.compute_capability, gpu.power_limit_w) == (81559, 9.0, 700.0)
    assert (gpu.driver_version, gpu.mig_mode, gpu.ecc_mode) == ("590.48.01", "Disabled", "Enabled")


def test_p5en_numa_and_cpu():
    numa = Numa.from_fact(parse_numactl_hardware(lines("numactl/p5en48xl-h200x8.txt")))
    assert sorted(numa.nodes) == [0, 1] and numa.nodes[1].memory_mb == 1024023 and numa.nodes[1].free_mb == 616110
    assert numa.distances[0][1] == 21 and len(numa.node_cpus()[0]) == 96
    cpu = Cpu.from_fact(parse_lscpu(lines("lscpu/p5en48xl-h200x8-xeon8488c-kvm.txt")))
    assert (cpu.cpus, cpu.physical_cores, cpu.hypervisor_vendor) == (192, 96, "KVM")
    assert cpu.numa_nodes[0] == numa.nodes[0].cpus  # lscpu and numactl agree on the guest's layout
    assert "avx512f" in cpu.flags


def test_memory_only_numa_nodes_have_no_cpus_to_pin():
    numa = Numa.from_fact({"nodes": {0: {"cpus": [0, 1], "memory_mb": 10, "free_mb": 5},
                                     1: {"cpus": [], "memory_mb": 96000, "free_mb": 96000}}})
    assert numa.node_cpus() == {0: (0, 1)} and numa.nodes[1].memory_mb == 96000


def test_meminfo_and_hugepages():
    memory = Memory.from_fact(parse_meminfo(lines("proc/blog-k8s-master-256gb-1g-hugepages-meminfo.txt")))
    assert (memory.total_kb, memory.total_mb) == (264069988, 257880)
    assert (memory.hugepages_total, memory.hugepage_size_kb) == (10, 1048576)
    assert Memory.from_fact({"MemTotal": 2048}).total_mb == 2  # the convenience key follows MemTotal
    hardware = Hardware.from_sections({"hugepages": parse_hugepages_sysfs([
        "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages:16",
        "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages:512",
        "/sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages:8",
    ])})
    assert hardware.hugepages.total_mib == 16 * 1024 + 512 * 2 and hardware.hugepages.per_node == {1: {1048576: 8}}


def test_ibstat_ports_in_order():
    ports = IbPorts.from_fact(parse_ibstat(lines("ib/gpud-h100-node-ibstat-12ca-some-down.txt")))
    assert len(ports) == 12 and ports[0].ca == "mlx5_0" and ports[0].rate_gbps == 400
    assert [port.ca for port in ports if port.state == "Down"] == ["mlx5_2", "mlx5_7", "mlx5_8"]


def test_pci_classes():
    gpu, switch = (PciDevice.from_fact({"slot": "0000:18:00.0", "class_id": "0302"}),
                   PciDevice.from_fact({"slot": "0000:05:00.0", "class_id": "0680"}))
    assert gpu.is_gpu and not gpu.is_nvswitch and switch.is_nvswitch and not switch.is_gpu
    hardware = Hardware(pci_devices=(gpu, switch))
    assert hardware.pci_gpus == (gpu,) and hardware.has_nvswitch


def test_topology_links_and_online_cpus():
    hardware = Hardware.from_sections({
        "gpu_topology": parse_topology(lines("topo/llmaction-a800-sxm-x8-4nic.txt")),
        "online": parse_online(["0-127", "0-1"]),
    })
    assert [gpu.numa_node for gpu in hardware.topology.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert hardware.topology.gpus[1].links["NIC0"] == "PIX" and hardware.topology.nics[0].device == "mlx5_0"
    assert hardware.online.cpus == tuple(range(128)) and hardware.online.nodes == (0, 1)


def test_sections_are_frozen():
    hardware = Hardware.from_sections({"virtualization": {"container": "docker", "vm": None}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        hardware.virtualization = Virtualization()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        hardware.virtualization.container = None  # type: ignore[misc]


def test_missing_sections_read_as_not_reported():
    hardware = Hardware.from_sections({})
    assert hardware == Hardware()
    assert (hardware.hostname, hardware.gpus, hardware.cpu.physical_cores, hardware.memory.total_mb) == ("", (), None, None)
    assert hardware.os_release == OsRelease() and hardware.virtualization.container is None


def test_every_part_class_is_a_section_of_the_reading():
    hardware = Hardware.from_sections({"hostname": "gpu-01", "os_release": {"id": "debian", "codename": "bookworm"}})
    for kind, section in PART_SECTION.items():
        assert section in SECTIONS
        assert isinstance(hardware.part(kind), kind), kind
    assert hardware.part(Hostname) == "gpu-01" and hardware.part(OsRelease).codename == "bookworm"
    assert build_part(Virtualization, {"container": "lxc", "vm": None}) == Virtualization(container="lxc")


# --- no string-key access to a hardware reading ----------------------------------------------

# The sections of the untyped reading this replaced, and the accessors it had.
SECTION_KEYS = frozenset(SECTIONS) | {"unavailable"}
REMOVED_ACCESSORS = frozenset({"hardware_section", "host_hardware"})
READING_CALLS = frozenset({"hardware", "prepared_hardware", "hardware_part"}) | REMOVED_ACCESSORS
SCANNED = ("roles", "fleet", "deploy", "deepseek_infra")
# Where the raw sections are parsed (facts) and turned into the typed reading.
RAW_SECTIONS_HOME = ("deepseek_infra/facts/", "deepseek_infra/hardware.py")


def _names_a_reading(node: ast.expr) -> bool:
    """``hardware``, ``self.hardware``, ``hw``, ``prepared_hardware(host)``, ``reading[...]``..."""
    while isinstance(node, (ast.Subscript, ast.Call)) and not (
        isinstance(node, ast.Call) and _call_name(node) in READING_CALLS
    ):
        node = node.value if isinstance(node, ast.Subscript) else node.func
    if isinstance(node, ast.Call):
        return True
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return "hardware" in name.lower() or name in {"hw", "reading"}


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def string_key_reads(source: str) -> list[str]:
    """``line: text`` of every read of a hardware section by string key in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        key = None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            key, base = node.slice.value, node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and node.args and isinstance(node.args[0], ast.Constant)):
            key, base = node.args[0].value, node.func.value
        if key in SECTION_KEYS and _names_a_reading(base):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        if isinstance(node, ast.Call) and _call_name(node) in REMOVED_ACCESSORS:
            found.append(f"{node.lineno}: {ast.unparse(node)}")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [f"{node.lineno}: import {alias.name}" for alias in node.names if alias.name in REMOVED_ACCESSORS]
    return found


def test_the_check_catches_each_way_a_section_was_read():
    offending = '''
from deepseek_infra.facts.host import hardware_section
a = hardware(host)["virtualization"]["container"]
b = prepared_hardware(host)["virtualization"]
c = hardware.get("numa") or {}
d = self.hardware["gpu_inventory"]
e = hardware_section(host, "os_release")
f = hw["meminfo"]
'''
    assert sorted(int(hit.split(":")[0]) for hit in string_key_reads(offending)) == [2, 3, 4, 5, 6, 7, 8]
    unrelated = '''
release = state["kernel_release"]       # NvidiaDriverState, not the hardware reading
wanted["hugepages"] = list(pool.cmdline)
record = {"numa": 1}["numa"]
container = hardware(host).virtualization.container
'''
    assert string_key_reads(unrelated) == []


def test_no_role_reads_a_hardware_section_by_string_key():
    offenders = []
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative.startswith(RAW_SECTIONS_HOME):
                continue
            offenders += [f"{relative}:{hit}" for hit in string_key_reads(path.read_text())]
    assert not offenders, "read the typed attribute instead (deepseek_infra/hardware.py):\n" + "\n".join(offenders)
