"""HostHardware: the batched script's syntax and plumbing, dispatch, the typed reading, and a real run here."""

import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from deepseek_infra.cpulist import parse_cpulist
from deepseek_infra.facts.host import (
    HARDWARE_SECTIONS,
    MISSING_TOOL_RC,
    UNAVAILABLE_KEY,
    HostHardware,
    parse_host_hardware,
    section_script,
    split_sections,
)
from deepseek_infra.hardware import SECTIONS, Cpu, Hardware, HugepagePool, Topology

HW = Path(__file__).parents[3] / "fixtures" / "hw"
SH = shutil.which("sh")  # absolute, so a test may replace PATH


def run_sh(command: str, env: dict | None = None) -> list[str]:
    result = subprocess.run([SH, "-c", command], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_command_is_valid_sh_syntax():
    result = subprocess.run([SH, "-n", "-c", HostHardware().command()], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_command_reuses_each_fact_command_and_covers_every_section():
    command = HostHardware().command()
    for name, fact_class in HARDWARE_SECTIONS.items():
        assert section_script(name, fact_class()) in command, name
    assert set(HARDWARE_SECTIONS) == {
        "hostname", "nvidia_pci", "gpu_topology", "gpu_inventory", "cpu", "online", "numa", "ibstat", "ib_sysfs",
        "meminfo", "hugepages", "cmdline", "kernel_release", "block_devices", "network",
        "virtualization", "os_release",
    }


@pytest.fixture
def stubbed_path(tmp_path):
    """A PATH holding fixture-backed nvidia-smi/lscpu/numactl/ibstat and the few coreutils
    the script needs; lspci, lsblk and systemd-detect-virt are deliberately absent."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("cat", "grep", "head", "uname", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    stubs = {
        "nvidia-smi": 'case "$1" in topo) cat "{hw}/topo/distributedai-dgx-h200-x8-12nic.txt";; '
                      '*) cat "{hw}/smi/distributedai-h200-x8-query-csv.txt";; esac',
        "lscpu": 'cat "{hw}/lscpu/p5en48xl-h200x8-xeon8488c-kvm.txt"',
        "numactl": 'cat "{hw}/numactl/p5en48xl-h200x8.txt"',
        "ibstat": 'cat "{hw}/ib/gpud-h100-node-ibstat-12ca-some-down.txt"',
    }
    for tool, body in stubs.items():
        stub = bin_dir / tool
        stub.write_text("#!/bin/sh\n" + body.format(hw=HW) + "\n")
        stub.chmod(0o755)
    return {"PATH": str(bin_dir), "LC_ALL": "C"}


def test_batched_run_dispatches_real_captures(stubbed_path):
    lines = run_sh(HostHardware().command(), env=stubbed_path)
    hardware = HostHardware().process(lines)
    assert isinstance(hardware, Hardware)

    # Tools that are absent fall back to the fact default and say why.
    assert hardware.pci_devices == ()
    assert hardware.block_devices == ()
    assert hardware.unavailable == {"nvidia_pci": "lspci not found", "block_devices": "lsblk not found"}

    # topo/distributedai-dgx-h200-x8-12nic.txt (tabs survive the shell round trip)
    topology = hardware.topology
    assert len(topology.gpus) == 8 and len(topology.nics) == 12
    assert list(topology.gpus[0].cpus) == parse_cpulist("0-55,112-167")
    assert list(topology.gpus[4].cpus) == parse_cpulist("56-111,168-223")
    assert [gpu.numa_node for gpu in topology.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert topology.gpus[0].links["GPU1"] == "NV18" and topology.gpus[0].links["NIC0"] == "PXB"
    assert topology.nics[0].device == "mlx5_0"

    # smi/distributedai-h200-x8-query-csv.txt
    assert len(hardware.gpus) == 8
    assert {(gpu.name, gpu.memory_total_mib) for gpu in hardware.gpus} == {("NVIDIA H200", 143771)}

    # lscpu/ and numactl/ p5en48xl captures
    cpu = hardware.cpu
    assert (cpu.cpus, cpu.sockets, cpu.cores_per_socket, cpu.threads_per_core) == (192, 2, 48, 2)
    assert cpu.model_name == "Intel(R) Xeon(R) Platinum 8488C" and cpu.hypervisor_vendor == "KVM"
    assert cpu.physical_cores == 96
    numa = hardware.numa
    assert list(numa.nodes[0].cpus) == parse_cpulist("0-47,96-143")
    assert (numa.nodes[1].memory_mb, numa.nodes[1].free_mb) == (1024023, 616110)
    assert numa.distances == {0: {0: 10, 1: 21}, 1: {0: 21, 1: 10}}

    # ib/gpud-h100-node-ibstat-12ca-some-down.txt (no final newline in the capture)
    ports = {port.ca: port for port in hardware.ib_ports}
    assert len(ports) == 12
    assert ports["mlx5_0"].rate_gbps == 400 and ports["mlx5_0"].link_layer == "InfiniBand"
    assert [ca for ca, port in ports.items() if port.state == "Down"] == ["mlx5_2", "mlx5_7", "mlx5_8"]

    # systemd-detect-virt is missing from the stub PATH: the section still succeeds.
    assert "virtualization" not in hardware.unavailable


def marked(name: str, rc: int, lines: list[str]) -> list[str]:
    return [f"@@section {name} rc={rc}", *lines]


def test_dispatch_of_proc_captures_and_failed_sections():
    lines = [
        "stray text before the first marker",
        *marked("meminfo", 0, (HW / "proc/blog-k8s-master-256gb-1g-hugepages-meminfo.txt").read_text().splitlines()),
        *marked("cmdline", 0, (HW / "proc/l2fwd-nv-gpudirect-server-cmdline.txt").read_text().splitlines()),
        *marked("kernel_release", 0, ["5.4.0-53-lowlatency"]),
        *marked("hugepages", 0, ["/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages:16",
                                 "/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages:15"]),
        *marked("virtualization", 0, ["vm=none", "container=none", "cgroup="]),
        *marked("os_release", 0, ["ID=ubuntu", 'VERSION_ID="22.04"', "VERSION_CODENAME=jammy"]),
        # nvidia-smi installed but the driver is not loaded: message on stdout, rc 9
        *marked("gpu_topology", 9, ["NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."]),
        # a CSV row with a missing value makes the GPU parser raise
        *marked("gpu_inventory", 0, ["index, name", "0"]),
        *marked("ibstat", MISSING_TOOL_RC, []),
        # a fresh node: no ibstat yet, but the kernel lists its HCA ports
        *marked("ib_sysfs", 0, ["mlx5_0\t1\t4: ACTIVE\t5: LinkUp\t400 Gb/sec (4X NDR)\tInfiniBand\tMT4129\t28.39.1002"]),
        *marked("numa", 0, []),  # ran fine, printed nothing: default, not an error
    ]
    hardware = parse_host_hardware(lines)

    assert hardware["meminfo"]["MemTotal"] == 264069988 and hardware["meminfo"]["hugepage_size_kb"] == 1048576
    assert ("hugepages", "16") in hardware["cmdline"]["params"]
    assert hardware["kernel_release"] == "5.4.0-53-lowlatency"
    assert hardware["hugepages"]["sizes_kb"] == {1048576: {"total": 16, "free": 15}}
    assert hardware["virtualization"] == {"container": None, "vm": None}
    assert hardware["os_release"]["codename"] == "jammy"
    assert hardware["gpu_topology"] == {"gpus": [], "nics": []}
    assert hardware["gpu_inventory"] == [] and hardware["ibstat"] == []
    assert hardware["numa"] == {"nodes": {}, "distances": {}}
    assert [(p["ca"], p["state"], p["rate_gbps"]) for p in hardware["ib_sysfs"]] == [("mlx5_0", "Active", 400)]

    unavailable = hardware[UNAVAILABLE_KEY]
    assert unavailable["gpu_topology"] == "exited with 9"
    assert unavailable["gpu_inventory"].startswith("unparseable output: ")
    assert unavailable["ibstat"] == "ibstat not found"
    assert unavailable["nvidia_pci"] == "section missing from output"
    assert set(unavailable) == {"gpu_topology", "gpu_inventory", "ibstat", "nvidia_pci", "cpu",
                                "block_devices", "network", "hostname", "online"}

    # The same sections, typed: values as parsed, fallbacks empty, the reasons kept.
    typed = Hardware.from_sections(hardware)
    assert (typed.memory.total_kb, typed.memory.total_mb, typed.memory.hugepage_size_kb) == (264069988, 257880, 1048576)
    assert ("hugepages", "16") in typed.cmdline.params
    assert typed.kernel_release == "5.4.0-53-lowlatency"
    assert typed.hugepages.sizes_kb == {1048576: HugepagePool(total=16, free=15)} and typed.hugepages.total_mib == 16384
    assert typed.virtualization.container is None and typed.os_release.codename == "jammy"
    assert typed.topology == Topology() and typed.gpus == () and typed.ib_ports == () and typed.cpu == Cpu()
    assert typed.unavailable == unavailable


def test_split_sections_keeps_tabs_and_blank_lines():
    sections = split_sections(["@@section a rc=0", "\tx\t", "", "@@section b rc=1"])
    assert sections == {"a": (0, ["\tx\t", ""]), "b": (1, [])}


def test_default_is_every_section_default():
    default = HostHardware().default()
    assert default.topology == Topology() and default.memory.total_mb is None and default.hostname == ""
    assert set(default.unavailable) == set(HARDWARE_SECTIONS)


def test_every_section_has_one_typed_attribute():
    assert set(SECTIONS) == set(HARDWARE_SECTIONS)
    assert sorted(attribute for attribute, _ in SECTIONS.values()) == sorted(
        name for name in Hardware.__dataclass_fields__ if name != "unavailable")


@pytest.fixture(scope="module")
def this_machine_output() -> list[str]:
    return run_sh(HostHardware().command())


@pytest.fixture(scope="module")
def this_machine(this_machine_output) -> Hardware:
    return HostHardware().process(this_machine_output)


def test_real_run_on_this_machine(this_machine):
    assert this_machine.cpu.cpus > 0
    assert this_machine.memory.total_mb > 0
    assert this_machine.kernel_release == platform.release()
    assert this_machine.os_release.id == platform.freedesktop_os_release()["ID"]
    assert this_machine.network["lo"].type == "loopback"
    assert this_machine.cmdline.raw == Path("/proc/cmdline").read_text().strip()
    if shutil.which("nvidia-smi"):
        pytest.skip("nvidia-smi is installed here: the no-GPU expectations do not apply")
    assert this_machine.topology == Topology()
    assert this_machine.gpus == ()
    assert this_machine.unavailable["gpu_topology"] == "nvidia-smi not found"


# Sections whose output does not change between two runs a moment apart.
STABLE_SECTIONS = ["cpu", "hugepages", "cmdline", "kernel_release", "block_devices",
                   "virtualization", "os_release"]


@pytest.mark.parametrize("name", STABLE_SECTIONS)
def test_batched_section_equals_single_fact(this_machine_output, this_machine, name):
    fact = HARDWARE_SECTIONS[name]()
    tool = fact.requires_command()
    if tool and not shutil.which(tool):
        pytest.skip(f"{tool} is not installed on this machine")
    command = fact.command()
    single = fact.process(run_sh(command if isinstance(command, str) else command.get_raw_value()))
    batched = parse_host_hardware(this_machine_output)
    assert batched[name] == single, f"{name}: batched {batched[name]!r} != single {single!r}"
    assert name not in batched[UNAVAILABLE_KEY]
    # hardware_part builds a lone section the way the whole reading does
    attribute, build = SECTIONS[name]
    assert build(single) == getattr(this_machine, attribute)
