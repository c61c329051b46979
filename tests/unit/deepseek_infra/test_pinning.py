"""deepseek_infra.pinning against the real captures in tests/fixtures/hw/ (expected facts: SOURCES.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from deepseek_infra.cpulist import format_cpulist, parse_cpulist
from deepseek_infra.facts.cpu import parse_lscpu
from deepseek_infra.facts.gpu import parse_topology
from deepseek_infra.facts.numa import parse_numactl_hardware
from deepseek_infra.hardware import Cpu, Numa, NumaNode, Topology, TopologyGpu
from deepseek_infra.pinning import (
    engine_binds_per_rank, plan_pinning, plan_vcpu_pinning, rank_placement, smt_siblings, virsh_commands,
)

HW = Path(__file__).resolve().parents[2] / "fixtures" / "hw"


def capture(relative: str) -> list[str]:
    return (HW / relative).read_bytes().decode().split("\n")


def topo(name: str) -> Topology:
    return Topology.from_fact(parse_topology(capture(f"topo/{name}")))


def numa_capture(relative: str) -> Numa:
    return Numa.from_fact(parse_numactl_hardware(capture(relative)))


SOCKET0_224, SOCKET1_224 = "0-55,112-167", "56-111,168-223"

# SOURCES.md, topo/ table: per GPU (NUMA node, that node's CPUs, "nearest NIC" column).
EXPECTED = {
    "distributedai-dgx-h200-x8-12nic.txt": [
        (0, SOCKET0_224, ["mlx5_0"]), (0, SOCKET0_224, ["mlx5_3"]),
        (0, SOCKET0_224, ["mlx5_4"]), (0, SOCKET0_224, ["mlx5_5"]),
        (1, SOCKET1_224, ["mlx5_6"]), (1, SOCKET1_224, ["mlx5_9"]),
        (1, SOCKET1_224, ["mlx5_10"]), (1, SOCKET1_224, ["mlx5_11"]),
    ],
    "gengwg-dgx1-topo-mp.txt": [
        (0, "0-19,40-59", ["mlx5_0"]), (0, "0-19,40-59", ["mlx5_0"]),
        (0, "0-19,40-59", ["mlx5_1"]), (0, "0-19,40-59", ["mlx5_1"]),
        (1, "20-39,60-79", ["mlx5_2"]), (1, "20-39,60-79", ["mlx5_2"]),
        (1, "20-39,60-79", ["mlx5_3"]), (1, "20-39,60-79", ["mlx5_3"]),
    ],
    # No NIC legend: the NICs (PHB to GPU6 only) have no device name to report.
    "go-gpuallocator-17-rtx4090-x8-2nic-nolegend.txt": [(0, SOCKET0_224, [])] * 4
    + [(1, SOCKET1_224, [])] * 4,
    # PIX: GPU1-NIC0, GPU3-NIC1, GPU7-NIC2/NIC3; other same-socket pairs NODE.
    "llmaction-a800-sxm-x8-4nic.txt": [
        (0, "0-31,64-95", ["mlx5_0", "mlx5_1"]), (0, "0-31,64-95", ["mlx5_0"]),
        (0, "0-31,64-95", ["mlx5_0", "mlx5_1"]), (0, "0-31,64-95", ["mlx5_1"]),
    ]
    + [(1, "32-63,96-127", ["mlx5_2", "mlx5_3"])] * 4,
    "nccl-tests-333-b200-x8-16nic-MANGLED.txt": [
        (0, SOCKET0_224, ["mlx5_4"]), (0, SOCKET0_224, ["mlx5_7"]),
        (0, SOCKET0_224, ["mlx5_8"]), (0, SOCKET0_224, ["mlx5_9"]),
        (1, SOCKET1_224, ["mlx5_10"]), (1, SOCKET1_224, ["mlx5_13"]),
        (1, SOCKET1_224, ["mlx5_14"]), (1, SOCKET1_224, ["mlx5_15"]),
    ],
    "nvgpuexp-h100-vm-x1-ansi.txt": [(0, "0-19", [])],
    "puget-wrx90-rtx6000ada-x2.txt": [(0, "0-23", ["mlx5_0", "mlx5_1"])] * 2,
    "slurmv4-aihub0007-hgx-h100-x8-12nic.txt": [
        (0, "0-191", [nic])
        for nic in ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_5", "mlx5_6", "mlx5_7", "mlx5_8", "mlx5_11"]
    ],
}


def test_every_topology_capture_has_expected_facts():
    assert sorted(path.name for path in (HW / "topo").iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize(
    ("name", "index"),
    [(name, index) for name, gpus in EXPECTED.items() for index in range(len(gpus))],
)
def test_single_gpu_plan_matches_sources(name, index):
    node, node_cpus, nics = EXPECTED[name][index]
    plan = plan_pinning(topo(name), None, None, [index], housekeeping_cpus_per_node=0)
    assert plan.numa_nodes == (node,), f"{name} GPU{index}"
    assert plan.cpu_affinity == node_cpus, f"{name} GPU{index}"
    assert plan.numa_policy == "bind"
    assert plan.nics_by_gpu == {f"GPU{index}": tuple(nics)}, f"{name} GPU{index}"
    assert plan.nccl_ib_hca == ("=" + ",".join(nics) if nics else "")


def test_distributedai_all_gpus_span_both_sockets():
    plan = plan_pinning(topo("distributedai-dgx-h200-x8-12nic.txt"), None, None)
    assert plan.gpus == tuple(f"GPU{i}" for i in range(8))
    assert (plan.numa_nodes, plan.numa_mask, plan.numa_policy) == ((0, 1), "0-1", "interleave")
    # Default housekeeping: the first 2 CPUs of each node (no lscpu, so no SMT siblings).
    assert plan.housekeeping_cpus == (0, 1, 56, 57)
    assert plan.cpu_affinity == "2-55,58-223"
    assert plan.nccl_ib_hca == "=mlx5_0,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_9,mlx5_10,mlx5_11"
    assert "interleave" in plan.explain() and "GPU5: nearest NIC(s) mlx5_9" in plan.explain()


def test_first_four_gpus_bind_to_socket0():
    plan = plan_pinning(topo("distributedai-dgx-h200-x8-12nic.txt"), None, None, [0, 1, 2, 3])
    assert (plan.numa_nodes, plan.numa_policy, plan.numa_mask) == ((0,), "bind", "0")
    assert plan.cpu_affinity == "2-55,112-167"
    assert plan.nccl_ib_hca == "=mlx5_0,mlx5_3,mlx5_4,mlx5_5"


def test_shared_nearest_nics_are_listed_once_in_gpu_order():
    plan = plan_pinning(topo("llmaction-a800-sxm-x8-4nic.txt"), None, None)
    assert plan.nccl_ib_hca == "=mlx5_0,mlx5_1,mlx5_2,mlx5_3"
    plan = plan_pinning(topo("gengwg-dgx1-topo-mp.txt"), None, None, [7, 6, 0])
    assert plan.nccl_ib_hca == "=mlx5_3,mlx5_0"


def test_slurmv4_single_numa_hgx_keeps_everything_on_node0():
    plan = plan_pinning(topo("slurmv4-aihub0007-hgx-h100-x8-12nic.txt"), None, None)
    assert (plan.numa_nodes, plan.numa_policy) == ((0,), "bind")
    assert plan.housekeeping_cpus == (0, 1)
    assert plan.cpu_affinity == "2-191"
    # mlx5_3/4 and mlx5_9/10 are the bond cards no GPU is PIX to.
    assert not {"mlx5_3", "mlx5_4", "mlx5_9", "mlx5_10"} & set(plan.nccl_ib_hca[1:].split(","))


def test_unnamed_nics_are_warned_about_not_guessed():
    plan = plan_pinning(topo("go-gpuallocator-17-rtx4090-x8-2nic-nolegend.txt"), None, None, [6])
    assert plan.nics_by_gpu == {"GPU6": ()}
    assert plan.nccl_ib_hca == ""
    assert plan.warnings and "NIC0, NIC1" in plan.warnings[0]


def test_puget_topology_with_its_numactl_keeps_housekeeping_out():
    numa = numa_capture("numactl/puget-wrx90-tr7965wx-rtx6000ada-x2.txt")
    plan = plan_pinning(topo("puget-wrx90-rtx6000ada-x2.txt"), numa, None)
    assert plan.housekeeping_cpus == (0, 1)
    assert plan.cpu_affinity == "2-23"
    assert not set(parse_cpulist(plan.cpu_affinity)) & set(plan.housekeeping_cpus)

    guest = plan_vcpu_pinning(numa, 8, plan.numa_nodes[0], plan.housekeeping_cpus)
    assert list(guest.vcpu_pins.values()) == list(range(2, 10))
    assert not set(guest.vcpu_pins.values()) & set(plan.housekeeping_cpus)
    assert guest.emulator_cpus == (0, 1)
    # 22 CPUs are left after housekeeping: a 23-vCPU guest cannot be placed.
    with pytest.raises(ValueError, match="23 vCPUs.*node 0.*22 CPUs available"):
        plan_vcpu_pinning(numa, 23, 0, plan.housekeeping_cpus)


def test_numa_node_from_cpu_affinity_when_topology_has_none():
    captured = topo("distributedai-dgx-h200-x8-12nic.txt")
    topology = Topology(gpus=tuple(dataclasses.replace(gpu, numa_node=None) for gpu in captured.gpus), nics=captured.nics)
    numa = Numa(nodes={0: NumaNode(cpus=tuple(parse_cpulist(SOCKET0_224))),
                       1: NumaNode(cpus=tuple(parse_cpulist(SOCKET1_224)))})
    assert plan_pinning(topology, numa, None, [5]).numa_nodes == (1,)
    assert plan_pinning(topology, numa, None, [2]).numa_nodes == (0,)
    with pytest.raises(ValueError, match="GPU5: no NUMA Affinity"):
        plan_pinning(topology, Numa(), None, [5])


def test_bad_gpu_selection_is_rejected():
    with pytest.raises(ValueError, match="GPU9"):
        plan_pinning(topo("puget-wrx90-rtx6000ada-x2.txt"), None, None, [9])
    with pytest.raises(ValueError, match="no GPUs"):
        plan_pinning(Topology(), None, None)


def test_housekeeping_may_not_take_a_whole_node():
    with pytest.raises(ValueError, match="all 20 CPUs of NUMA node 0"):
        plan_pinning(topo("nvgpuexp-h100-vm-x1-ansi.txt"), None, None, housekeeping_cpus_per_node=20)


# --- per-rank placement -------------------------------------------------------------------


def test_each_rank_gets_its_gpus_node_minus_housekeeping():
    """DGX H200 (GPUs 0-3 on socket 0, 4-7 on socket 1): each rank's node and that node's
    engine CPUs, while the unit-wide affinity spans both sockets."""
    plan = plan_pinning(topo("distributedai-dgx-h200-x8-12nic.txt"), None, None)
    assert plan.rank_numa_nodes == (0, 0, 0, 0, 1, 1, 1, 1)
    assert plan.rank_cpus == ("2-55,112-167",) * 4 + ("58-111,168-223",) * 4
    assert plan.cpu_affinity == "2-55,58-223"  # the unit's bound holds every rank's CPUs
    for cpus in plan.rank_cpus:
        assert set(parse_cpulist(cpus)) <= set(parse_cpulist(plan.cpu_affinity))
    assert "GPU5 -> node 1 CPUs 58-111,168-223" in plan.explain()


def test_rank_lists_follow_the_selected_gpus():
    plan = plan_pinning(topo("gengwg-dgx1-topo-mp.txt"), None, None, [7, 6, 0])
    assert plan.rank_numa_nodes == (1, 1, 0)


def test_ambiguous_gpu_node_leaves_no_rank_lists():
    """A GPU with no NUMA Affinity whose CPU affinity covers both nodes: no single node to
    bind its rank to, so no per-rank lists (the unit-wide plan still stands)."""
    captured = topo("distributedai-dgx-h200-x8-12nic.txt")
    everywhere = tuple(parse_cpulist(SOCKET0_224) + parse_cpulist(SOCKET1_224))
    gpus = (dataclasses.replace(captured.gpus[0], numa_node=None, cpus=everywhere), *captured.gpus[1:])
    numa = Numa(nodes={0: NumaNode(cpus=tuple(parse_cpulist(SOCKET0_224))),
                       1: NumaNode(cpus=tuple(parse_cpulist(SOCKET1_224)))})
    plan = plan_pinning(Topology(gpus=gpus, nics=captured.nics), numa, None)
    assert plan.numa_nodes == (0, 1) and plan.rank_numa_nodes == () and plan.rank_cpus == ()
    assert rank_placement(plan, "vllm", nodes=1, install="venv", on_cpu=False) == (
        False, "a GPU's NUMA node is ambiguous (no NUMA Affinity): unit-wide")


@pytest.mark.parametrize(("engine", "nodes", "install", "on_cpu", "supported", "reason"), [
    ("vllm", 1, "venv", False, True, "--numa-bind-nodes"),
    ("sglang", 1, "venv", False, True, "--numa-node"),
    ("sglang", 2, "venv", False, True, "--numa-node"),
    ("vllm", 2, "venv", False, False, "not Ray"),
    ("vllm", 1, "container", False, False, "container method"),
    ("vllm", 1, "venv", True, False, "the CPU"),
    ("transformers", 1, "venv", False, False, "no per-rank binding"),
])
def test_which_engines_bind_per_rank(engine, nodes, install, on_cpu, supported, reason):
    found, why = engine_binds_per_rank(engine, nodes=nodes, install=install, on_cpu=on_cpu)
    assert found is supported and reason in why


def test_per_rank_needs_the_first_gpus_and_a_plan():
    """Both engines index their lists by the process's CUDA device: GPUs 4-7 alone would be
    read as devices 0-3 (no CUDA_VISIBLE_DEVICES), so such a plan stays unit-wide."""
    upper = plan_pinning(topo("distributedai-dgx-h200-x8-12nic.txt"), None, None, [4, 5, 6, 7])
    assert upper.rank_numa_nodes == (1, 1, 1, 1)
    assert rank_placement(upper, "sglang", nodes=1, install="venv", on_cpu=False) == (
        False, "GPUs GPU4, GPU5, GPU6, GPU7 are not the first 4: unit-wide")
    assert rank_placement(None, "sglang", nodes=1, install="venv", on_cpu=False)[0] is False
    lower = plan_pinning(topo("distributedai-dgx-h200-x8-12nic.txt"), None, None, [0, 1, 2, 3])
    assert rank_placement(lower, "sglang", nodes=1, install="venv", on_cpu=False)[0] is True


# --- SMT siblings (p5en: lscpu and numactl of the same guest) ------------------------------

P5EN_NUMA = numa_capture("numactl/p5en48xl-h200x8.txt")
P5EN_CPU = Cpu.from_fact(parse_lscpu(capture("lscpu/p5en48xl-h200x8-xeon8488c-kvm.txt")))
# No topo capture exists for p5en: one GPU on node 1 is enough to exercise the CPU rules.
P5EN_GPU_ON_NODE1 = Topology(gpus=(TopologyGpu(name="GPU0", numa_node=1),))


def test_p5en_siblings_follow_the_x86_numbering():
    nodes = {n: list(cpus) for n, cpus in P5EN_NUMA.node_cpus().items()}
    siblings = smt_siblings(P5EN_CPU, nodes)
    assert siblings[0] == (0, 96) and siblings[144] == (48, 144)


def test_p5en_housekeeping_includes_siblings():
    plan = plan_pinning(P5EN_GPU_ON_NODE1, P5EN_NUMA, P5EN_CPU)
    assert plan.housekeeping_cpus == (0, 1, 48, 49, 96, 97, 144, 145)
    assert plan.cpu_affinity == "50-95,146-191"


def test_siblings_are_not_guessed_when_the_layout_disagrees():
    asus_numa = numa_capture("numactl/asus-esc8000a-e12-rtx6000ada-x4.txt")
    asus_cpu = Cpu.from_fact(parse_lscpu(capture("lscpu/asus-esc8000a-e12-epyc9374f.txt")))
    nodes = {n: list(cpus) for n, cpus in asus_numa.node_cpus().items()}
    assert smt_siblings(asus_cpu, nodes) is None  # 1 thread per core
    # Claimed 2 threads/core, but CPU k + 32 is on the other node: not the k + C/T layout.
    assert smt_siblings(dataclasses.replace(asus_cpu, threads_per_core=2), nodes) is None


# --- vCPU pinning on p5en: node 0 = 0-47,96-143, node 1 = 48-95,144-191 ----------------------

HOUSEKEEPING = (0, 1, 48, 49, 96, 97, 144, 145)


def test_16_vcpus_fit_on_the_gpu_node():
    plan = plan_vcpu_pinning(P5EN_NUMA, 16, 1, HOUSEKEEPING)
    assert plan.numa_nodes == (1,) and not plan.spans_nodes and plan.numa_mode == "strict"
    assert plan.vcpu_pins == {vcpu: 50 + vcpu for vcpu in range(16)}
    assert not set(plan.vcpu_pins.values()) & set(HOUSEKEEPING)
    assert plan.emulator_cpus == (48, 49, 144, 145)


def test_200_vcpus_raise_naming_count_node_and_room():
    with pytest.raises(ValueError) as error:
        plan_vcpu_pinning(P5EN_NUMA, 200, 1, HOUSEKEEPING, allow_span=True)
    message = str(error.value)
    assert "200 vCPUs" in message and "node 1" in message and "92 CPUs available" in message
    assert "184" in message  # even spanning, only 184 CPUs are free


def test_span_only_when_allowed():
    with pytest.raises(ValueError, match="allow_span=True"):
        plan_vcpu_pinning(P5EN_NUMA, 150, 1, HOUSEKEEPING)
    plan = plan_vcpu_pinning(P5EN_NUMA, 150, 1, HOUSEKEEPING, allow_span=True)
    pcpus = list(plan.vcpu_pins.values())
    assert plan.spans_nodes and plan.numa_nodes == (0, 1) and plan.numa_mode == "interleave"
    assert len(set(pcpus)) == 150 and not set(pcpus) & set(HOUSEKEEPING)
    assert pcpus[:92] == parse_cpulist("50-95,146-191")  # the GPU's node is filled first
    assert any("spanning nodes 0-1" in note for note in plan.notes)


def test_full_gpu_node_moves_the_guest_and_says_so():
    reserved = [c for c in parse_cpulist("0-47,96-143") if c not in range(2, 12)]
    plan = plan_vcpu_pinning(P5EN_NUMA, 16, 0, reserved)
    assert plan.numa_nodes == (1,)
    assert "node 0 (the GPU's) has only 10 free CPUs" in plan.notes[0]
    assert plan.emulator_cpus == tuple(range(64, 96)) + tuple(range(144, 192))


def test_virsh_commands():
    plan = plan_vcpu_pinning(P5EN_NUMA, 16, 1, HOUSEKEEPING)
    commands = virsh_commands("deepseek-vm", plan)
    assert len(commands) == 18
    assert commands[0] == ["virsh", "vcpupin", "deepseek-vm", "0", "50", "--config"]
    assert commands[15] == ["virsh", "vcpupin", "deepseek-vm", "15", "65", "--config"]
    assert commands[16] == ["virsh", "emulatorpin", "deepseek-vm", "48-49,144-145", "--config"]
    assert commands[17] == [
        "virsh", "numatune", "deepseek-vm", "--mode", "strict", "--nodeset", "1", "--config"
    ]
    assert format_cpulist(plan.vcpu_pins.values()) == "50-65"
