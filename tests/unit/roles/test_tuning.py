"""tuning role: topology sources, GPU choice, rendered drop-in and IRQ plan, variables."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.exceptions import DeployError

from deepseek_infra.cpulist import parse_cpulist
from deepseek_infra.facts.gpu import parse_topology
from deepseek_infra.facts.numa import parse_numactl_hardware
from deepseek_infra.hardware import Hardware, Numa, NumaNode, Online, Topology, TopologyGpu
from roles.settings import validate_inventory
from roles.tuning import plan as planning
from roles.tuning.facts import PCI_LOCALITY_COMMAND, parse_pci_locality

HW = Path(__file__).resolve().parents[2] / "fixtures" / "hw"


def capture(relative: str) -> list[str]:
    return (HW / relative).read_bytes().decode().split("\n")


DGX_TOPO = parse_topology(capture("topo/distributedai-dgx-h200-x8-12nic.txt"))
DGX_NUMA = {"nodes": {0: {"cpus": parse_cpulist("0-55,112-167"), "memory_mb": 1000000, "free_mb": None},
                      1: {"cpus": parse_cpulist("56-111,168-223"), "memory_mb": 1000000, "free_mb": None}},
            "distances": {0: {0: 10, 1: 21}, 1: {0: 21, 1: 10}}}
DGX_CPU = {"cpus": 224, "threads_per_core": 2, "sockets": 2, "cores_per_socket": 56}
PUGET_NUMA = parse_numactl_hardware(capture("numactl/puget-wrx90-tr7965wx-rtx6000ada-x2.txt"))


def _pci(slots: list[str], class_id: str = "0302", device_id: str = "2335") -> list[dict]:
    return [{"slot": slot, "class_id": class_id, "device_id": device_id, "vendor_id": "10de"} for slot in slots]


# --- PCI link classes from sysfs -----------------------------------------------------------

ROOT = "/sys/devices/pci0000:15/0000:15:01.0"


@pytest.mark.parametrize(
    ("a", "b", "nodes", "expected"),
    [
        # GPU and NIC behind one PCIe switch (upstream 16:00.0, downstream 17:0x.0)
        (f"{ROOT}/0000:16:00.0/0000:17:00.0/0000:18:00.0", f"{ROOT}/0000:16:00.0/0000:17:01.0/0000:19:00.0", (0, 0), "PIX"),
        # two switch levels between them
        (f"{ROOT}/0000:16:00.0/0000:17:00.0/0000:20:00.0/0000:21:00.0/0000:18:00.0",
         f"{ROOT}/0000:16:00.0/0000:17:01.0/0000:19:00.0", (0, 0), "PXB"),
        # different root ports of one host bridge
        (f"{ROOT}/0000:18:00.0", "/sys/devices/pci0000:15/0000:15:02.0/0000:19:00.0", (0, 0), "PHB"),
        # different host bridges, same node
        (f"{ROOT}/0000:18:00.0", "/sys/devices/pci0000:37/0000:37:01.0/0000:38:00.0", (0, 0), "NODE"),
        # other socket
        (f"{ROOT}/0000:18:00.0", "/sys/devices/pci0000:97/0000:97:01.0/0000:98:00.0", (0, 1), "SYS"),
        # single-node host: the kernel reports -1 for both
        (f"{ROOT}/0000:18:00.0", "/sys/devices/pci0000:37/0000:37:01.0/0000:38:00.0", (None, None), "NODE"),
    ],
)
def test_pci_link_class(a, b, nodes, expected):
    assert planning.pci_link_class(a, b, *nodes) == expected


def test_topology_from_sysfs_numbers_gpus_in_bus_order_and_finds_the_near_hca():
    locality = parse_pci_locality([
        "gpu 0000:9a:00.0 /sys/devices/pci0000:97/0000:97:01.0/0000:98:00.0/0000:99:00.0/0000:9a:00.0 1 56-111,168-223",
        f"gpu 0000:18:00.0 {ROOT}/0000:16:00.0/0000:17:00.0/0000:18:00.0 0 0-55,112-167",
        f"hca mlx5_0 {ROOT}/0000:16:00.0/0000:17:01.0/0000:19:00.0 0 0-55,112-167",
        "hca mlx5_1 /sys/devices/pci0000:97/0000:97:01.0/0000:98:00.0/0000:99:01.0/0000:9b:00.0 1 56-111,168-223",
    ])
    topology = planning.topology_from_sysfs(["0000:9a:00.0", "0000:18:00.0"], locality)
    assert [(g.name, g.numa_node) for g in topology.gpus] == [("GPU0", 0), ("GPU1", 1)]
    assert topology.gpus[0].links == {"NIC0": "PIX", "NIC1": "SYS"}
    assert [(nic.name, nic.device) for nic in topology.nics] == [("NIC0", "mlx5_0"), ("NIC1", "mlx5_1")]
    plan, source, _, note = planning.choose_plan(
        Hardware.from_sections({"gpu_topology": {"gpus": [], "nics": []},
                                "nvidia_pci": _pci(["0000:9a:00.0", "0000:18:00.0"]),
                                "numa": DGX_NUMA, "cpu": DGX_CPU}), locality, [1], 2,
    )
    assert source == planning.SOURCE_SYSFS and note == ""
    assert plan.numa_nodes == (1,) and plan.nccl_ib_hca == "=mlx5_1"


def test_gpus_absent_from_sysfs_give_no_topology():
    assert planning.topology_from_sysfs(["0000:18:00.0"], {"gpus": [], "hcas": []}) is None


# --- choosing the plan --------------------------------------------------------------------


def test_driver_topology_wins():
    hardware = Hardware.from_sections({"gpu_topology": DGX_TOPO, "numa": DGX_NUMA, "cpu": DGX_CPU, "nvidia_pci": []})
    plan, source, _, _ = planning.choose_plan(hardware, {"gpus": [], "hcas": []}, [4, 5], 2)
    assert source == planning.SOURCE_TOPO
    assert plan.numa_nodes == (1,) and plan.nccl_ib_hca == "=mlx5_6,mlx5_9"
    assert 56 not in parse_cpulist(plan.cpu_affinity) and 58 in parse_cpulist(plan.cpu_affinity)


def test_multi_node_host_without_locality_is_not_guessed():
    hardware = Hardware.from_sections({"gpu_topology": {"gpus": [], "nics": []}, "numa": DGX_NUMA, "cpu": DGX_CPU,
                                       "nvidia_pci": _pci(["0000:18:00.0", "0000:2a:00.0"])})
    plan, source, _, note = planning.choose_plan(hardware, {"gpus": [], "hcas": []}, None, 2)
    assert plan is None and source == planning.SOURCE_NONE
    assert "2 NUMA nodes" in note and "0000:18:00.0" in note and "rerun deploy/tuning.py" in note


def test_single_node_host_without_locality_is_planned():
    hardware = Hardware.from_sections({"gpu_topology": {"gpus": [], "nics": []}, "numa": PUGET_NUMA, "cpu": {},
                                       "nvidia_pci": _pci(["0000:c1:00.0", "0000:c2:00.0"], "0300", "26b1")})
    plan, source, _, note = planning.choose_plan(hardware, {"gpus": [], "hcas": []}, [0], 2)
    assert plan.cpu_affinity == "2-23" and plan.numa_policy == "bind" and plan.nccl_ib_hca == ""
    assert "one NUMA node" in source and note == ""


def test_no_gpu_no_plan():
    plan, _, _, note = planning.choose_plan(Hardware.from_sections({"numa": PUGET_NUMA, "nvidia_pci": []}), {}, None, 2)
    assert plan is None and "no NVIDIA GPU" in note


def test_bad_housekeeping_is_a_note_not_a_crash():
    hardware = Hardware.from_sections({"gpu_topology": parse_topology(capture("topo/puget-wrx90-rtx6000ada-x2.txt")), "numa": PUGET_NUMA, "cpu": {}})
    plan, _, _, note = planning.choose_plan(hardware, {}, None, 16)
    assert plan is not None  # 16 of 24 CPUs still leaves some
    plan, _, _, note = planning.choose_plan(hardware, {}, [7], 2)
    assert plan is None and "GPU7" in note


# --- which GPUs ---------------------------------------------------------------------------


def test_engine_gpus_from_the_serving_plan():
    hardware = Hardware.from_sections({"gpu_inventory": [
        {"index": i, "name": "NVIDIA H200", "memory.total": 143771, "compute_cap": 9.0} for i in range(8)]})
    indices, why = planning.engine_gpus(hardware, "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "vllm", 1, None, None)
    assert indices == [0] and "TP 1" in why
    indices, why = planning.engine_gpus(hardware, "deepseek-ai/DeepSeek-V3", "vllm", 1, None, None)
    assert indices == list(range(8)) and "TP 8" in why


def test_engine_gpus_fall_back_to_all():
    unknown = Hardware.from_sections({"nvidia_pci": _pci(["0000:18:00.0"], device_id="ffff")})
    assert planning.engine_gpus(unknown, "deepseek-v3", "vllm", 1, None, None) == (None, "GPU memory unknown: all GPUs")
    small = Hardware.from_sections(
        {"gpu_inventory": [{"index": 0, "name": "NVIDIA RTX 6000 Ada Generation", "memory.total": 49140, "compute_cap": 8.9}]})
    indices, why = planning.engine_gpus(small, "deepseek-v3", "vllm", 1, None, None)
    assert indices is None and "does not fit" in why
    assert planning.engine_gpus(small, "deepseek-v3", "vllm", 1, None, (3, 1)) == ([1, 3], "tuning_gpu_indices")


# --- rendering ----------------------------------------------------------------------------


def test_dropin_and_irq_plan():
    hardware = Hardware.from_sections({"gpu_topology": DGX_TOPO, "numa": DGX_NUMA, "cpu": DGX_CPU})
    plan, source, topology, _ = planning.choose_plan(hardware, {}, [0, 4], 2)
    env = planning.engine_environment(plan, {"NCCL_SOCKET_IFNAME": "bond0"})
    text = planning.render_dropin(plan, source, env)
    assert "[Service]\nCPUAffinity=" in text and "NUMAPolicy=interleave\nNUMAMask=0-1\n" in text
    assert 'Environment="NCCL_IB_HCA==mlx5_0,mlx5_6"\n' in text
    assert 'Environment="CUDA_DEVICE_ORDER=PCI_BUS_ID"' in text and 'Environment="NCCL_SOCKET_IFNAME=bond0"' in text
    irq = planning.hca_irq_cpus(plan, topology, Numa.from_fact(DGX_NUMA))
    assert irq == {"mlx5_0": "0-1,112-113", "mlx5_6": "56-57,168-169"}  # each HCA on its own node's housekeeping
    assert planning.render_irq_conf(irq).splitlines()[1:] == ["mlx5_0 0-1,112-113", "mlx5_6 56-57,168-169"]
    assert "engine CPUs" in planning.summary(plan, source, "tuning_gpu_indices", "")
    assert planning.summary(None, planning.SOURCE_NONE, "x", "why not").endswith("why not")


def test_irq_script_pins_from_the_conf(tmp_path):
    """The shell script the role installs, run against a fake sysfs/procfs tree."""
    from jinja2 import Template

    from roles import template_path
    from roles.tuning.tasks import IRQ_SCRIPT

    text = Template(Path(template_path("roles.tuning", IRQ_SCRIPT)).read_text()).render(conf="/unused")
    root = tmp_path
    (root / "class/infiniband/mlx5_0/device/msi_irqs").mkdir(parents=True)
    for irq in ("101", "102"):
        (root / f"class/infiniband/mlx5_0/device/msi_irqs/{irq}").write_text("msix")
        (root / f"irq/{irq}").mkdir(parents=True)
        (root / f"irq/{irq}/smp_affinity_list").write_text("0-191")
    script = text.replace("/sys/class/infiniband", str(root / "class/infiniband")).replace("/proc/irq", str(root / "irq"))
    (root / "conf").write_text("# comment\nmlx5_0 0-1,96-97\nmlx5_9 2\n")
    (root / "run.sh").write_text(script)
    result = subprocess.run(["sh", str(root / "run.sh"), str(root / "conf")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "pinned 2 HCA IRQs" in result.stdout and "mlx5_9" in result.stderr
    assert (root / "irq/101/smp_affinity_list").read_text().strip() == "0-1,96-97"


# --- facts and variables ------------------------------------------------------------------


def test_pci_locality_command_runs_here():
    output = subprocess.run(["sh", "-c", PCI_LOCALITY_COMMAND], capture_output=True, text=True, check=True).stdout
    parsed = parse_pci_locality(output.splitlines())
    assert set(parsed) == {"gpus", "hcas", "irqbalance_config"}


BAD = [
    ("housekeeping-negative", {"tuning_housekeeping_cpus_per_node": -1}, "tuning_housekeeping_cpus_per_node", "greater than or equal"),
    ("housekeeping-huge", {"tuning_housekeeping_cpus_per_node": 64}, "tuning_housekeeping_cpus_per_node", "less than or equal"),
    ("indices-empty", {"tuning_gpu_indices": []}, "tuning_gpu_indices", "empty"),
    ("indices-duplicate", {"tuning_gpu_indices": [0, 0]}, "tuning_gpu_indices", "distinct"),
    ("env-not-nccl", {"tuning_nccl_env": {"LD_PRELOAD": "/x.so"}}, "tuning_nccl_env", "NCCL_*"),
    ("env-hca", {"tuning_nccl_env": {"NCCL_IB_HCA": "mlx5_0"}}, "tuning_nccl_env", "computed"),
    ("env-quote", {"tuning_nccl_env": {"NCCL_DEBUG": 'INFO" x'}}, "tuning_nccl_env", "mangle"),
    ("irq-not-bool", {"tuning_hca_irq_affinity": "sometimes"}, "tuning_hca_irq_affinity", "bool"),
]


@pytest.mark.parametrize(("data", "field", "words"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_values_are_refused_naming_host_and_field(data, field, words):
    state = State(Inventory(([("good", {}), ("bad", data)], {})), Config())
    with pytest.raises(DeployError) as raised:
        validate_inventory(state)
    lines = [line.strip() for line in str(raised.value).splitlines()[1:]]
    assert any(line.startswith(f"bad: {field}:") for line in lines), str(raised.value)
    assert words.lower() in str(raised.value).lower()


def test_placement_left_out_when_the_kernel_does_not_run_the_planned_cpus():
    """The lab's simulated 192-CPU node on a 2-CPU kernel: systemd would refuse the unit."""
    from deepseek_infra.pinning import plan_pinning
    from roles.tuning.plan import render_dropin, unschedulable

    topology = Topology(gpus=(TopologyGpu(name="GPU0", cpus=tuple(range(8)), numa_node=0),))
    numa = Numa(nodes={0: NumaNode(cpus=tuple(range(8)), memory_mb=1, free_mb=1)})
    plan = plan_pinning(topology, numa, None)
    assert unschedulable(plan, Online(cpus=tuple(range(8)), nodes=(0,))) == ""
    assert unschedulable(plan, Online()) == ""  # the kernel's view unknown: nothing left out
    assert "CPUAffinity=" in render_dropin(plan, "topo", {}, Online(cpus=tuple(range(8)), nodes=(0,)))
    reason = unschedulable(plan, Online(cpus=(0, 1), nodes=(0,)))
    assert reason.startswith("CPUs 2-7 and NUMA nodes none of the plan are not online here")
    dropin = render_dropin(plan, "topo", {}, Online(cpus=(0, 1), nodes=(0,)))
    assert "CPUAffinity=" not in dropin and "NUMAMask=" not in dropin
    assert f"# warning: {reason}" in dropin
