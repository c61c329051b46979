"""Engine placement for one host, from its discovered topology (pure: no pyinfra).

``deepseek_infra.pinning.plan_pinning`` does the planning; this module picks its inputs and
renders its result:

- **Topology.** ``nvidia-smi topo -m`` when the driver answers. Before the driver is
  loaded, the kernel already knows where each GPU sits: sysfs gives a PCI function's NUMA
  node (``numa_node``), its local CPUs (``local_cpulist``) and its place in the PCI tree,
  which classifies GPU-HCA links the way nvidia-smi does (``pci_link_class``). GPUs are
  numbered in PCI bus order, as nvidia-smi numbers them (the drop-in sets
  ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA agrees).
- **No locality at all** (no driver, and sysfs has no entry for the GPUs, as in a lab
  container): a host with one NUMA node still has exactly one right answer, so it is
  planned; a multi-node host is *not* guessed: the GPU-local part is skipped and
  reported, and the next run after the driver role plans it.
- **GPUs** the engine uses: ``tuning_gpu_indices``, else the serving plan's GPUs on this
  node (``deepseek_infra.sizing.plan_serving`` for the deployment's model and engine), else, when
  GPU memory is unknown or the model does not fit, all GPUs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from deepseek_infra.catalog import get_model
from deepseek_infra.cpulist import format_cpulist, parse_cpulist
from deepseek_infra.hardware import Hardware, Numa, Online, Topology, TopologyGpu, TopologyNic
from deepseek_infra.pinning import PinningPlan, plan_pinning
from deepseek_infra.preflight import summarize_gpus
from deepseek_infra.sizing import plan_serving

ENGINE_UNIT: Final = "deepseek-engine.service"
DROPIN_PATH: Final = f"/etc/systemd/system/{ENGINE_UNIT}.d/10-pinning.conf"
# On a vLLM replica's head the GPU workers are Ray actors, children of the Ray head's unit.
RAY_HEAD_UNIT: Final = "deepseek-ray-head.service"


def pinned_units(engine: str, nodes: int) -> tuple[str, ...]:
    """The units whose processes drive the GPUs: each gets the pinning drop-in.

    >>> pinned_units("vllm", 2)
    ('deepseek-engine.service', 'deepseek-ray-head.service')
    """
    return (ENGINE_UNIT, RAY_HEAD_UNIT) if engine == "vllm" and nodes > 1 else (ENGINE_UNIT,)


def dropin_path(unit: str) -> str:
    return f"/etc/systemd/system/{unit}.d/10-pinning.conf"
SOURCE_TOPO: Final = "nvidia-smi topo -m"
SOURCE_SYSFS: Final = "sysfs (PCI NUMA node and tree; driver not loaded)"
SOURCE_NONE: Final = "none (driver not loaded, GPUs not in sysfs)"


# --- topology without the driver --------------------------------------------------------


def _pci_chain(path: str) -> tuple[str, list[str]]:
    """Host bridge and the PCI functions below it: ``/sys/devices/pci0000:15/0000:15:01.0/...``."""
    parts = [part for part in path.split("/") if part]
    roots = [i for i, part in enumerate(parts) if part.startswith("pci")]
    if not roots:
        return "", []
    root = roots[-1]
    return parts[root], [part for part in parts[root + 1 :] if part.count(":") == 2]


def pci_link_class(path_a: str, path_b: str, node_a: int | None, node_b: int | None) -> str:
    """nvidia-smi's link class between two PCI functions, from their sysfs device paths.

    SYS: different NUMA nodes. NODE: same node, different host bridges. PHB: same host
    bridge, no PCIe bridge in common. PIX: both hang off one bridge (or switch) directly.
    PXB: they share a bridge but the path crosses more than one.

    >>> a = "/sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:00.0/0000:18:00.0"
    >>> b = "/sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:01.0/0000:19:00.0"
    >>> pci_link_class(a, b, 0, 0)
    'PIX'
    """
    if node_a is not None and node_b is not None and node_a != node_b:
        return "SYS"
    root_a, chain_a = _pci_chain(path_a)
    root_b, chain_b = _pci_chain(path_b)
    if not root_a or root_a != root_b:
        return "NODE"
    common = 0
    for a, b in zip(chain_a[:-1], chain_b[:-1]):
        if a != b:
            break
        common += 1
    if common == 0:
        return "PHB"
    # Below the deepest shared bridge: the device itself, or a downstream port and the device.
    below = max(len(chain_a) - common, len(chain_b) - common)
    return "PIX" if below <= 2 else "PXB"


def topology_from_sysfs(gpu_slots: list[str], locality: Mapping[str, Any]) -> Topology | None:
    """The topology ``nvidia-smi topo -m`` would give, from sysfs; None when no GPU is in sysfs.

    ``gpu_slots`` are the NVIDIA GPU functions lspci lists (``0000:18:00.0``), in any order;
    ``locality`` is the ``PciLocality`` fact.
    """
    known = {device["slot"]: device for device in locality.get("gpus", [])}
    slots = sorted(slot.lower() for slot in gpu_slots)
    if not slots or not any(slot in known for slot in slots):
        return None
    gpus: list[TopologyGpu] = []
    hcas = sorted(locality.get("hcas", []), key=lambda hca: hca["name"])
    for index, slot in enumerate(slots):
        device = known.get(slot, {"path": "", "numa_node": None, "cpus": []})
        links = {
            f"NIC{n}": pci_link_class(device["path"], hca["path"], device["numa_node"], hca["numa_node"])
            for n, hca in enumerate(hcas)
        }
        gpus.append(TopologyGpu(name=f"GPU{index}", cpus=tuple(device["cpus"]), numa_node=device["numa_node"], links=links))
    nics = [TopologyNic(name=f"NIC{n}", device=hca["name"], links={gpu.name: gpu.links[f"NIC{n}"] for gpu in gpus})
            for n, hca in enumerate(hcas)]
    return Topology(gpus=tuple(gpus), nics=tuple(nics))


# --- which GPUs, which plan ---------------------------------------------------------------


def gpu_slots(hardware: Hardware) -> list[str]:
    return sorted(dev.slot for dev in hardware.pci_gpus)


def engine_gpus(hardware: Hardware, model: str, engine: str, nodes: int,
                max_model_len: int | None, gpu_indices: tuple[int, ...] | None) -> tuple[list[int] | None, str]:
    """GPU indices the engine uses on this node (None: all) and why."""
    if gpu_indices is not None:
        return sorted(gpu_indices), "tuning_gpu_indices"
    gpus = summarize_gpus(hardware)
    if not gpus.count:
        return None, "no NVIDIA GPU found"
    if gpus.memory_mib is None:
        return None, "GPU memory unknown: all GPUs"
    try:
        serving = plan_serving(get_model(model), gpus.memory_mib, gpus.count, nodes=nodes,
                               engine=engine, max_model_len=max_model_len)
    except ValueError as error:
        return None, f"no serving plan ({error}): all GPUs"
    if not serving.fits:
        return None, f"{get_model(model).name} does not fit this node: all GPUs"
    per_node = min(serving.tensor_parallel_size, gpus.count)
    return list(range(per_node)), (
        f"serving plan: TP {serving.tensor_parallel_size} x PP {serving.pipeline_parallel_size}, "
        f"{per_node} GPU(s) on this node"
    )


def choose_plan(
    hardware: Hardware, locality: Mapping[str, Any], gpu_indices: list[int] | None,
    housekeeping_cpus_per_node: int,
) -> tuple[PinningPlan | None, str, Topology | None, str]:
    """``(plan or None, topology source, topology, note)``; a None plan's note says why."""
    topology: Topology | None = hardware.topology
    source = SOURCE_TOPO
    if not hardware.topology.gpus:
        topology = topology_from_sysfs(gpu_slots(hardware), locality)
        source = SOURCE_SYSFS
    numa, cpu = hardware.numa, hardware.cpu
    if topology is None:
        slots = gpu_slots(hardware)
        if not slots:
            return None, SOURCE_NONE, None, "no NVIDIA GPU on the PCI bus: nothing to pin the engine to"
        nodes = numa.node_cpus() or {n: cpus for n, cpus in cpu.numa_nodes.items() if cpus}
        if len(nodes) != 1:
            return None, SOURCE_NONE, None, (
                f"GPU NUMA locality unknown (no `nvidia-smi topo -m`: driver not loaded; no sysfs entry "
                f"for {', '.join(slots)}) on a host with {len(nodes) or 'unknown'} NUMA nodes: engine "
                "pinning not written; rerun deploy/tuning.py once the driver is loaded"
            )
        # One NUMA node: every GPU is local to it, whatever the driver would say.
        node, cpus = next(iter(nodes.items()))
        topology = Topology(gpus=tuple(TopologyGpu(name=f"GPU{i}", cpus=tuple(cpus), numa_node=node)
                                       for i in range(len(slots))))
        source = "lspci + numactl (one NUMA node; driver not loaded)"
    try:
        plan = plan_pinning(topology, numa, cpu, gpu_indices, housekeeping_cpus_per_node)
    except ValueError as error:
        return None, source, topology, f"no pinning plan: {error}"
    return plan, source, topology, ""


# --- what gets written --------------------------------------------------------------------


def engine_environment(plan: PinningPlan, extra: Mapping[str, str]) -> dict[str, str]:
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}  # CUDA numbers GPUs like nvidia-smi (the plan's indices)
    if plan.nccl_ib_hca:
        env["NCCL_IB_HCA"] = plan.nccl_ib_hca
    env.update(extra)
    return env


def unschedulable(plan: PinningPlan, online: Online | None) -> str:
    """Why systemd could not apply the plan on this kernel ("" when it can).

    The plan comes from what the tools report; the kernel's online CPUs and nodes (sysfs)
    are what systemd checks. They differ when CPUs are offline, and in the lab, whose
    simulated tools describe a bigger machine than the container's kernel runs.
    """
    if not online or not online.cpus:
        return ""
    online_nodes = online.nodes or (0,)
    missing_cpus = set(parse_cpulist(plan.cpu_affinity)) - set(online.cpus)
    missing_nodes = set(plan.numa_nodes) - set(online_nodes)
    if not missing_cpus and not missing_nodes:
        return ""
    return (f"CPUs {format_cpulist(missing_cpus) or 'none'} and NUMA nodes {format_cpulist(missing_nodes) or 'none'} "
            f"of the plan are not online here (online CPUs {format_cpulist(online.cpus)}, nodes "
            f"{format_cpulist(online_nodes)}): CPU and NUMA placement left out")


def render_dropin(plan: PinningPlan, source: str, env: Mapping[str, str],
                  online: Online | None = None) -> str:
    not_applicable = unschedulable(plan, online)
    placement = [] if not_applicable else [
        f"CPUAffinity={plan.cpu_affinity}",
        f"NUMAPolicy={plan.numa_policy}",
        f"NUMAMask={plan.numa_mask}",
    ]
    lines = [
        "# Managed by deepseek-infra (tuning role): engine placement from the discovered topology.",
        f"# Topology: {source}. GPUs {', '.join(plan.gpus)} on NUMA node(s) {plan.numa_mask}.",
        f"# Housekeeping CPUs left to the OS and IRQs: {format_cpulist(plan.housekeeping_cpus) or 'none'}.",
        *(f"# warning: {warning}" for warning in plan.warnings),
        *([f"# warning: {not_applicable}"] if not_applicable else []),
        "[Service]",
        *placement,
        # NCCL over RDMA registers (pins) large host buffers.
        "LimitMEMLOCK=infinity",
        *(f'Environment="{key}={value}"' for key, value in env.items()),
    ]
    return "\n".join(lines) + "\n"


def hca_irq_cpus(plan: PinningPlan, topology: Topology, numa: Numa | None) -> dict[str, str]:
    """GPU-local HCA -> cpulist for its IRQs: the housekeeping CPUs of its GPUs' node(s).

    Off the engine's CPUs (NCCL polls its completion queues from a proxy thread; HCA
    interrupts there only add jitter) and on the HCA's own node.
    """
    node_cpus = {n: set(info.cpus) for n, info in (numa.nodes if numa else {}).items()}
    gpu_node = {gpu.name: gpu.numa_node for gpu in topology.gpus}
    housekeeping = set(plan.housekeeping_cpus)
    result: dict[str, set[int]] = {}
    for gpu, hcas in plan.nics_by_gpu.items():
        node = gpu_node.get(gpu)
        local = housekeeping & node_cpus[node] if node in node_cpus else set()
        for hca in hcas:
            result.setdefault(hca, set()).update(local or housekeeping)
    return {hca: format_cpulist(cpus) for hca, cpus in sorted(result.items()) if cpus}


def render_irq_conf(irq_cpus: Mapping[str, str]) -> str:
    lines = ["# Managed by deepseek-infra (tuning role): <HCA> <cpulist for its IRQs>"]
    lines += [f"{hca} {cpus}" for hca, cpus in irq_cpus.items()]
    return "\n".join(lines) + "\n"


def summary(plan: PinningPlan | None, source: str, gpus_note: str, note: str) -> str:
    """What preflight prints: the plan's ``explain()``, or why there is none."""
    head = f"engine pinning (topology: {source}; GPUs: {gpus_note})"
    if plan is None:
        return f"{head}\n  {note}"
    return head + "\n" + "\n".join(f"  {line}" for line in plan.explain().splitlines())
