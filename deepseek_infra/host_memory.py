"""Host RAM a serving plan needs, as named terms, and the engine unit's memory limits.

Pure module (no pyinfra): preflight sums the terms against MemTotal and refuses a host that
cannot hold them; the serve role derives the engine unit's ``MemoryMax=`` and
``OOMScoreAdjust=`` from the same plan and records both in /etc/deepseek/engine.json.

Terms (GiB = 2**30 bytes; MemTotal counts the hugepage pool and every tmpfs page):

* **decrypted weights (tmpfs)**: an encrypted release (``weights_encrypt``, the engine loading
  the weights role's release) is decrypted into a tmpfs at engine start
  (``deepseek-weights-decrypt@.service``). tmpfs pages live in RAM until unmounted and, on a
  ``noswap`` mount, can never leave it. Sized as ``tmpfs_size`` sizes the mount: the
  manifest's files page-rounded plus 16 MiB of slack; without the manifest at hand, the
  catalog's checkpoint size as one file (DeepSeek-V3: 688.6 GB = 641.3 GiB).
* **hugepage pool**: ``kernel_hugepages_count`` x ``kernel_hugepages_size`` (or
  ``kernel_hugepages_share`` of MemTotal, in whole pages, as the kernel role plans it). The
  pool leaves the ordinary page pool for good and no engine here maps hugetlbfs, so it is
  all cost. A host whose pool the kernel role leaves alone counts the pool it has now.
* **engine processes** (ENGINE_* below): estimates of the host RAM the engine's processes
  hold besides page cache (which the kernel reclaims, also inside the unit's cgroup):
  a front end per engine plus one process per GPU this node drives.
* **CPU engine weights / KV cache**: an engine on the CPU (``EngineSettings.on_cpu``) keeps
  the weights (this node's pipeline share) and its KV cache in host RAM: the KV cache of
  ``serve_target_concurrency`` sequences of max_model_len, or vLLM's
  ``VLLM_CPU_KVCACHE_SPACE`` GiB when serve_environment sets it.
* **OS reserve**: the kernel (slab, page tables), systemd, journald, sshd, Docker and the
  node agents (gateway, exporters, filebeat): OS_RESERVE_GIB.

``MemoryMax=`` of the engine unit is what the host can give the engine: MemTotal less the
terms that are not the engine's (tmpfs, hugepage pool, OS reserve), in whole GiB (MemTotal
moves by a few pages between boots; a limit that followed it would restart the engine), so
a runaway engine is stopped (OOM-killed inside its cgroup and restarted by its unit) before
it takes the decrypted weights' or the OS's memory; never less than the engine's own terms
x MEMORY_MAX_MARGIN (at least MEMORY_MAX_MIN_HEADROOM_GIB more), so an estimate on the low
side never kills a healthy engine (the lab runs vLLM's CPU build at about 2.9 GB RSS and
the transformers engine on small CPU models, under limits of 10 GiB and more). tmpfs pages
are charged to the cgroup that wrote them (the decrypt unit, its slice once it exits), not
to the engine that reads them: they are outside the engine's limit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from deepseek_infra.catalog import ModelSpec
from deepseek_infra.hugepages import PAGE_SIZES_KB
from deepseek_infra.sizing import KV_DTYPE_BYTES, ServingPlan
from deepseek_node.weights.manifest import FileEntry, Manifest
from deepseek_node.weights.plan import tmpfs_size

GIB: Final = 2**30
MIB: Final = 2**20

# --- engine estimates (GiB of host RAM, page cache excluded) --------------------------------
# Front end of a GPU engine: vLLM's API server and its EngineCore process, SGLang's
# tokenizer manager and detokenizer. Measured reference: the lab runs vLLM's CPU build
# (API server + EngineCore, a tiny model, no CUDA) at about 2.9 GB RSS; rounded up to 3.
ENGINE_FRONTEND_GIB: Final = MappingProxyType({"vllm": 3.0, "sglang": 3.0, "transformers": 0.0})
# Each process that drives one GPU (vLLM worker, SGLang scheduler of a TP rank, the
# transformers engine on a GPU): Python + PyTorch (~1 GiB, as in the front end), the CUDA
# libraries it maps (libtorch_cuda, cuBLAS/cuBLASLt, cuDNN, NCCL: ~1.5-2 GiB of text and
# data), the CUDA context's host side and pinned staging buffers. An estimate (no engine
# documents it), rounded up.
ENGINE_GPU_PROCESS_GIB: Final = 4.0
# vLLM's --swap-space (documented "CPU swap space size (GiB) per GPU", default 4) is NOT
# counted: the pinned vLLM (0.33, V1 engine only) never allocates it: V1's EngineCore
# sizes num_cpu_blocks to 0 and preempts by recompute (vllm-project/vllm#27984: "swap_space
# parameter is unused"). A V0 engine would add 4 GiB per GPU.
VLLM_SWAP_SPACE_GIB_PER_GPU: Final = 0.0
# An engine on the CPU (vLLM's CPU build, the transformers engine): its processes, besides
# the weights and KV cache counted apart; the same lab measurement (2.9 GB RSS), rounded up.
ENGINE_CPU_PROCESS_GIB: Final = 3.0
# The kernel, systemd, sshd, Docker and the node agents: the kernel role's hugepage reserve
# floor (deepseek_infra/hugepages.py DEFAULT_RESERVE_MB, "a minimal OS plus agents").
OS_RESERVE_GIB: Final = 8.0

# --- the engine unit's limits ---------------------------------------------------------------
MEMORY_MAX_MARGIN: Final = 1.25  # MemoryMax >= the engine's terms x this ...
MEMORY_MAX_MIN_HEADROOM_GIB: Final = 2.0  # ... and at least this much above them
# OOMScoreAdjust= of the engine unit (and a vLLM head's Ray head unit): the kernel's OOM
# killer scores a process by its share of RAM in thousandths plus this value, so -500 makes
# it pick the gateway, exporters and other small processes (seconds to restart) before an
# engine holding less than half the host (minutes to reload hundreds of GB of weights).
# Not -1000: the engine stays killable when it is the one that ran away; its own MemoryMax
# normally stops it first, inside its cgroup.
ENGINE_OOM_SCORE_ADJUST: Final = -500
# The kernel release that added tmpfs' noswap mount option (Linux 6.4, commit 2c6efe9cf2d7
# "shmem: add support to ignore swap"); a remount cannot add it, the mount must carry it.
TMPFS_NOSWAP_KERNEL: Final = (6, 4)

TMPFS = "decrypted weights (tmpfs)"
HUGEPAGES = "hugepage pool"
ENGINE = "engine processes"
CPU_WEIGHTS = "CPU engine weights"
CPU_KV = "CPU engine KV cache"
OS = "OS reserve"


@dataclass(frozen=True, slots=True)
class MemoryTerm:
    """One named share of the host's RAM."""

    name: str
    gib: float
    detail: str  # how the figure is computed
    settings: tuple[str, ...] = ()  # what changes it
    engine: bool = False  # part of the engine unit's own memory (under its MemoryMax)

    def describe(self) -> str:
        return f"{self.name} {_gib(self.gib)} ({self.detail})"


@dataclass(frozen=True, slots=True, kw_only=True)
class HostMemoryInputs:
    """What the terms depend on besides the plan: the roles' settings, read by the caller."""

    weights_encrypted: bool = False  # weights_encrypt, and the engine loads the weights role's release
    tmpfs_bytes: int | None = None  # tmpfs_size(manifest) when the manifest is at hand; None: the catalog size
    hugepages_count: int | None = None  # kernel_hugepages_count
    hugepages_share: float | None = None  # kernel_hugepages_share
    hugepages_size: str = "2M"  # kernel_hugepages_size
    present_hugepages_mib: int = 0  # the pool the host has now (counted when the kernel role plans none)
    use_gpus: bool = True  # serve_vllm_device / serve_transformers_device is not "cpu"
    cpu_kv_cache_gib: float | None = None  # VLLM_CPU_KVCACHE_SPACE of serve_environment (vLLM's CPU build)
    dtype: str = "auto"  # serve_transformers_dtype: float32 doubles a 16-bit checkpoint in RAM


@dataclass(frozen=True, slots=True, kw_only=True)
class HostMemoryPlan:
    """The terms, their sum against MemTotal, and the engine unit's limits."""

    terms: tuple[MemoryTerm, ...]
    mem_total_gib: float | None
    memory_max_bytes: int
    oom_score_adjust: int = ENGINE_OOM_SCORE_ADJUST

    @property
    def needed_gib(self) -> float:
        return sum(term.gib for term in self.terms)

    @property
    def engine_gib(self) -> float:
        return sum(term.gib for term in self.terms if term.engine)

    @property
    def fits(self) -> bool | None:
        """None when MemTotal is unknown."""
        return None if self.mem_total_gib is None else self.mem_total_gib >= self.needed_gib

    def term(self, name: str) -> MemoryTerm | None:
        return next((term for term in self.terms if term.name == name), None)

    def describe(self) -> str:
        """``tmpfs 641.3 GiB (...) + ... = 684.4 GiB``: every term with its figure."""
        return " + ".join(term.describe() for term in self.terms) + f" = {_gib(self.needed_gib)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "terms": [{"name": t.name, "gib": round(t.gib, 2), "detail": t.detail, "settings": list(t.settings),
                       "engine": t.engine} for t in self.terms],
            "needed_gib": round(self.needed_gib, 2),
            "mem_total_gib": None if self.mem_total_gib is None else round(self.mem_total_gib),  # stable across boots
            "engine_gib": round(self.engine_gib, 2),
            "memory_max_bytes": self.memory_max_bytes, "oom_score_adjust": self.oom_score_adjust,
        }


def _gib(value: float) -> str:
    return f"{value:,.1f} GiB"


def catalog_tmpfs_bytes(spec: ModelSpec) -> int:
    """``tmpfs_size`` of the catalog's checkpoint (one file of ``weights_gb``): what the decrypt
    unit mounts for this model when the release's manifest is not at hand."""
    entry = FileEntry(path="checkpoint", size=math.ceil(spec.weights_gb * 1e9), sha384="")
    return tmpfs_size(Manifest(model=spec.hf_repo, revision="catalog", files=(entry,)))


def hugepage_pool_bytes(inputs: HostMemoryInputs, mem_total_kb: int | None) -> tuple[int, str, tuple[str, ...]]:
    """(bytes, how, settings) of the hugepage pool: the kernel role's, else the host's present one."""
    if inputs.hugepages_count is not None or inputs.hugepages_share is not None:
        size_kb = PAGE_SIZES_KB[inputs.hugepages_size]
        settings = ("kernel_hugepages_count" if inputs.hugepages_count is not None else "kernel_hugepages_share",
                    "kernel_hugepages_size")
        if inputs.hugepages_count is not None:
            pages = inputs.hugepages_count
            how = f"kernel_hugepages_count {pages} x {inputs.hugepages_size}"
        else:
            pages = int((mem_total_kb or 0) * inputs.hugepages_share // size_kb)  # as plan_hugepages rounds it
            how = f"kernel_hugepages_share {inputs.hugepages_share:g} of MemTotal = {pages} x {inputs.hugepages_size}"
        return pages * size_kb * 1024, how, settings
    present = inputs.present_hugepages_mib * MIB
    return present, "reserved on the host now; the kernel role sets none", ("kernel_hugepages_count",)


def gpus_on_node(plan: ServingPlan) -> int:
    """GPUs one node of the plan's layout drives (vLLM: tp per pipeline stage; SGLang: tp / nodes)."""
    return plan.gpus // max(plan.nodes, 1) if plan.gpus else 0


def host_memory_plan(spec: ModelSpec, plan: ServingPlan, *, on_cpu: bool, inputs: HostMemoryInputs,
                     mem_total_kb: int | None) -> HostMemoryPlan:
    """The host RAM ``plan`` needs on one node of its layout, and the engine unit's limits.

    + spec, plan: the model and its serving plan (a CPU plan from ``engine.plan_for_node``)
    + on_cpu: the engine runs on the CPU (weights and KV cache in host RAM)
    + inputs: the settings the terms depend on
    + mem_total_kb: /proc/meminfo MemTotal; None when unknown
    """
    terms: list[MemoryTerm] = []
    if inputs.weights_encrypted:
        tmpfs = inputs.tmpfs_bytes if inputs.tmpfs_bytes is not None else catalog_tmpfs_bytes(spec)
        source = "the release's manifest" if inputs.tmpfs_bytes is not None else f"{spec.weights_gb:g} GB checkpoint"
        terms.append(MemoryTerm(TMPFS, tmpfs / GIB, f"weights_encrypt: tmpfs_size of the {source}",
                                ("weights_encrypt",)))
    pool, how, settings = hugepage_pool_bytes(inputs, mem_total_kb)
    if pool:
        terms.append(MemoryTerm(HUGEPAGES, pool / GIB, how, settings))
    engine = plan.engine
    nodes = max(plan.nodes, 1)
    if on_cpu:
        terms.append(MemoryTerm(ENGINE, ENGINE_CPU_PROCESS_GIB,
                                f"{engine} on the CPU: {ENGINE_CPU_PROCESS_GIB:g} GiB of processes", engine=True))
        factor = 2 if inputs.dtype == "float32" and spec.dtype == "bf16" else 1
        share = f" / {nodes} pipeline stages" if nodes > 1 else ""
        terms.append(MemoryTerm(CPU_WEIGHTS, spec.weights_gib * factor / nodes,
                                f"{spec.weights_gb:g} GB checkpoint{' as float32' if factor == 2 else ''}{share}",
                                ("deepseek_model",), engine=True))
        if engine == "vllm" and inputs.cpu_kv_cache_gib is not None:
            terms.append(MemoryTerm(CPU_KV, inputs.cpu_kv_cache_gib, "VLLM_CPU_KVCACHE_SPACE of serve_environment",
                                    ("serve_environment",), engine=True))
        else:
            per_token = spec.kv_cache_bytes_per_token(KV_DTYPE_BYTES) / nodes
            kv = per_token * plan.max_model_len * plan.concurrency / GIB
            terms.append(MemoryTerm(CPU_KV, kv, f"{plan.concurrency} x {plan.max_model_len} tokens x {per_token:,.0f} B",
                                    ("serve_target_concurrency", "deepseek_max_model_len"), engine=True))
    else:
        gpus = gpus_on_node(plan)
        frontend = ENGINE_FRONTEND_GIB[engine]
        per_gpu = ENGINE_GPU_PROCESS_GIB + (VLLM_SWAP_SPACE_GIB_PER_GPU if engine == "vllm" else 0.0)
        parts = [f"{frontend:g} GiB front end"] if frontend else []
        parts.append(f"{gpus} GPU process{'' if gpus == 1 else 'es'} x {per_gpu:g} GiB")
        terms.append(MemoryTerm(ENGINE, frontend + gpus * per_gpu, f"{engine}: " + " + ".join(parts), engine=True))
    terms.append(MemoryTerm(OS, OS_RESERVE_GIB, "kernel, systemd, sshd, Docker, gateway, exporters"))

    mem_total_gib = mem_total_kb * 1024 / GIB if mem_total_kb else None
    engine_gib = sum(term.gib for term in terms if term.engine)
    floor = max(engine_gib * MEMORY_MAX_MARGIN, engine_gib + MEMORY_MAX_MIN_HEADROOM_GIB)
    spare = (mem_total_gib - sum(term.gib for term in terms if not term.engine)) if mem_total_gib else 0.0
    # Whole GiB: MemTotal moves by a few pages between boots, and a MemoryMax= that followed it
    # would change the unit, which restarts the engine on the next deploy.
    limit = max(math.ceil(floor), math.floor(spare))
    return HostMemoryPlan(terms=tuple(terms), mem_total_gib=mem_total_gib, memory_max_bytes=limit * GIB)


def engine_cpu_kv_cache_gib(environment: Mapping[str, str]) -> float | None:
    """VLLM_CPU_KVCACHE_SPACE (GiB) of the engine's environment; None when unset or not a number."""
    value = environment.get("VLLM_CPU_KVCACHE_SPACE")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


_RELEASE = re.compile(r"^(\d+)\.(\d+)")


def kernel_version(release: str | None) -> tuple[int, int] | None:
    """(major, minor) of a kernel release (``uname -r``); None when it does not start with them.

    >>> kernel_version("6.8.0-48-generic"), kernel_version("6.1.0-28-amd64"), kernel_version(None)
    ((6, 8), (6, 1), None)
    """
    found = _RELEASE.match(release or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


@dataclass(frozen=True, slots=True)
class TmpfsSwap:
    """Whether the decrypt tmpfs is mounted ``noswap``, and why."""

    noswap: bool
    kernel_release: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"noswap": self.noswap, "kernel_release": self.kernel_release, "reason": self.reason}


def tmpfs_swap(kernel_release: str | None) -> TmpfsSwap:
    """``noswap`` where the running kernel has it (Linux >= 6.4), else a mount without it:
    there, pages of the decrypted weights may be written to swap under memory pressure."""
    version = kernel_version(kernel_release)
    needed = ".".join(map(str, TMPFS_NOSWAP_KERNEL))
    if version is None:
        return TmpfsSwap(False, kernel_release, f"kernel release {kernel_release or 'unknown'}: cannot tell whether "
                                                f"tmpfs has noswap (Linux >= {needed}); mounted without it")
    if version >= TMPFS_NOSWAP_KERNEL:
        return TmpfsSwap(True, kernel_release, f"Linux {kernel_release} >= {needed}: mounted noswap")
    return TmpfsSwap(False, kernel_release, f"Linux {kernel_release} < {needed} has no tmpfs noswap: mounted without "
                                            "it, decrypted weights may be swapped out (disable swap on this host, "
                                            f"or run Linux >= {needed})")
