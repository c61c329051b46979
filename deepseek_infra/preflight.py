"""Preflight: what a host has against what the configured model and engine need.

Pure: it takes the typed hardware reading (``deepseek_infra.hardware.Hardware``), the
filesystem under the weights path and the requirements, and returns a report; the
preflight role gathers the facts and decides what a failure stops. Each check has a verdict:

- ``pass``: requirement met;
- ``fail``: the host cannot serve this configuration; the deploy stops for it;
- ``warn``: not blocking (e.g. the driver is not installed yet, so GPU memory comes from
  the PCI device table; a later role fixes what is reported).

Default thresholds follow the design brief's server bar (GPU >= 40 GB and BF16, i.e.
compute capability >= 8.0; >= 32 CPU cores; NVMe; 10 GbE or InfiniBand HDR between nodes).

Every failing check carries a ``fix``: the setting(s) a user changes, with the value that
would pass where it can be computed (``deepseek_nodes = 2``). Thresholds are the site's bar,
so a fix names the hardware or model change first and "or lower <threshold> to <found>" after.
Preflight also checks what later roles assume (an explicit ``serve_model_path`` holds a
checkpoint, the weights source answers), so a host that would fail half-way never starts.

The memory check sums the host RAM the plan needs (deepseek_infra/host_memory.py: the
decrypted-weights tmpfs, the hugepage pool, the engine's processes, an OS reserve) and
refuses a host whose MemTotal cannot hold it, naming each term with its GiB figure; the
site's bar ``preflight_min_memory_gib`` still applies on top.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from deepseek_infra.catalog import ModelSpec, list_models
from deepseek_infra.engine import EngineConfigError, engine_on_cpu, plan_for_node
from deepseek_infra.gpus import lookup_gpu
from deepseek_infra.hardware import Hardware
from deepseek_infra.hugepages import PAGE_SIZES_KB
from deepseek_infra.host_memory import (
    CPU_KV, HUGEPAGES, TMPFS, HostMemoryInputs, HostMemoryPlan, host_memory_plan,
)
from deepseek_infra.sizing import DEFAULT_GPU_MEMORY_UTILIZATION, ServingPlan, plan_serving, required_disk_gb

Verdict = Literal["pass", "fail", "warn"]
GIB = 2**30
HDR_GBPS = 200  # InfiniBand HDR, the brief's bar for traffic between nodes


@dataclass(frozen=True, slots=True, kw_only=True)
class Requirements:
    min_gpu_memory_gib: float = 40
    min_compute_capability: float = 8.0
    min_cpu_cores: int = 32
    min_memory_gib: float = 64
    kept_releases: int = 2
    min_network_gbps: float = 10
    min_ib_gbps_multinode: float = HDR_GBPS
    nodes: int = 1  # nodes serving one model replica together
    max_model_len: int | None = None
    target_concurrency: int = 1  # serve_target_concurrency: sequences of max_model_len the KV cache holds
    host_memory: HostMemoryInputs = HostMemoryInputs()  # the settings the host-RAM terms depend on
    # What later roles assume of the node (deepseek_infra/facts/preconditions.py reads it):
    model_path: str | None = None  # an explicit serve_model_path the engine will load as is
    weights_endpoint: tuple[str, str] | None = None  # (setting, URL) the weights role downloads from
    release_path: str | None = None  # the release directory that download fills (on disk: source not needed)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    needed: str
    found: str
    verdict: Verdict
    detail: str = ""
    fix: str = ""  # failing: the setting(s) to change, with the passing value where computable
    itemised: bool = False  # detail lists the items behind the verdict (terms, settings): stop messages carry it


@dataclass(frozen=True, slots=True)
class GpuSummary:
    count: int
    name: str | None
    memory_mib: float | None
    compute_capability: float | None
    source: str  # "driver" (nvidia-smi) or "pci" (device table, before any driver)
    driver_version: str | None


@dataclass(frozen=True, slots=True)
class PreflightReport:
    host: str
    model: str
    engine: str
    gpus: GpuSummary
    checks: list[Check] = field(default_factory=list)
    plan: ServingPlan | None = None
    replica: str | None = None  # "replica 'r1' (a head, b)" for a host of a multi-node replica

    @property
    def passed(self) -> bool:
        return all(check.verdict != "fail" for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.verdict == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host, "replica": self.replica, "model": self.model, "engine": self.engine, "passed": self.passed,
            "gpus": asdict(self.gpus),
            "checks": [asdict(check) for check in self.checks],
            "plan": asdict(self.plan) if self.plan else None,
        }

    def render_table(self) -> str:
        rows = [("check", "needed", "found", "verdict")]
        rows += [(c.name, c.needed, c.found, c.verdict.upper()) for c in self.checks]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        where = f"{self.host} ({self.replica})" if self.replica else self.host
        lines = [f"preflight {where}: {self.model} on {self.engine}: {'PASS' if self.passed else 'FAIL'}"]
        lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
        plan_reason = self.plan.reason if self.plan else None
        lines += [f"  - {c.name}: {c.detail}" for c in self.checks
                  if c.detail and c.verdict != "pass" and c.detail != plan_reason]
        if self.plan:
            lines.append(f"  plan: {self.plan.reason}")
        fixes = [c for c in self.failures if c.fix]
        if fixes:
            lines.append("  change:")
            lines += [f"    {c.name}: {c.fix}" for c in fixes]
        return "\n".join(lines)

    @property
    def fixes(self) -> list[str]:
        """Each failing check's fix, in check order (empty ones left out)."""
        return [check.fix for check in self.failures if check.fix]


def summarize_gpus(hardware: Hardware) -> GpuSummary:
    """GPUs from nvidia-smi when the driver answers, else from lspci and the device table."""
    inventory = hardware.gpus
    if inventory:
        first = inventory[0]
        memories = [gpu.memory_total_mib for gpu in inventory if gpu.memory_total_mib is not None]
        capability = first.compute_capability
        if capability is None:
            known = lookup_gpu(name=first.name)
            capability = float("%d.%d" % known.compute_capability) if known else None
        return GpuSummary(
            count=len(inventory), name=first.name,
            memory_mib=min(memories) if memories else None,
            compute_capability=float(capability) if capability is not None else None,
            source="driver", driver_version=first.driver_version,
        )
    devices = hardware.pci_gpus
    models = [lookup_gpu(pci_device_id=dev.device_id) for dev in devices]
    known = [model for model in models if model]
    memory = None
    if known and len(known) == len(models):
        memory = min(model.memory_mib or model.memory_gb * 1e9 / 2**20 for model in known)
    return GpuSummary(
        count=len(devices), name=known[0].smi_name if known else None, memory_mib=memory,
        compute_capability=min(float("%d.%d" % m.compute_capability) for m in known) if known else None,
        source="pci", driver_version=None,
    )


def _network_gbps(hardware: Hardware) -> tuple[float, str]:
    best, where = 0.0, "none"
    for name, nic in hardware.network.items():
        speed = nic.speed_mbps
        if nic.type != "loopback" and speed and speed / 1000 > best:
            best, where = speed / 1000, name
    for port in hardware.rdma_ports:
        rate = port.rate_gbps or 0
        if port.state == "Active" and rate > best:
            best, where = float(rate), f"{port.ca}/{port.port}"
    return best, where


def _fabric_check(hardware: Hardware, min_gbps: float, one_node_fits: bool) -> Check:
    """InfiniBand for a multi-node replica, from the kernel's sysfs (ibstat only where sysfs has
    nothing): a fresh node passes or fails on its fabric, not on a tool installed later."""
    ports = hardware.rdma_ports
    expected = f">= {min_gbps:g} Gb/s active (multi-node)"
    why = "pipeline parallelism across nodes needs an HDR (200 Gb/s) or faster fabric"
    # A replica that does not need several nodes is the change that needs no fabric at all.
    single = "deepseek_nodes = 1 (the model fits one node), or " if one_node_fits else ""
    if not ports:
        source = ("no RDMA device in /sys/class/infiniband (HCA driver not loaded?)"
                  + ("" if "ibstat" in hardware.unavailable else ", none in ibstat"))
        return Check("infiniband", expected, source, "fail", why,
                     f"{single}an InfiniBand HCA with an active port of >= {min_gbps:g} Gb/s on this node")
    source = "sysfs" if hardware.ib_sysfs_ports else "ibstat"
    active = [p for p in ports if p.state == "Active" and p.link_layer == "InfiniBand"]
    best = max((p.rate_gbps or 0 for p in active), default=0)
    if not active:
        fix = f"{single}an active InfiniBand port (none of {len(ports)} is: cabling, subnet manager)"
    else:
        fix = f"{single}InfiniBand ports of >= {min_gbps:g} Gb/s, or lower preflight_min_ib_gbps_multinode to {best:g}"
    passed = best >= min_gbps
    return Check("infiniband", expected, f"{len(active)} of {len(ports)} port(s) active, best {best:g} Gb/s ({source})",
                 "pass" if passed else "fail", why, "" if passed else fix)


def _fmt_gib(value: float) -> str:
    return f"{value:,.0f} GiB" if value >= 10 else f"{value:.1f} GiB"


def _at_most(value: float) -> str:
    """A threshold ``value`` passes (checks are ``found >= threshold``): whole from 10 up."""
    return f"{math.floor(value):g}" if value >= 10 else f"{math.floor(value * 10) / 10:g}"


def url_endpoint(url: str) -> tuple[str, int] | None:
    """(host, port) an http(s) URL connects to; None when it names none.

    >>> url_endpoint("https://hf.internal/"), url_endpoint("http://[fd00::5]:8080/m")
    (('hf.internal', 443), ('fd00::5', 8080))
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number in range
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _plan(model: ModelSpec, gpus: GpuSummary, engine: str, nodes: int, max_model_len: int | None,
          concurrency: int = 1) -> ServingPlan | None:
    if gpus.memory_mib is None or not gpus.count:
        return None
    try:
        return plan_serving(model, gpus.memory_mib, gpus.count, nodes=nodes, engine=engine, max_model_len=max_model_len,
                            concurrency=concurrency)
    except ValueError:
        return None


def _fits(model: ModelSpec, gpus: GpuSummary, engine: str, nodes: int, max_model_len: int | None = None,
          concurrency: int = 1) -> bool:
    plan = _plan(model, gpus, engine, nodes, max_model_len, concurrency)
    return plan is not None and plan.fits


def _most_concurrency(model: ModelSpec, gpus: GpuSummary, engine: str, nodes: int, max_model_len: int | None,
                      below: int) -> int:
    """The largest serve_target_concurrency under ``below`` that fits (0: not even one sequence)."""
    low, high = 0, below - 1  # fits(low) holds (0 trivially); find the largest that fits
    while low < high:
        middle = (low + high + 1) // 2
        if _fits(model, gpus, engine, nodes, max_model_len, middle):
            low = middle
        else:
            high = middle - 1
    return low


def _multimodal(model: ModelSpec) -> bool:
    return "VL" in model.architecture or "OCR" in model.architecture


def _model_that_fits(gpus: GpuSummary, engine: str, current: ModelSpec, concurrency: int = 1) -> ModelSpec | None:
    """The largest catalog model this engine serves on one node of these GPUs (of the same
    kind, text or vision, as ``current``): what to serve when ``current`` fits nowhere."""
    fitting = [
        spec for spec in list_models()
        if spec is not current and engine in spec.engines and _multimodal(spec) == _multimodal(current)
        and (gpus.compute_capability is None or spec.min_compute_capability <= gpus.compute_capability)
        and _fits(spec, gpus, engine, 1, concurrency=concurrency)
    ]
    return max(fitting, key=lambda spec: (spec.params_total_b, spec.weights_gb), default=None)


def _plan_fix(model: ModelSpec, gpus: GpuSummary, engine: str, requirements: Requirements, plan: ServingPlan) -> str:
    """The smallest change that makes the plan fit: a shorter requested context, more nodes
    (the plan's own search over node counts), another engine, else another model."""
    nodes = requirements.nodes
    batch = requirements.target_concurrency
    options: list[str] = []
    if requirements.max_model_len is not None:
        relaxed = _plan(model, gpus, engine, nodes, None, batch)  # the most that fits at this node count
        if relaxed is not None and relaxed.fits:
            options.append(f"deepseek_max_model_len = {relaxed.max_model_len} (the most that fits on "
                           f"{nodes} node{'' if nodes == 1 else 's'}"
                           + (f" for {batch} concurrent sequences)" if batch > 1 else ")"))
    if batch > 1:
        most = _most_concurrency(model, gpus, engine, nodes, requirements.max_model_len, batch)
        if most:
            options.append(f"serve_target_concurrency = {most} (the most that fit on {nodes} node"
                           f"{'' if nodes == 1 else 's'})")
    # plan.nodes: the fewest nodes of these GPUs whose layout fits (0: none within the search).
    if plan.nodes > nodes and _fits(model, gpus, engine, plan.nodes, requirements.max_model_len, batch):
        options.append(f"deepseek_nodes = {plan.nodes}")
    if options:
        return ", or ".join(options)
    if engine == "transformers":  # planned on one GPU; the sharding engines may fit
        options += [f"deepseek_engine = {other}" for other in ("vllm", "sglang")
                    if other in model.engines and _fits(model, gpus, other, nodes, requirements.max_model_len, batch)]
        if options:
            return ", or ".join(options)
    alternative = _model_that_fits(gpus, engine, model, batch)
    if alternative is not None:
        options.append(f"deepseek_model = {alternative.hf_repo} (the largest catalog model {engine} serves on one node "
                       "of these GPUs)")
    return ", or ".join(options) or "GPUs with more memory (no catalog model fits these)"


def _invalid_plan_fix(model: ModelSpec, engine: str, requirements: Requirements) -> str:
    if engine not in model.engines:
        return f"deepseek_engine = {' or '.join(sorted(model.engines))}"
    if requirements.max_model_len is not None and requirements.max_model_len > model.context_length:
        return f"deepseek_max_model_len = {model.context_length} or less, or unset it"
    return ""


def _capability_fix(model: ModelSpec, gpus: GpuSummary, engine: str, requirements: Requirements, found: float) -> str:
    needed = max(requirements.min_compute_capability, model.min_compute_capability)
    hardware = f"GPUs of compute capability >= {needed:.1f}"
    if model.min_compute_capability <= found:  # only the site's bar is above these GPUs
        return f"{hardware}, or lower preflight_min_compute_capability to {found:.1f}"
    alternative = _model_that_fits(gpus, engine, model) if gpus.memory_mib is not None else None
    if alternative is None:
        return hardware
    change = f"deepseek_model = {alternative.hf_repo} (needs {alternative.min_compute_capability:g})"
    if requirements.min_compute_capability > found:
        change += f" and lower preflight_min_compute_capability to {found:.1f}"
    return f"{change}, or {hardware}"


def _gpus_fix(model: ModelSpec, engine: str) -> str:
    if "transformers" in model.engines:
        return "deepseek_engine = transformers (serves on the CPU), or a host with NVIDIA GPUs"
    small = min((spec for spec in list_models() if "transformers" in spec.engines), key=lambda spec: spec.weights_gb)
    return (f"a host with NVIDIA GPUs ({model.name} runs on {' or '.join(sorted(model.engines))} only), or "
            f"deepseek_engine = transformers with deepseek_model = {small.hf_repo}")


def _storage_fix(model: ModelSpec, kept: int, size_gb: float, needed_gb: int) -> str:
    fix = f"weights_models_dir and preflight_weights_path on a filesystem of >= {needed_gb:,} GB"
    fewer = next((k for k in range(kept - 1, 0, -1) if required_disk_gb(model, k + 1) <= size_gb), None)
    if fewer is not None:
        fix += (f", or preflight_kept_releases = {fewer} and weights_keep_releases = {fewer} "
                "(fewer releases to roll back to)")
    return fix


_MODEL_PATH_FOUND = {
    "checkpoint": "config.json present", "no-config": "a directory without config.json",
    "not-a-directory": "not a directory", "missing": "nothing there",
}


def _precondition_checks(requirements: Requirements, preconditions: Mapping[str, Any] | None) -> list[Check]:
    """What later roles assume of the node, from the ``Preconditions`` fact's parsed result."""
    asked = preconditions or {}
    checks: list[Check] = []
    if requirements.model_path:
        path = requirements.model_path
        needed = f"checkpoint at {path} (serve_model_path)"
        state = asked.get("model_path")
        if state not in _MODEL_PATH_FOUND:
            checks.append(Check("model path", needed, "unknown", "warn", "the node could not be asked"))
        else:
            checks.append(Check(
                "model path", needed, _MODEL_PATH_FOUND[state], "pass" if state == "checkpoint" else "fail",
                "the engine loads serve_model_path as is; no role places it",
                "" if state == "checkpoint" else
                f"place the checkpoint at {path} or unset serve_model_path (the weights role's release is used)",
            ))
    if requirements.weights_endpoint:
        setting, url = requirements.weights_endpoint
        endpoint = url_endpoint(url)
        if endpoint is None:
            checks.append(Check("weights source", f"host:port of {setting}", f"none in {url}", "fail", "",
                                f"{setting} = http(s)://HOST[:PORT]/..."))
        else:
            address = f"[{endpoint[0]}]:{endpoint[1]}" if ":" in endpoint[0] else f"{endpoint[0]}:{endpoint[1]}"
            needed = f"TCP to {address} ({setting})"
            reach = asked.get("endpoint") or {}
            if reach.get("reachable") is None:
                checks.append(Check("weights source", needed, "unknown", "warn",
                                    reach.get("error") or "the node could not be asked"))
            elif reach["reachable"]:
                checks.append(Check("weights source", needed, "connected", "pass"))
            elif asked.get("release_present"):  # placed already: the role downloads nothing now
                checks.append(Check(
                    "weights source", needed, str(reach.get("error") or "unreachable"), "warn",
                    f"{requirements.release_path} is on disk already; only a new weights_revision needs {url}",
                ))
            else:
                checks.append(Check(
                    "weights source", needed, str(reach.get("error") or "unreachable"), "fail",
                    f"the weights role downloads from {url} on this node",
                    f"{setting} = a URL this node reaches, or open {address} to it (route, firewall, DNS)",
                ))
    return checks


def _references_check(references: Sequence[tuple[str, str]]) -> Check:
    settings = list(dict.fromkeys(setting for setting, _ in references))
    return Check(
        "hardware references", "settings name hardware this host has",
        f"{len(references)} not on this host ({', '.join(settings)})", "fail",
        "; ".join(f"{setting}: {message}" for setting, message in references),
        f"set {', '.join(settings)} to what this host has", itemised=True,
    )


def _cpu_or_stand_in_plan(model: ModelSpec, engine: str, gpus: GpuSummary, requirements: Requirements,
                          on_cpu: bool) -> ServingPlan:
    """The plan the memory terms are taken from when the GPU plan gives none: the CPU plan of
    an engine on the CPU, else every GPU of this host driven at the requested context."""
    if on_cpu:
        try:
            return plan_for_node(model, engine, gpu_count=gpus.count, gpu_memory_mib=gpus.memory_mib,
                                 nodes=requirements.nodes, max_model_len=requirements.max_model_len, use_gpus=False,
                                 concurrency=requirements.target_concurrency)
        except EngineConfigError:
            pass
    return ServingPlan(
        model=model.hf_repo, engine=engine, fits=False, tensor_parallel_size=max(gpus.count, 1) if not on_cpu else 1,
        pipeline_parallel_size=1, nodes=1, max_model_len=requirements.max_model_len or model.context_length,
        gpu_memory_utilization=DEFAULT_GPU_MEMORY_UTILIZATION[engine], weights_gib_per_gpu=0.0, kv_gib_per_gpu=0.0,
        reserve_gib_per_gpu=0.0, reason="", concurrency=requirements.target_concurrency,
    )


def memory_plan(hardware: Hardware, model: ModelSpec, engine: str, gpus: GpuSummary, plan: ServingPlan | None,
                requirements: Requirements) -> HostMemoryPlan:
    """The host-RAM terms of this configuration on this host (deepseek_infra/host_memory.py)."""
    inputs = requirements.host_memory
    present = hardware.hugepages.total_mib or (hardware.memory.hugepages_total or 0) * (
        hardware.memory.hugepage_size_kb or 0) // 1024
    inputs = replace(inputs, present_hugepages_mib=present)
    on_cpu = engine_on_cpu(engine, gpu_count=gpus.count, gpu_memory_mib=gpus.memory_mib, use_gpus=inputs.use_gpus)
    usable = plan is not None and plan.gpus and not on_cpu  # a plan with a layout (fitting or on more nodes)
    basis = plan if usable else _cpu_or_stand_in_plan(model, engine, gpus, requirements, on_cpu)
    mem_kb = hardware.memory.total_kb or (hardware.memory.total_mb * 1024 if hardware.memory.total_mb else None)
    return host_memory_plan(model, basis, on_cpu=on_cpu, inputs=inputs, mem_total_kb=mem_kb)


def _memory_fix(memory: HostMemoryPlan, requirements: Requirements, found: float) -> str:
    """A bigger host first, then each setting that alone frees enough, with the passing value."""
    bar = requirements.min_memory_gib
    needed = max(bar, memory.needed_gib)
    options = [f"a host with >= {math.ceil(needed):,} GiB of RAM"]
    short = memory.needed_gib - found  # GiB the terms exceed MemTotal by
    tmpfs = memory.term(TMPFS)
    if tmpfs is not None and tmpfs.gib >= short:
        options.append(f"weights_encrypt = false (no {tmpfs.gib:,.1f} GiB tmpfs of decrypted weights)")
    pool = memory.term(HUGEPAGES)
    if pool is not None and pool.gib >= short:
        inputs = requirements.host_memory
        page_gib = PAGE_SIZES_KB[inputs.hugepages_size] / 2**20
        pages = math.floor((pool.gib - short) / page_gib)
        managed = inputs.hugepages_count is not None or inputs.hugepages_share is not None
        if not managed:
            options.append(f"a hugepage pool of <= {pages} x {inputs.hugepages_size} (the host reserves "
                           f"{pool.gib:,.1f} GiB now: kernel_hugepages_count = {pages})")
        elif pages:
            options.append(f"kernel_hugepages_count = {pages} (the pool holds {pool.gib:,.1f} GiB now)")
        else:
            options.append(f"no hugepage pool (unset kernel_hugepages_count / kernel_hugepages_share: "
                           f"{pool.gib:,.1f} GiB now)")
    kv = memory.term(CPU_KV)
    if kv is not None and "serve_target_concurrency" in kv.settings and kv.gib >= short:
        batch = requirements.target_concurrency
        fitting = math.floor((kv.gib - short) / (kv.gib / batch))
        if 1 <= fitting < batch:
            options.append(f"serve_target_concurrency = {fitting} (the CPU engine's KV cache holds "
                           f"{kv.gib:,.1f} GiB for {batch} sequences)")
    text = ", or ".join(options)
    if found < bar and len(options) > 1:
        text += f"; below the site's bar too: with a setting, lower preflight_min_memory_gib to {_at_most(found)}"
    return text


def _memory_check(requirements: Requirements, memory: HostMemoryPlan) -> Check:
    bar = requirements.min_memory_gib
    planned = memory.needed_gib
    needed = (f">= {math.ceil(planned):,} GiB (serving plan), site bar {bar:g} GiB" if planned > bar
              else f">= {bar:g} GiB")
    detail = memory.describe()
    found = memory.mem_total_gib
    if found is None:
        return Check("memory", needed, "unknown", "warn", detail)
    if found < planned:
        return Check("memory", needed, _fmt_gib(found), "fail", detail, _memory_fix(memory, requirements, found),
                     itemised=True)
    if found < bar:
        return Check("memory", needed, _fmt_gib(found), "fail", detail,
                     f"a host with >= {bar:g} GiB of RAM, or lower preflight_min_memory_gib to {_at_most(found)}",
                     itemised=True)
    return Check("memory", needed, _fmt_gib(found), "pass", detail)


def evaluate(
    host: str,
    hardware: Hardware,
    weights_fs: dict[str, Any] | None,
    model: ModelSpec,
    engine: str,
    requirements: Requirements,
    *,
    preconditions: Mapping[str, Any] | None = None,
    hardware_references: Sequence[tuple[str, str]] = (),
) -> PreflightReport:
    """Compare the host with the requirements; never raises on missing data (verdicts say it).

    ``preconditions``: the parsed ``deepseek_infra.facts.preconditions.Preconditions`` fact,
    judged for ``requirements.model_path`` / ``weights_endpoint``; ``hardware_references``:
    (setting, message) for each setting naming hardware this host lacks (found elsewhere).
    """
    gpus = summarize_gpus(hardware)
    checks: list[Check] = []
    cpu_only_ok = engine == "transformers"

    if gpus.count == 0:
        checks.append(Check("gpus", ">= 1 NVIDIA GPU", "none", "warn" if cpu_only_ok else "fail",
                            "transformers can serve on the CPU" if cpu_only_ok else
                            f"{engine} needs NVIDIA GPUs; none was found by nvidia-smi or lspci",
                            "" if cpu_only_ok else _gpus_fix(model, engine)))
    else:
        checks.append(Check("gpus", ">= 1 NVIDIA GPU", f"{gpus.count} x {gpus.name or 'unknown model'}", "pass",
                            "" if gpus.source == "driver" else "from lspci (driver not installed yet)"))

    plan: ServingPlan | None = None
    plan_error: ValueError | None = None
    if gpus.count and gpus.memory_mib is not None:
        try:
            plan = plan_serving(model, gpus.memory_mib, gpus.count, nodes=requirements.nodes,
                                engine=engine, max_model_len=requirements.max_model_len,
                                concurrency=requirements.target_concurrency)
        except ValueError as error:
            plan_error = error
    if gpus.count:
        needed_cc = max(requirements.min_compute_capability, model.min_compute_capability)
        if gpus.memory_mib is None:
            checks.append(Check("gpu memory", f">= {requirements.min_gpu_memory_gib:g} GiB", "unknown", "warn",
                                "GPU model not in the device table and no driver yet: install the driver, then rerun"))
        else:
            memory_gib = gpus.memory_mib / 1024
            enough = memory_gib >= requirements.min_gpu_memory_gib
            checks.append(Check(
                "gpu memory", f">= {requirements.min_gpu_memory_gib:g} GiB per GPU", _fmt_gib(memory_gib),
                "pass" if enough else "fail", "",
                "" if enough else
                f"GPUs of >= {requirements.min_gpu_memory_gib:g} GiB, or lower preflight_min_gpu_memory_gib to "
                f"{_at_most(memory_gib)}" + (" (the serving plan fits these GPUs)" if plan and plan.fits else ""),
            ))
        if gpus.compute_capability is None:
            checks.append(Check("compute capability", f">= {needed_cc:.1f}", "unknown", "warn"))
        else:
            capable = gpus.compute_capability >= needed_cc
            checks.append(Check(
                "compute capability", f">= {needed_cc:.1f}", f"{gpus.compute_capability:.1f}",
                "pass" if capable else "fail",
                f"{model.name} ({model.dtype}) needs {model.min_compute_capability:g}; the brief's bar is "
                f"{requirements.min_compute_capability:g} (BF16)",
                "" if capable else _capability_fix(model, gpus, engine, requirements, gpus.compute_capability),
            ))
        if plan is not None:
            checks.append(Check(
                "serving plan", f"{model.name} on {requirements.nodes} node(s)",
                f"TP {plan.tensor_parallel_size} x PP {plan.pipeline_parallel_size}, len {plan.max_model_len}"
                + (f", {plan.concurrency} sequences" if plan.concurrency > 1 else "")
                if plan.fits else "does not fit",
                "pass" if plan.fits else "fail", plan.reason,
                "" if plan.fits else _plan_fix(model, gpus, engine, requirements, plan),
            ))
        elif plan_error is not None:
            checks.append(Check("serving plan", f"{model.name} on {engine}", "invalid", "fail", str(plan_error),
                                _invalid_plan_fix(model, engine, requirements)))

    cores = hardware.cpu.physical_cores
    checks.append(Check(
        "cpu cores", f">= {requirements.min_cpu_cores}", str(cores) if cores else "unknown",
        "warn" if cores is None else ("pass" if cores >= requirements.min_cpu_cores else "fail"), "",
        "" if cores is None or cores >= requirements.min_cpu_cores else
        f"a host with >= {requirements.min_cpu_cores} physical cores, or lower preflight_min_cpu_cores to {cores}",
    ))

    memory = memory_plan(hardware, model, engine, gpus, plan, requirements)
    checks.append(_memory_check(requirements, memory))

    disk_needed_gb = required_disk_gb(model, requirements.kept_releases + 1)
    if weights_fs and weights_fs.get("size_bytes"):
        size_gb = weights_fs["size_bytes"] / 1e9
        device = str(weights_fs.get("device") or "?")
        roomy = size_gb >= disk_needed_gb
        checks.append(Check(
            "weights storage", f">= {disk_needed_gb:,} GB ({requirements.kept_releases} kept + 1 new)",
            f"{size_gb:,.0f} GB on {device}",
            "pass" if roomy else "fail",
            "" if "nvme" in device else f"{weights_fs.get('existing_path')} is not on an NVMe device ({device})",
            "" if roomy else _storage_fix(model, requirements.kept_releases, size_gb, disk_needed_gb),
        ))
    else:
        checks.append(Check("weights storage", f">= {disk_needed_gb:,} GB", "unknown", "warn",
                            "the filesystem under the weights path could not be read"))

    gbps, where = _network_gbps(hardware)
    fast = gbps >= requirements.min_network_gbps
    checks.append(Check(
        "network", f">= {requirements.min_network_gbps:g} Gb/s", f"{gbps:g} Gb/s ({where})" if gbps else "unknown",
        "pass" if fast else ("warn" if not gbps else "fail"), "",
        "" if fast or not gbps else
        f"a NIC or InfiniBand port of >= {requirements.min_network_gbps:g} Gb/s, or lower preflight_min_network_gbps "
        f"to {gbps:g}",
    ))
    if requirements.nodes > 1:
        checks.append(_fabric_check(hardware, requirements.min_ib_gbps_multinode, _fits(model, gpus, engine, 1)))

    if gpus.driver_version:
        checks.append(Check("nvidia driver", "installed", gpus.driver_version, "pass"))
    elif gpus.count:
        checks.append(Check("nvidia driver", "installed", "not installed", "warn",
                            "the NVIDIA stack role installs it"))

    checks += _precondition_checks(requirements, preconditions)
    if hardware_references:
        checks.append(_references_check(hardware_references))

    return PreflightReport(host=host, model=model.hf_repo, engine=engine, gpus=gpus, checks=checks, plan=plan)


def reports_to_json(reports: list[PreflightReport]) -> str:
    return json.dumps({"hosts": [report.to_dict() for report in reports]}, indent=2, sort_keys=True) + "\n"
