"""The engine's pinning drop-in and HCA IRQ unit agree with the host's topology.

The plan is recomputed here from what the host presents now (nvidia-smi topo -m, numactl,
lscpu, lspci, sysfs) with the role's own code path (roles.tuning.plan.choose_plan), for
the GPUs and housekeeping size the role recorded in /etc/deepseek/pinning.json.
"""

from __future__ import annotations

import json

import pytest

from deepseek_infra.cpulist import parse_cpulist
from deepseek_infra.facts.cpu import ONLINE_COMMAND, parse_lscpu, parse_online
from deepseek_infra.facts.gpu import parse_topology
from deepseek_infra.facts.numa import parse_numactl_hardware
from deepseek_infra.facts.pci import LSPCI_NVIDIA_COMMAND, parse_lspci_nvidia
from deepseek_infra.hardware import Hardware
from roles.tuning.tasks import IRQ_CONF, IRQ_UNIT, RECORD_FILE
from roles.tuning import plan as planning
from roles.tuning.facts import PCI_LOCALITY_COMMAND, parse_pci_locality


def _name(host) -> str:
    return host.backend.hostname


def _lines(host, command: str) -> list[str]:
    result = host.run(command)
    return result.stdout.splitlines() if result.rc == 0 else []


@pytest.fixture(scope="module")
def record(host) -> dict:
    record_file = host.file(RECORD_FILE)
    if not record_file.exists:
        pytest.fail(f"{_name(host)}: {RECORD_FILE}: expected the tuning role's record, found none (deploy/tuning.py not run?)")
    return json.loads(record_file.content_string)


@pytest.fixture(scope="module")
def hardware(host) -> Hardware:
    return Hardware.from_sections({
        "gpu_topology": parse_topology(_lines(host, "nvidia-smi topo -m")),
        "numa": parse_numactl_hardware(_lines(host, "numactl --hardware")),
        "cpu": parse_lscpu(_lines(host, "LC_ALL=C lscpu")),
        "nvidia_pci": parse_lspci_nvidia(_lines(host, LSPCI_NVIDIA_COMMAND)),
        "online": parse_online(_lines(host, ONLINE_COMMAND)),
    })


@pytest.fixture(scope="module")
def fresh(host, record, hardware):
    """(plan, source, topology, note) recomputed now for the recorded GPUs."""
    if not record["planned"]:
        return planning.choose_plan(hardware, parse_pci_locality(_lines(host, PCI_LOCALITY_COMMAND)), None, 2)
    indices = [int(gpu.removeprefix("GPU")) for gpu in record["gpus"]]
    locality = parse_pci_locality(_lines(host, PCI_LOCALITY_COMMAND))
    return planning.choose_plan(hardware, locality, indices, record["housekeeping_cpus_per_node"])


@pytest.fixture(scope="module")
def planned(host, record, fresh):
    plan, source, topology, note = fresh
    if not record["planned"]:
        assert plan is None, f"{_name(host)}: {RECORD_FILE}: the role planned nothing ({record['reason']}), but the host's topology gives a plan now: rerun deploy/tuning.py"
        pytest.skip(f"{_name(host)}: no engine pinning on this host: {record['reason']}")
    assert plan is not None, f"{_name(host)}: the role recorded a plan but the host's topology gives none now: {note}"
    return plan, source, topology


def test_dropin_is_the_plan_for_this_topology(host, record, planned, hardware):
    plan, source, _ = planned
    env = record["environment"]
    expected = planning.render_dropin(plan, source, env, hardware.online)
    dropin = host.file(planning.DROPIN_PATH)
    assert dropin.exists, f"{_name(host)}: {planning.DROPIN_PATH}: expected, found none"
    assert dropin.content_string == expected, (
        f"{_name(host)}: {planning.DROPIN_PATH}: expected {expected!r}, found {dropin.content_string!r}"
    )
    assert env.get("NCCL_IB_HCA", "") == plan.nccl_ib_hca, (
        f"{_name(host)}: NCCL_IB_HCA: expected {plan.nccl_ib_hca!r}, found {env.get('NCCL_IB_HCA')!r}"
    )


def test_engine_cpus_are_local_and_spare_housekeeping(host, hardware, planned):
    plan, _, _ = planned
    nodes = hardware.numa.nodes
    local = {cpu for node in plan.numa_nodes if node in nodes for cpu in nodes[node].cpus}
    engine = set(parse_cpulist(plan.cpu_affinity))
    assert engine and engine <= local, (
        f"{_name(host)}: CPUAffinity: expected CPUs of NUMA node(s) {plan.numa_mask} ({sorted(local)[:8]}...), found {plan.cpu_affinity}"
    )
    assert not engine & set(plan.housekeeping_cpus), f"{_name(host)}: CPUAffinity {plan.cpu_affinity} includes housekeeping CPUs"
    topo_nodes = {gpu.numa_node for gpu in hardware.topology.gpus if gpu.name in plan.gpus}
    if None not in topo_nodes and topo_nodes:
        assert set(plan.numa_nodes) == topo_nodes, (
            f"{_name(host)}: NUMAMask: expected nvidia-smi's NUMA affinity {sorted(topo_nodes)}, found {plan.numa_mask}"
        )


def test_engine_unit_gets_the_placement(host, in_container, planned, hardware):
    plan, _, _ = planned
    if reason := planning.unschedulable(plan, hardware.online):
        pytest.skip(f"{_name(host)}: {reason}")
    shown = dict(
        line.split("=", 1)
        for line in host.check_output(f"systemctl show {planning.ENGINE_UNIT} -p LoadState -p CPUAffinity -p NUMAPolicy -p NUMAMask").splitlines()
    )
    if shown.get("LoadState") == "not-found":
        pytest.skip(f"{_name(host)}: {planning.ENGINE_UNIT} is not installed yet (engine role): systemd loads the drop-in with it")
    assert parse_cpulist(shown["CPUAffinity"]) == parse_cpulist(plan.cpu_affinity), (
        f"{_name(host)}: {planning.ENGINE_UNIT} CPUAffinity: expected {plan.cpu_affinity}, found {shown['CPUAffinity']}"
    )
    assert (shown["NUMAPolicy"], parse_cpulist(shown["NUMAMask"])) == (plan.numa_policy, list(plan.numa_nodes)), (
        f"{_name(host)}: {planning.ENGINE_UNIT} NUMA: expected {plan.numa_policy} {plan.numa_mask}, found {shown['NUMAPolicy']} {shown['NUMAMask']}"
    )


def test_hca_irq_config(host, record, hardware, planned):
    plan, _, topology = planned
    expected = planning.hca_irq_cpus(plan, topology, hardware.numa)
    if not expected:
        assert not host.file(IRQ_CONF).exists, f"{_name(host)}: {IRQ_CONF}: expected absent (no GPU-local HCA), found present"
        pytest.skip(f"{_name(host)}: no GPU-local HCA: no IRQ pinning")
    assert host.file(IRQ_CONF).content_string == planning.render_irq_conf(expected), (
        f"{_name(host)}: {IRQ_CONF}: expected {expected}, found {host.file(IRQ_CONF).content_string!r}"
    )
    assert host.service(IRQ_UNIT).is_enabled, f"{_name(host)}: {IRQ_UNIT}: expected enabled, found disabled"


def test_hca_irqs_pinned(host, in_container, hardware, planned):
    if in_container:
        pytest.skip(f"{_name(host)}: container: IRQ affinity belongs to the host's kernel")
    plan, _, topology = planned
    for hca, cpus in planning.hca_irq_cpus(plan, topology, hardware.numa).items():
        irqs = host.run(f"ls /sys/class/infiniband/{hca}/device/msi_irqs").stdout.split()
        assert irqs, f"{_name(host)}: {hca}: expected MSI IRQs, found none"
        for irq in irqs:
            found = host.file(f"/proc/irq/{irq}/smp_affinity_list").content_string.strip()
            assert set(parse_cpulist(found)) <= set(parse_cpulist(cpus)), (
                f"{_name(host)}: {hca} IRQ {irq}: expected CPUs within {cpus}, found {found}"
            )
