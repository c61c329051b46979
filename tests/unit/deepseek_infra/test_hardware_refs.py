"""Hardware named in settings, checked against hosts read from real captures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepseek_infra.facts.cpu import parse_lscpu
from deepseek_infra.facts.gpu import parse_gpu_query_csv
from deepseek_infra.facts.host import HostHardware
from deepseek_infra.facts.infiniband import parse_ibstat
from deepseek_infra.facts.numa import parse_numactl_hardware
from deepseek_infra.hardware import Hardware
from deepseek_infra.hardware_refs import reference_problems
from roles.kvm.defaults import KvmGuest

HW = Path(__file__).resolve().parents[2] / "fixtures" / "hw"


def lines(relative: str) -> list[str]:
    return (HW / relative).read_text().splitlines()


@pytest.fixture(scope="module")
def h200_vm() -> Hardware:
    """A real H200 VM (tests/fixtures/hw/gpu-host): 1 GPU, 16 CPUs, 1 NUMA node, eth0, no lspci."""
    capture = json.loads((HW / "gpu-host/h200-vm.capture.json").read_text())
    return HostHardware().process(capture["commands"]["fact:HostHardware"]["stdout"].splitlines())


@pytest.fixture(scope="module")
def dgx_h200() -> Hardware:
    """8x H200 from nvidia-smi, 2 NUMA nodes of the p5en capture, the 12-CA ibstat capture."""
    return Hardware.from_sections({
        "gpu_inventory": parse_gpu_query_csv(lines("smi/distributedai-h200-x8-query-csv.txt")),
        "nvidia_pci": [{"slot": f"0000:{0x18 + i:02x}:00.0", "class_id": "0302", "vendor_id": "10de",
                        "device_id": "2335"} for i in range(8)],
        "cpu": parse_lscpu(lines("lscpu/p5en48xl-h200x8-xeon8488c-kvm.txt")),
        "numa": parse_numactl_hardware(lines("numactl/p5en48xl-h200x8.txt")),
        "ibstat": parse_ibstat(lines("ib/gpud-h100-node-ibstat-12ca-some-down.txt")),
        "network": {"ens5": {"state": "up", "type": "ether"}, "lo": {"type": "loopback"}},
    })


def keys(problems):
    return [key for key, _ in problems]


def test_references_the_host_has_pass(h200_vm, dgx_h200):
    assert reference_problems(h200_vm, {"tuning_gpu_indices": (0,), "kernel_isolated_cpus": "2-15",
                                        "tuning_nccl_env": {"NCCL_SOCKET_IFNAME": "eth"}}) == []
    assert reference_problems(dgx_h200, {
        "tuning_gpu_indices": tuple(range(8)), "kernel_isolated_cpus": "4-47,52-95",
        "kernel_cmdline_extra": {"hugepages": "0:16,1:16", "nohz_full": "4-47"},
        "kvm_guests": (KvmGuest(name="g", vcpus=4, memory_mib=4096, gpus=("1a:00.0",)),),
        "netcheck_ib_device": "mlx5_0", "tuning_nccl_env": {"NCCL_SOCKET_IFNAME": "=ens5"},
    }) == []


def test_a_gpu_index_the_host_lacks_is_named(h200_vm, dgx_h200):
    (problem,) = reference_problems(h200_vm, {"tuning_gpu_indices": (0, 1)})
    assert problem == ("tuning_gpu_indices", "GPU index(es) 1 not on this host (it has GPUs 0); "
                                             "use indices from nvidia-smi -L, or None")
    assert keys(reference_problems(dgx_h200, {"tuning_gpu_indices": (7, 8)})) == ["tuning_gpu_indices"]


def test_gpu_indices_before_any_driver_come_from_the_pci_gpus():
    fresh = Hardware.from_sections({"gpu_inventory": [], "nvidia_pci": [
        {"slot": "0000:18:00.0", "class_id": "0302", "vendor_id": "10de", "device_id": "2330"},
        {"slot": "0000:2a:00.0", "class_id": "0302", "vendor_id": "10de", "device_id": "2330"}]})
    assert reference_problems(fresh, {"tuning_gpu_indices": (0, 1)}) == []
    assert "it has GPUs 0, 1" in reference_problems(fresh, {"tuning_gpu_indices": (2,)})[0][1]
    no_gpu = Hardware.from_sections({"gpu_inventory": [], "nvidia_pci": []})
    assert "it has no NVIDIA GPU" in reference_problems(no_gpu, {"tuning_gpu_indices": (0,)})[0][1]


def test_unreadable_sections_are_not_judged():
    assert reference_problems(Hardware.from_sections({"unavailable": {
        "nvidia_pci": "lspci not found", "gpu_inventory": "nvidia-smi not found", "ib_sysfs": "missing"}}), {
        "tuning_gpu_indices": (3,), "kernel_isolated_cpus": "1-900", "netcheck_ib_device": "mlx5_9",
    }) == []


def test_isolated_cpus_beyond_the_online_ones_are_named(h200_vm):
    (problem,) = reference_problems(h200_vm, {"kernel_isolated_cpus": "8-31"})
    assert problem == ("kernel_isolated_cpus", "'8-31' names CPU(s) 16-31, which this host does not have "
                                               "(online CPUs: 0-15)")
    (problem,) = reference_problems(h200_vm, {"kernel_isolated_cpus": "1-15"})
    assert "isolates every CPU but the boot CPU" in problem[1]


def test_kernel_parameters_naming_cpus_or_numa_nodes_are_checked(h200_vm, dgx_h200):
    problems = reference_problems(h200_vm, {"kernel_cmdline_extra": {
        "isolcpus": "managed_irq,domain,4-20", "rcu_nocbs": "2-7", "quiet": None}})
    assert problems == [("kernel_cmdline_extra", "isolcpus=managed_irq,domain,4-20 names CPU(s) 16-20, which this "
                                                 "host does not have (online CPUs: 0-15)")]
    (problem,) = reference_problems(dgx_h200, {"kernel_cmdline_extra": {"hugepages": "0:16,1:16,3:16"}})
    assert problem == ("kernel_cmdline_extra", "hugepages=0:16,1:16,3:16 names NUMA node(s) 3; this host has 0, 1")
    assert reference_problems(dgx_h200, {"kernel_cmdline_extra": {"hugepages": "64"}}) == []


def test_a_guest_gpu_address_the_host_lacks_is_named(dgx_h200):
    guest = KvmGuest(name="g1", vcpus=4, memory_mib=4096, gpus=("0000:18:00.0", "0000:99:00.0"))
    (problem,) = reference_problems(dgx_h200, {"kvm_guests": (guest,)})
    assert problem[0] == "kvm_guests"
    assert problem[1].startswith("guest g1: no NVIDIA device at PCI 0000:99:00.0 on this host (its GPUs: 0000:18:00.0,")


def test_an_hca_the_host_lacks_is_named_unless_the_ib_test_is_off(dgx_h200, h200_vm):
    (problem,) = reference_problems(dgx_h200, {"netcheck_ib_device": "mlx5_12", "netcheck_ib": True})
    assert problem[0] == "netcheck_ib_device" and "mlx5_0" in problem[1] and "mlx5_12" in problem[1]
    assert reference_problems(dgx_h200, {"netcheck_ib_device": "mlx5_12", "netcheck_ib": False}) == []
    no_rdma = Hardware.from_sections({"ib_sysfs": [], "ibstat": []})
    assert "has none" in reference_problems(no_rdma, {"netcheck_ib_device": "mlx5_0"})[0][1]


def test_nccl_socket_interfaces_the_host_lacks_are_named(h200_vm):
    (problem,) = reference_problems(h200_vm, {"tuning_nccl_env": {"NCCL_SOCKET_IFNAME": "eth,ib"}})
    assert problem == ("tuning_nccl_env", "NCCL_SOCKET_IFNAME=eth,ib: no interface starting with 'ib' on this "
                                          "host (interfaces: eth0, ifb0, ifb1)")
    assert keys(reference_problems(h200_vm, {"tuning_nccl_env": {"NCCL_SOCKET_IFNAME": "=eth"}})) == ["tuning_nccl_env"]
    assert reference_problems(h200_vm, {"tuning_nccl_env": {"NCCL_SOCKET_IFNAME": "^docker,lo"}}) == []
