"""The facts' parsers against a real GPU host, checked by the driver's own API (NVML).

tests/fixtures/hw/gpu-host/h200-vm.capture.json was written by `lab/capture.py` (run by
`lab/gpu_host_check.sh`) on a one-GPU NVIDIA H200 virtual machine (driver 580.159.04,
Ubuntu 24.04 image, no lspci/ibstat installed). It holds each fact command's real output
and NVML's answers, so every figure below is compared with what NVML said on that host,
not with values retyped from the same text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepseek_infra import engine
from deepseek_infra.versions import DriverVersion
from deepseek_infra.facts.gpu import GpuInventory, GpuTopology, NvidiaSmi
from deepseek_infra.facts.host import HostHardware
from deepseek_infra.hardware import Gpu, Hardware, Topology, Virtualization
from deepseek_infra.preflight import summarize_gpus
from deepseek_infra.facts.nvidia import NvidiaDriverState

CAPTURE = json.loads((Path(__file__).parents[3] / "fixtures/hw/gpu-host/h200-vm.capture.json").read_text())
NVML = CAPTURE["nvml"]


def output(name: str) -> list[str]:
    command = CAPTURE["commands"][name]
    assert command["rc"] == 0, f"{name}: captured rc {command['rc']}: {command['stderr']}"
    return command["stdout"].splitlines()


@pytest.fixture(scope="module")
def hardware() -> Hardware:
    return HostHardware().process(output("fact:HostHardware"))


def test_the_capture_holds_nvml_answers():
    assert "error" not in NVML and NVML["gpus"], NVML


def test_gpu_inventory_matches_nvml():
    inventory = GpuInventory().process(output("fact:GpuInventory"))
    assert len(inventory) == len(NVML["gpus"])
    for parsed, nvml in zip(inventory, NVML["gpus"], strict=True):
        assert parsed["index"] == nvml["index"]
        assert parsed["name"] == nvml["name"]
        assert parsed["uuid"] == nvml["uuid"]
        assert parsed["pci.bus_id"] == nvml["pci_bus_id"]
        assert parsed["memory.total"] == nvml["memory_total_mib"]
        assert f"{parsed['compute_cap']:.1f}" == nvml["compute_cap"]
        assert parsed["power.limit"] == nvml["power_limit_w"]
        assert parsed["driver_version"] == NVML["driver_version"]
        assert (parsed["persistence_mode"] == "Enabled") == bool(nvml["persistence_mode"])
        assert (parsed["mig.mode.current"] == "Enabled") == bool(nvml["mig_mode_current"])
        assert (parsed["ecc.mode.current"] == "Enabled") == bool(nvml["ecc_mode_current"])


def test_smi_table_matches_nvml():
    smi = NvidiaSmi().process(output("fact:NvidiaSmi"))
    assert smi["driver_version"] == NVML["driver_version"]
    assert smi["cuda_version"] == NVML["cuda_driver_version"]
    assert [gpu["bus_id"] for gpu in smi["gpus"]] == [gpu["pci_bus_id"] for gpu in NVML["gpus"]]
    assert [gpu["memory_total_mib"] for gpu in smi["gpus"]] == [gpu["memory_total_mib"] for gpu in NVML["gpus"]]
    assert [gpu["persistence"] for gpu in smi["gpus"]] == [bool(gpu["persistence_mode"]) for gpu in NVML["gpus"]]
    assert [gpu["power_cap_w"] for gpu in smi["gpus"]] == [gpu["power_limit_w"] for gpu in NVML["gpus"]]


def test_topology_with_ansi_header_and_gpu_numa_column():
    """The real header is wrapped in ANSI underline escapes and has a GPU NUMA ID column."""
    topology = GpuTopology().process(output("fact:GpuTopology"))
    assert "\x1b[4m" in CAPTURE["commands"]["fact:GpuTopology"]["stdout"]
    lscpu_cpus = int(next(line.split(":")[1] for line in output("lscpu") if line.startswith("CPU(s):")))
    assert [gpu["name"] for gpu in topology["gpus"]] == [f"GPU{gpu['index']}" for gpu in NVML["gpus"]]
    assert topology["gpus"][0]["cpus"] == list(range(lscpu_cpus))
    assert topology["gpus"][0]["numa_node"] == 0
    assert topology["nics"] == []


def test_driver_state_reads_the_loaded_module(hardware):
    state = NvidiaDriverState().process(output("fact:NvidiaDriverState"))
    assert state["smi"] == {"state": "ok", "version": DriverVersion.parse(NVML["driver_version"]), "message": ""}
    assert state["loaded_module"] == DriverVersion.parse(NVML["driver_version"])
    assert state["packages"] == {}  # the driver came with the image, not from Debian packages
    assert state["kernel_release"] == hardware.kernel_release


def test_host_hardware_in_one_round_trip(hardware):
    assert hardware.gpus == tuple(Gpu.from_fact(row) for row in GpuInventory().process(output("fact:GpuInventory")))
    assert hardware.topology == Topology.from_fact(GpuTopology().process(output("fact:GpuTopology")))
    # Tools the image lacks are reported as missing, not as "no devices".
    # (The capture predates the ib_sysfs section: a section the output lacks is reported as such.)
    assert hardware.unavailable == {"nvidia_pci": "lspci not found", "ibstat": "ibstat not found",
                                    "ib_sysfs": "section missing from output"}
    assert hardware.pci_devices == () and hardware.ib_ports == ()
    assert hardware.cpu.cpus == len(hardware.online.cpus) == 16
    assert hardware.numa.nodes[0].cpus == hardware.online.cpus
    assert hardware.memory.total_kb > 100 * 2**20  # kB: the VM's 128 GiB
    assert hardware.memory.total_mb == hardware.memory.total_kb // 1024
    assert hardware.os_release.id == "ubuntu"
    # No systemd-detect-virt in that image: the CPU's hypervisor bit tells the KVM guest, and
    # the image's /.dockerenv makes it a container, as systemd-detect-virt itself says on such VMs.
    assert hardware.virtualization == Virtualization(container="docker", vm="kvm")


def test_typed_gpus_match_nvml(hardware):
    """The typed reading of the real H200, field by field against the driver's own API."""
    assert len(hardware.gpus) == len(NVML["gpus"]) == 1
    for gpu, nvml in zip(hardware.gpus, NVML["gpus"], strict=True):
        assert (gpu.index, gpu.name, gpu.uuid, gpu.pci_bus_id) == (
            nvml["index"], nvml["name"], nvml["uuid"], nvml["pci_bus_id"])
        assert gpu.memory_total_mib == nvml["memory_total_mib"]
        assert f"{gpu.compute_capability:.1f}" == nvml["compute_cap"]
        assert gpu.power_limit_w == nvml["power_limit_w"] and gpu.driver_version == NVML["driver_version"]
    assert [gpu.name for gpu in hardware.topology.gpus] == [f"GPU{gpu['index']}" for gpu in NVML["gpus"]]
    assert hardware.topology.gpus[0].numa_node == 0 and len(hardware.numa.nodes) == 1
    # What preflight and the serving plan see on that host: the driver answers.
    summary = summarize_gpus(hardware)
    assert (summary.count, summary.source, summary.memory_mib) == (1, "driver", NVML["gpus"][0]["memory_total_mib"])
    assert summary.compute_capability == 9.0


def test_engine_device_policy_reaches_every_real_nvidia_node():
    """DeviceAllow= groups of a GPU engine unit allow every /dev/nvidia* node of the real host."""
    nodes = {}
    for line in output("dev-nvidia"):
        fields = line.split()
        if line.startswith("c") and len(fields) >= 10 and fields[-1].startswith("/dev/"):
            nodes[fields[-1]] = int(fields[4].rstrip(","))
    assert {"/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"} <= set(nodes)
    proc_devices = CAPTURE["commands"]["proc-devices"]["stdout"]
    assert engine.uncovered_device_nodes(engine.NVIDIA_DEVICE_GROUPS, proc_devices, nodes) == []
    # The old list without "char-nvidia" still reached major 195 through "nvidiactl" here;
    # "nvidia-frontend" (older drivers) does not exist on this one.
    assert "nvidia-frontend" not in engine.character_device_groups(proc_devices)
    assert engine.uncovered_device_nodes(("char-nvidia-uvm",), proc_devices, nodes) == ["/dev/nvidia0", "/dev/nvidiactl"]
