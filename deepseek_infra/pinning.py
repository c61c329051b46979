"""CPU, NUMA and NIC placement for the inference engine and for GPU guests (pure logic).

Inputs are sections of the typed hardware reading (``deepseek_infra.hardware``): the
``Topology`` (``nvidia-smi topo -m``), ``Numa`` (numactl) and, optionally, ``Cpu``
(lscpu). Nothing here touches a host.

Rules of ``plan_pinning``:

- **Local NUMA nodes** of a GPU come from topo's "NUMA Affinity". When that is absent or
  N/A, they are the nodes whose CPUs the GPU's "CPU Affinity" covers. CPUs per node come
  from numactl, else lscpu, else from the GPU rows themselves.
- **Housekeeping CPUs** are the first ``housekeeping_cpus_per_node`` cores of *every*
  node, with their SMT siblings. The lowest CPUs are where the kernel already concentrates
  work that cannot be moved: CPU 0 is the boot CPU (never ``nohz_full``-able), and
  unbound kthreads, timers and default IRQ affinity land there first. One set per node
  keeps each node's NIC interrupts and kthreads on that node, and gives a guest placed on
  any node somewhere local to put its emulator threads.
- **SMT siblings** are inferred only from lscpu: with ``T`` threads per core and ``C``
  CPUs, Linux on x86 numbers thread ``t`` of core ``k`` as ``k + t*C/T``. The rule is used
  only when every inferred sibling lies in the same node as its core; otherwise (or
  without lscpu) housekeeping is plain CPUs and a sibling may stay in the engine set.
- **Nearest NICs** per GPU are those with the best link class, PIX < PXB < PHB < NODE <
  SYS. A NIC that is only SYS (other socket) is never "near". NICs without a device name
  (the NIC legend was not captured) cannot go into ``NCCL_IB_HCA`` and are reported in
  ``warnings`` instead.
- **NUMA policy** is ``bind`` for one node. When the engine's GPUs span nodes, ``bind``
  over several nodes still fills whichever node the allocating thread runs on first (a
  loader thread on node 0 can exhaust node 0, as on the p5en capture: 56 GB free on node 0
  against 616 GB on node 1), so ``interleave`` spreads the pages round-robin instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Final

from deepseek_infra.cpulist import format_cpulist
from deepseek_infra.hardware import Cpu, Numa, Topology, TopologyGpu, TopologyNic

# nvidia-smi legend order, best first. SOC is what old drivers print for SYS.
LINK_RANK: Final = {"PIX": 0, "PXB": 1, "PHB": 2, "NODE": 3, "SYS": 4, "SOC": 4}
_FAR: Final = LINK_RANK["SYS"]


@dataclasses.dataclass(frozen=True, slots=True)
class PinningPlan:
    gpus: tuple[str, ...]  # "GPU0", ... the engine uses
    numa_nodes: tuple[int, ...]
    cpus: tuple[int, ...]  # GPU-local CPUs minus housekeeping
    housekeeping_cpus: tuple[int, ...]
    nics_by_gpu: dict[str, tuple[str, ...]]
    nccl_ib_hca: str  # "=mlx5_0,mlx5_3" or "" when no GPU has a near HCA
    cpu_affinity: str  # systemd CPUAffinity=
    numa_mask: str  # systemd NUMAMask=
    numa_policy: str  # systemd NUMAPolicy=: "bind" or "interleave"
    warnings: tuple[str, ...] = ()
    # Per rank, in ``gpus`` order (rank i drives the i-th GPU); empty when a GPU's node is
    # ambiguous (no NUMA Affinity and CPU affinity over several nodes).
    rank_numa_nodes: tuple[int, ...] = ()
    rank_cpus: tuple[str, ...] = ()  # cpulist per rank: its node's engine CPUs

    def explain(self) -> str:
        lines = [
            f"GPUs {', '.join(self.gpus)} are local to NUMA node(s) {self.numa_mask}",
            f"engine CPUs: {self.cpu_affinity or '(none)'} ({len(self.cpus)} CPUs)",
            "housekeeping CPUs (kept for the OS): "
            + (format_cpulist(self.housekeeping_cpus) or "(none)"),
            f"memory policy: {self.numa_policy} on node(s) {self.numa_mask}",
        ]
        for gpu, nics in self.nics_by_gpu.items():
            near = ", ".join(nics) if nics else "none (only SYS or no NICs)"
            lines.append(f"{gpu}: nearest NIC(s) {near}")
        lines.append(f"NCCL_IB_HCA={self.nccl_ib_hca}" if self.nccl_ib_hca else "NCCL_IB_HCA: not set")
        if self.rank_numa_nodes:
            lines.append("per rank: " + "; ".join(
                f"{gpu} -> node {node} CPUs {cpus}"
                for gpu, node, cpus in zip(self.gpus, self.rank_numa_nodes, self.rank_cpus)))
        lines.extend(f"warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)


def _node_cpus(numa: Numa | None, cpu: Cpu | None, topology: Topology) -> dict[int, list[int]]:
    """CPUs per NUMA node, from the most authoritative source available."""
    nodes = {n: list(cpus) for n, cpus in (numa.node_cpus() if numa else {}).items()}
    if nodes:
        return dict(sorted(nodes.items()))
    nodes = {n: list(cpus) for n, cpus in (cpu.numa_nodes if cpu else {}).items() if cpus}
    if nodes:
        return dict(sorted(nodes.items()))
    derived: dict[int, set[int]] = {}
    for gpu in topology.gpus:
        if gpu.numa_node is not None and gpu.cpus:
            derived.setdefault(gpu.numa_node, set()).update(gpu.cpus)
    return {n: sorted(c) for n, c in sorted(derived.items())}


def _gpu_nodes(gpu: TopologyGpu, node_cpus: dict[int, list[int]]) -> list[int]:
    if gpu.numa_node is not None:
        return [gpu.numa_node]
    affinity = set(gpu.cpus)
    nodes = [n for n, cpus in node_cpus.items() if affinity & set(cpus)]
    if not nodes and len(node_cpus) == 1:
        nodes = list(node_cpus)  # one node: nothing else it could be
    if not nodes:
        raise ValueError(
            f"{gpu.name}: no NUMA Affinity and CPU affinity {format_cpulist(gpu.cpus) or 'N/A'} "
            f"matches none of the NUMA nodes {sorted(node_cpus)}"
        )
    return nodes


def smt_siblings(cpu: Cpu | None, node_cpus: dict[int, list[int]]) -> dict[int, tuple[int, ...]] | None:
    """``{cpu: (cpu, sibling, ...)}`` under the x86 numbering rule, or None when not identifiable."""
    if not cpu or not cpu.cpus or not cpu.threads_per_core:
        return None
    total, threads = cpu.cpus, cpu.threads_per_core
    if threads < 2 or total % threads:
        return None
    stride = total // threads
    node_of = {c: n for n, cpus in node_cpus.items() for c in cpus}
    siblings: dict[int, tuple[int, ...]] = {}
    for core in range(stride):
        group = tuple(core + t * stride for t in range(threads))
        if len({node_of.get(c) for c in group}) != 1 or node_of.get(core) is None:
            return None  # numbering is not the k + C/T layout: do not guess
        for member in group:
            siblings[member] = group
    return siblings


def _housekeeping(node_cpus: dict[int, list[int]], per_node: int, siblings: dict | None) -> list[int]:
    chosen: set[int] = set()
    for node, cpus in node_cpus.items():
        group = (lambda c: siblings.get(c, (c,))) if siblings else (lambda c: (c,))
        cores = [c for c in cpus if group(c)[0] == c]
        picked = {member for c in cores[:per_node] for member in group(c)}
        if per_node and len(picked) >= len(cpus):
            raise ValueError(
                f"housekeeping_cpus_per_node={per_node} would take all {len(cpus)} CPUs of "
                f"NUMA node {node}; use a smaller value"
            )
        chosen |= picked
    return sorted(chosen)


def _nearest(gpu: TopologyGpu, nics: list[TopologyNic]) -> tuple[list[TopologyNic], int]:
    ranked = [(LINK_RANK.get(gpu.links.get(nic.name, "SYS"), _FAR), nic) for nic in nics]
    best = min((rank for rank, _ in ranked), default=_FAR)
    return ([nic for rank, nic in ranked if rank == best] if best < _FAR else []), best


def plan_pinning(
    topology: Topology,
    numa: Numa | None,
    cpu: Cpu | None,
    gpu_indices: Iterable[int] | None = None,
    housekeeping_cpus_per_node: int = 2,
) -> PinningPlan:
    """Plan CPU/NUMA/NIC placement for the engine that uses ``gpu_indices`` (default: all GPUs).

    ``numa`` (numactl) and ``cpu`` (lscpu) may be None: CPUs per node then come from what
    is left (see the module's rules). Raises ValueError for an unknown
    GPU index, a topology without GPUs, or a GPU whose NUMA node cannot be determined.
    """
    if housekeeping_cpus_per_node < 0:
        raise ValueError(f"housekeeping_cpus_per_node must be >= 0, got {housekeeping_cpus_per_node}")
    by_name = {gpu.name: gpu for gpu in topology.gpus}
    if not by_name:
        raise ValueError("nvidia-smi topo: no GPUs in the topology")
    names = list(by_name) if gpu_indices is None else [f"GPU{i}" for i in gpu_indices]
    unknown = [name for name in names if name not in by_name]
    if unknown or not names:
        raise ValueError(f"gpu_indices: {unknown or 'empty list'} not among the GPUs {list(by_name)}")
    gpus = [by_name[name] for name in names]

    node_cpus = _node_cpus(numa, cpu, topology)
    gpu_nodes = [_gpu_nodes(gpu, node_cpus) for gpu in gpus]
    numa_nodes = sorted({node for nodes in gpu_nodes for node in nodes})
    local = {c for node in numa_nodes for c in node_cpus.get(node, ())}
    if not local:  # NUMA node known but no CPU list for it anywhere: fall back to affinity
        local = {c for gpu in gpus for c in gpu.cpus}
    siblings = smt_siblings(cpu, node_cpus)
    housekeeping = _housekeeping(node_cpus, housekeeping_cpus_per_node, siblings)
    cpus = sorted(local - set(housekeeping))

    warnings: list[str] = []
    unnamed = [nic.name for nic in topology.nics if not nic.device]
    named = [nic for nic in topology.nics if nic.device]
    if unnamed:
        warnings.append(
            f"NICs {', '.join(unnamed)} have no device name (no NIC legend); left out of NCCL_IB_HCA"
        )
    nics_by_gpu: dict[str, tuple[str, ...]] = {}
    for gpu in gpus:
        near, _ = _nearest(gpu, named)
        nics_by_gpu[gpu.name] = tuple(nic.device for nic in near if nic.device)
    hcas = list(dict.fromkeys(device for devices in nics_by_gpu.values() for device in devices))

    engine_cpus = set(cpus)
    rank_cpus = [format_cpulist(sorted(set(node_cpus.get(nodes[0], ())) & engine_cpus)) for nodes in gpu_nodes]
    per_rank = all(len(nodes) == 1 for nodes in gpu_nodes) and all(rank_cpus)

    return PinningPlan(
        gpus=tuple(names),
        numa_nodes=tuple(numa_nodes),
        cpus=tuple(cpus),
        housekeeping_cpus=tuple(housekeeping),
        nics_by_gpu=nics_by_gpu,
        # "=" asks NCCL for exact names; without it "mlx5_1" is a prefix that also selects
        # mlx5_10 and mlx5_11, which the 12-NIC captures have.
        nccl_ib_hca="=" + ",".join(hcas) if hcas else "",
        cpu_affinity=format_cpulist(cpus),
        numa_mask=format_cpulist(numa_nodes),
        numa_policy="bind" if len(numa_nodes) == 1 else "interleave",
        warnings=tuple(warnings),
        rank_numa_nodes=tuple(nodes[0] for nodes in gpu_nodes) if per_rank else (),
        rank_cpus=tuple(rank_cpus) if per_rank else (),
    )


def engine_binds_per_rank(engine: str, *, nodes: int, install: str, on_cpu: bool) -> tuple[bool, str]:
    """``(supported, why)``: whether this engine, replica shape and install method place each
    rank on its GPU's node themselves (whatever the topology).

    vLLM binds its GPU workers with ``--numa-bind`` (``numactl --physcpubind --membind`` per
    worker) only under its multiprocessing executor, so on one node, not under Ray. SGLang
    binds each scheduler process given ``--numa-node``, intersected with the unit's CPUs.
    The container method is left unit-wide: the image's numactl is not ours to check.
    """
    if on_cpu or engine not in ("vllm", "sglang"):
        return False, f"{engine} on {'the CPU' if on_cpu else 'its GPUs'} has no per-rank binding: unit-wide"
    if install != "venv":
        return False, "container method: unit-wide (the image's numactl is not checked)"
    if engine == "vllm" and nodes > 1:
        return False, "vLLM binds per rank only under its multiprocessing executor, not Ray (multi-node): unit-wide"
    flag = "--numa-bind-nodes/--numa-bind-cpus" if engine == "vllm" else "--numa-node"
    return True, f"per rank ({engine} {flag}), inside the unit-wide affinity"


def rank_placement(plan: PinningPlan | None, engine: str, *, nodes: int, install: str, on_cpu: bool) -> tuple[bool, str]:
    """``(per rank, why)`` for ``plan``: the engine supports it (``engine_binds_per_rank``)
    and every GPU has one NUMA node. Both engines index their lists by the process's GPU, so
    the engine's GPUs must be the first ones (no ``CUDA_VISIBLE_DEVICES`` remaps them)."""
    supported, why = engine_binds_per_rank(engine, nodes=nodes, install=install, on_cpu=on_cpu)
    if not supported:
        return False, why
    if plan is None:
        return False, "no pinning plan: unit-wide"
    if not plan.rank_numa_nodes:
        return False, "a GPU's NUMA node is ambiguous (no NUMA Affinity): unit-wide"
    if plan.gpus != tuple(f"GPU{i}" for i in range(len(plan.gpus))):
        return False, f"GPUs {', '.join(plan.gpus)} are not the first {len(plan.gpus)}: unit-wide"
    return True, why


# --- guests -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class VcpuPlan:
    vcpu_pins: dict[int, int]  # vCPU -> host CPU, 1:1
    emulator_cpus: tuple[int, ...]
    numa_nodes: tuple[int, ...]
    numa_mode: str  # virsh numatune --mode: "strict" (one node) or "interleave" (spanning)
    spans_nodes: bool
    notes: tuple[str, ...] = ()

    def explain(self) -> str:
        host = format_cpulist(self.vcpu_pins.values())
        lines = [
            f"{len(self.vcpu_pins)} vCPUs pinned 1:1 to host CPUs {host} on node(s) "
            f"{format_cpulist(self.numa_nodes)}",
            f"emulator threads on {format_cpulist(self.emulator_cpus)}",
            f"guest memory: {self.numa_mode} on node(s) {format_cpulist(self.numa_nodes)}",
        ]
        return "\n".join(lines + list(self.notes))


def plan_vcpu_pinning(
    numa: Numa,
    vcpus: int,
    gpu_numa_node: int | None,
    reserved_cpus: Iterable[int],
    allow_span: bool = False,
) -> VcpuPlan:
    """Pin a guest's vCPUs 1:1 to host CPUs, in one NUMA node when it fits.

    Node choice: the GPU's node if it has ``vcpus`` free CPUs, else the node with the most
    free CPUs that fits (noted, since the guest then sits away from its GPU). ``reserved_cpus``
    (the host's housekeeping CPUs) are never given to vCPUs. vCPUs take free CPUs in
    ascending order, so with the usual x86 numbering they get distinct physical cores
    before any SMT sibling. Emulator threads go to the reserved CPUs of the chosen node(s),
    or, if none are reserved there, to the node's CPUs the vCPUs did not take.

    When no node fits: ValueError, unless ``allow_span`` is set and all nodes together fit;
    then nodes are filled starting from the GPU's node, nearest (numactl distance) first.
    """
    if vcpus < 1:
        raise ValueError(f"vcpus must be >= 1, got {vcpus}")
    reserved = set(reserved_cpus)
    node_cpus = numa.node_cpus()
    if not node_cpus:
        raise ValueError("numactl: no NUMA node with CPUs")
    if gpu_numa_node is not None and gpu_numa_node not in node_cpus:
        raise ValueError(f"gpu_numa_node {gpu_numa_node} is not among the NUMA nodes {sorted(node_cpus)}")
    free = {n: [c for c in cpus if c not in reserved] for n, cpus in node_cpus.items()}
    start = gpu_numa_node if gpu_numa_node is not None else max(free, key=lambda n: len(free[n]))
    distances = numa.distances
    # GPU's node first, then by distance from it, then by most free CPUs.
    order = sorted(free, key=lambda n: (n != start, distances.get(start, {}).get(n, 0), -len(free[n]), n))

    notes: list[str] = []
    fitting = [n for n in order if len(free[n]) >= vcpus]
    if fitting:
        chosen = [fitting[0]] if fitting[0] == start else [max(fitting, key=lambda n: len(free[n]))]
        if gpu_numa_node is not None and chosen[0] != gpu_numa_node:
            notes.append(
                f"node {gpu_numa_node} (the GPU's) has only {len(free[gpu_numa_node])} free CPUs; "
                f"the guest runs on node {chosen[0]}, across the interconnect from its GPU"
            )
        pcpus = free[chosen[0]][:vcpus]
    else:
        total = sum(len(cpus) for cpus in free.values())
        where = f"node {start}" + (" (the GPU's node)" if gpu_numa_node is not None else " (the largest)")
        detail = (
            f"cannot fit {vcpus} vCPUs in one NUMA node: {where} has {len(free[start])} CPUs "
            f"available after {len(reserved & set(node_cpus[start]))} reserved; all nodes "
            f"together have {total}"
        )
        if not allow_span or total < vcpus:
            hint = "; pass allow_span=True to span nodes" if total >= vcpus else ""
            raise ValueError(detail + hint)
        chosen, pcpus = [], []
        for node in order:
            if len(pcpus) >= vcpus:
                break
            chosen.append(node)
            pcpus.extend(free[node][: vcpus - len(pcpus)])
        notes.append(
            f"{detail}; spanning nodes {format_cpulist(chosen)}: give the guest a matching "
            "virtual NUMA topology or it will see remote memory as local"
        )

    emulator = sorted(c for n in chosen for c in node_cpus[n] if c in reserved)
    if not emulator:
        emulator = sorted(c for n in chosen for c in free[n] if c not in pcpus)
        notes.append("no reserved CPU on the guest's node(s): emulator threads use its leftover CPUs")
    if not emulator:
        raise ValueError(
            f"{vcpus} vCPUs take every CPU of node(s) {format_cpulist(chosen)} and none is "
            "reserved there: no CPU is left for the emulator threads"
        )
    return VcpuPlan(
        vcpu_pins=dict(enumerate(pcpus)),
        emulator_cpus=tuple(emulator),
        numa_nodes=tuple(sorted(chosen)),
        numa_mode="strict" if len(chosen) == 1 else "interleave",
        spans_nodes=len(chosen) > 1,
        notes=tuple(notes),
    )


def virsh_commands(domain: str, plan: VcpuPlan) -> list[list[str]]:
    """Argument lists that apply ``plan`` to ``domain``'s persistent definition (``--config``).

    One ``virsh vcpupin <domain> <vcpu> <cpulist>`` per vCPU (the 1:1 form of the design
    brief's ``virsh vcpupin domain_name 0-15 0-15``), then ``emulatorpin`` and ``numatune``.
    ``--config`` changes take effect at the guest's next start, which a mode change needs anyway.
    """
    commands = [
        ["virsh", "vcpupin", domain, str(vcpu), str(pcpu), "--config"]
        for vcpu, pcpu in plan.vcpu_pins.items()
    ]
    commands.append(["virsh", "emulatorpin", domain, format_cpulist(plan.emulator_cpus), "--config"])
    commands.append(
        ["virsh", "numatune", domain, "--mode", plan.numa_mode,
         "--nodeset", format_cpulist(plan.numa_nodes), "--config"]
    )
    return commands
