"""Serving-plan sizing: does a DeepSeek model fit the GPUs, and with which layout?

Per GPU, a layout of ``tp`` (tensor parallel) x ``pp`` (pipeline parallel) ranks needs::

    weights_gib / (tp * pp)                                   # weights, evenly sharded
  + kv_bytes_per_token * kv_share(tp) / pp * max_model_len * concurrency
                                                            # that many full-length sequences
  + ENGINE_RESERVE_GIB[engine]                                # activations, CUDA graphs, NCCL
  <= gpu_memory_gib * gpu_memory_utilization

* ``kv_share``: MLA's compressed latent is not split by heads, so every TP rank keeps a
  full copy (share 1). GQA shards KV heads over TP ranks; past ``num_kv_heads`` ranks the
  heads are replicated, so the share is ``ceil(num_kv_heads / tp) / num_kv_heads``.
  Pipeline stages each hold ``1 / pp`` of the layers.
* KV cache is BF16 (2 bytes), the engines' default for these checkpoints.
* GPU memory is what ``nvidia-smi --query-gpu=memory.total`` reports, in MiB.

Layouts tried, smallest GPU count first (then fewest pipeline stages):

* vLLM: ``tp`` is a power of two, at most ``gpus_per_node``, dividing the attention
  heads; ``pp`` (1..nodes) spans nodes, one stage per node.
* SGLang: same ``tp`` choices on one node; across nodes SGLang runs one TP group over
  every GPU (``--tp 16 --nnodes 2`` in its DeepSeek docs), so ``tp = gpus_per_node * n``.
* transformers: one GPU only; it is for small models and smoke tests.

Context: a requested ``max_model_len`` must fit as is. Otherwise the model's full context
is used when it fits, else the largest multiple of 1024 tokens that fits, but never below
the model's ``min_context_length`` (4096; 32768 for R1-family reasoning models).

Concurrency (``serve_target_concurrency``): the KV cache must hold that many sequences of
``max_model_len`` at once, so the search asks for ``concurrency x context`` tokens per GPU
(the smallest layout that holds them, then the context as above, per sequence). It is a
sizing guarantee, not an engine limit: the engines batch as many sequences as their KV
pool holds (vLLM --max-num-seqs, SGLang --max-running-requests keep their defaults). A
requested ``max_model_len`` the target does not fit at fails, naming both settings; an
unset one is shortened for the target, never below ``min_context_length``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from deepseek_infra.catalog import MLA, ModelSpec, get_model

# Per-GPU memory kept outside weights and KV cache: CUDA context (~0.5 GiB, outside torch),
# NCCL buffers for TP/PP (~0.5-1 GiB), CUDA graphs (0.5-2 GiB) and the activation peak of
# a profiling batch (max_num_batched_tokens 8192). transformers captures no CUDA graphs.
ENGINE_RESERVE_GIB: Final = MappingProxyType({"vllm": 4.0, "sglang": 4.0, "transformers": 2.0})
# Share of GPU memory the engine may use. vLLM --gpu-memory-utilization defaults to 0.90;
# SGLang picks --mem-fraction-static between ~0.79 and 0.88 by GPU size, 0.85 is a safe middle;
# transformers has no such knob, 0.90 leaves the same headroom as vLLM.
DEFAULT_GPU_MEMORY_UTILIZATION: Final = MappingProxyType({"vllm": 0.90, "sglang": 0.85, "transformers": 0.90})
KV_DTYPE_BYTES: Final = 2
CONTEXT_ROUNDING: Final = 1024  # reduced max_model_len is a multiple of this
MAX_NODES_SEARCHED: Final = 64  # how far to look when telling a user what a model needs
DISK_SLACK: Final = 1.10  # 10 % on top of the checkpoint for tokenizer, index and partial downloads

_ENGINE_NAMES = {"vllm": "vLLM", "sglang": "SGLang", "transformers": "transformers"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingPlan:
    """Outcome of plan_serving().

    When ``fits`` is False the layout fields describe the smallest layout that would fit
    on more nodes of the same GPUs (0 when none does within 64 nodes).
    """

    model: str  # hf_repo
    engine: str
    fits: bool
    tensor_parallel_size: int
    pipeline_parallel_size: int
    nodes: int  # nodes the layout occupies
    max_model_len: int
    gpu_memory_utilization: float
    weights_gib_per_gpu: float
    kv_gib_per_gpu: float  # KV cache for ``concurrency`` sequences of max_model_len
    reserve_gib_per_gpu: float
    reason: str  # one or two sentences for a human
    concurrency: int = 1  # sequences of max_model_len the KV cache holds at once (serve_target_concurrency)

    @property
    def gpus(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @property
    def gpus_per_node(self) -> int:
        return self.gpus // max(self.nodes, 1)


@dataclass(frozen=True, slots=True)
class _Layout:
    tp: int
    pp: int
    nodes: int

    @property
    def gpus(self) -> int:
        return self.tp * self.pp

    def describe(self) -> str:
        text = f"tensor parallel {self.tp}"
        if self.pp > 1:
            text += f" x pipeline parallel {self.pp}"
        return text + (f", {self.nodes} nodes" if self.nodes > 1 else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def tensor_parallel_sizes(num_attention_heads: int, gpus_per_node: int) -> tuple[int, ...]:
    """TP sizes allowed inside one node: powers of two dividing the attention heads.

    >>> tensor_parallel_sizes(28, 8)
    (1, 2, 4)
    """
    sizes, tp = [], 1
    while tp <= gpus_per_node:
        if num_attention_heads % tp == 0:
            sizes.append(tp)
        tp *= 2
    return tuple(sizes)


def _layouts(engine: str, heads: int, gpus_per_node: int, nodes: int) -> list[_Layout]:
    in_node = tensor_parallel_sizes(heads, gpus_per_node)
    if engine == "transformers":
        return [_Layout(1, 1, 1)]
    if engine == "vllm":
        found = [_Layout(tp, pp, pp) for pp in range(1, nodes + 1) for tp in in_node]
    else:  # sglang
        found = [_Layout(tp, 1, 1) for tp in in_node]
        found += [_Layout(gpus_per_node * n, 1, n) for n in range(2, nodes + 1) if heads % (gpus_per_node * n) == 0]
    return sorted(found, key=lambda lay: (lay.gpus, lay.pp))


def _kv_gib_per_token(spec: ModelSpec, layout: _Layout) -> float:
    per_token = spec.kv_cache_bytes_per_token(KV_DTYPE_BYTES)
    if isinstance(spec.attention, MLA):
        share = 1.0
    else:
        kv_heads = spec.attention.num_kv_heads
        share = math.ceil(kv_heads / layout.tp) / kv_heads
    return per_token * share / layout.pp / 2**30


@dataclass(frozen=True, slots=True)
class _Fit:
    layout: _Layout
    weights: float
    kv_per_token: float
    free_for_kv: float  # GiB left for KV after weights and reserve (may be negative)

    def max_tokens(self) -> int:
        return max(0, int(self.free_for_kv / self.kv_per_token)) if self.kv_per_token else 1 << 62


def _fit(spec: ModelSpec, layout: _Layout, budget: float, reserve: float) -> _Fit:
    weights = spec.weights_gib / layout.gpus
    return _Fit(layout, weights, _kv_gib_per_token(spec, layout), budget - reserve - weights)


def _first_fit(spec: ModelSpec, layouts: list[_Layout], budget: float, reserve: float, need_tokens: int) -> _Fit | None:
    for layout in layouts:
        fit = _fit(spec, layout, budget, reserve)
        if fit.max_tokens() >= need_tokens:
            return fit
    return None


def _validate(gpu_memory_mib: float, gpus_per_node: int, nodes: int, util: float, concurrency: int) -> None:
    if isinstance(gpu_memory_mib, bool) or not isinstance(gpu_memory_mib, (int, float)) or gpu_memory_mib <= 0:
        raise ValueError(f"gpu_memory_mib: expected a positive number of MiB (nvidia-smi memory.total), found {gpu_memory_mib!r}")
    if isinstance(gpus_per_node, bool) or not isinstance(gpus_per_node, int) or gpus_per_node < 1:
        raise ValueError(f"gpus_per_node: expected an integer >= 1, found {gpus_per_node!r}")
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ValueError(f"nodes: expected an integer >= 1, found {nodes!r}")
    if not 0 < util <= 1:
        raise ValueError(f"gpu_memory_utilization: expected a fraction in (0, 1], found {util!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency: expected an integer >= 1 (serve_target_concurrency), found {concurrency!r}")


def _sequences(concurrency: int, tokens: int) -> str:
    return f"{concurrency} concurrent sequences of {tokens} tokens"


def _most_sequences(spec: ModelSpec, layouts: list[_Layout], budget: float, reserve: float,
                    context: int) -> tuple[int, _Layout | None]:
    """The most sequences of ``context`` tokens any of ``layouts`` holds, and the layout."""
    best, where = 0, None
    for layout in layouts:
        held = _fit(spec, layout, budget, reserve).max_tokens() // context
        if held > best:
            best, where = held, layout
    return best, where


def _longest_context(spec: ModelSpec, layouts: list[_Layout], budget: float, reserve: float, concurrency: int) -> int:
    """The longest context (a multiple of 1024) ``concurrency`` sequences get on any of ``layouts``."""
    return max((_fit(spec, layout, budget, reserve).max_tokens() // concurrency // CONTEXT_ROUNDING * CONTEXT_ROUNDING
                for layout in layouts), default=0)


def plan_serving(
    model: ModelSpec | str,
    gpu_memory_mib: float,
    gpus_per_node: int,
    nodes: int = 1,
    engine: str = "vllm",
    max_model_len: int | None = None,
    gpu_memory_utilization: float | None = None,
    concurrency: int = 1,
) -> ServingPlan:
    """Pick the smallest layout that serves ``model`` on these GPUs, or explain why none does.

    + model: a ModelSpec, repo id or alias
    + gpu_memory_mib: memory of one GPU, MiB, as nvidia-smi reports it
    + gpus_per_node: GPUs in each node
    + nodes: nodes available
    + engine: "vllm", "sglang" or "transformers"; must be one the model supports
    + max_model_len: context to guarantee; None picks the full context or the most that fits
    + gpu_memory_utilization: share of GPU memory the engine may use; None = engine default
    + concurrency: sequences of max_model_len the KV cache must hold at once (serve_target_concurrency)
    """
    spec = model if isinstance(model, ModelSpec) else get_model(model)
    if engine not in ENGINE_RESERVE_GIB:
        raise ValueError(f"engine: expected one of {sorted(ENGINE_RESERVE_GIB)}, found {engine!r}")
    if engine not in spec.engines:
        raise ValueError(f"{spec.name}: engine {engine!r} is not supported; supported: {', '.join(sorted(spec.engines))}")
    util = DEFAULT_GPU_MEMORY_UTILIZATION[engine] if gpu_memory_utilization is None else gpu_memory_utilization
    _validate(gpu_memory_mib, gpus_per_node, nodes, util, concurrency)
    if max_model_len is not None and not 0 < max_model_len <= spec.context_length:
        raise ValueError(f"{spec.name}: max_model_len: expected 1..{spec.context_length}, found {max_model_len!r}")

    gpu_gib = gpu_memory_mib / 1024
    budget = gpu_gib * util
    reserve = ENGINE_RESERVE_GIB[engine]
    need = max_model_len if max_model_len is not None else spec.min_context_length
    batch = concurrency  # sequences the KV cache holds at once
    heads = spec.num_attention_heads
    what = f"{spec.name} ({spec.dtype.upper()}, {spec.weights_gib:.0f} GiB of weights)"
    gpu_text = f"GPUs of {gpu_gib:.0f} GiB"

    def plan(fit: _Fit | None, fits: bool, tokens: int, reason: str) -> ServingPlan:
        return ServingPlan(
            model=spec.hf_repo, engine=engine, fits=fits, tensor_parallel_size=fit.layout.tp if fit else 0,
            pipeline_parallel_size=fit.layout.pp if fit else 0, nodes=fit.layout.nodes if fit else 0,
            max_model_len=tokens, gpu_memory_utilization=util,
            weights_gib_per_gpu=round(fit.weights, 2) if fit else 0.0,
            kv_gib_per_gpu=round(fit.kv_per_token * tokens * batch, 2) if fit else 0.0,
            reserve_gib_per_gpu=reserve, reason=reason, concurrency=batch,
        )

    available = _layouts(engine, heads, gpus_per_node, nodes)
    fit = _first_fit(spec, available, budget, reserve, need * batch)
    if fit is None:
        more_nodes = range(nodes + 1, MAX_NODES_SEARCHED + 1) if engine != "transformers" else range(0)
        needed = next((found for more in more_nodes
                       if (found := _first_fit(spec, _layouts(engine, heads, gpus_per_node, more), budget, reserve,
                                               need * batch))),
                      None)
        tp_sizes = tensor_parallel_sizes(heads, gpus_per_node)
        limit = (f"; tensor parallel is limited to {tp_sizes[-1]} per node because it must divide its {heads} attention heads"
                 if tp_sizes[-1] < gpus_per_node and engine != "transformers" else "")
        context = f"{need} tokens of context" if batch == 1 else _sequences(batch, need)
        if engine == "transformers":
            one = _fit(spec, _Layout(1, 1, 1), budget, reserve)
            reason = (f"{what} needs {one.weights + reserve + one.kv_per_token * need * batch:.1f} GiB on one GPU for "
                      f"{context} but a GPU of {gpu_gib:.0f} GiB offers {budget:.1f} GiB at gpu_memory_utilization "
                      f"{util:.2f}; transformers is planned on a single GPU, use vllm or sglang to shard the model.")
        elif needed is None:
            reason = (f"{what} does not fit any {_ENGINE_NAMES[engine]} layout of {gpu_text} with {context} "
                      f"within {MAX_NODES_SEARCHED} nodes{limit}.")
        else:
            reason = (f"{what} needs {_count(needed.layout.gpus, 'GPU')} of {gpu_gib:.0f} GiB ({needed.layout.describe()}) "
                      f"for {context} at gpu_memory_utilization {util:.2f}, but only {_count(nodes, 'node')} of "
                      f"{_count(gpus_per_node, 'GPU')} {'is' if nodes == 1 else 'are'} available{limit}.")
        if batch > 1:
            reason += " " + _concurrency_limits(spec, available, budget, reserve, need, batch, max_model_len)
        return plan(needed, False, need, reason)

    full = spec.context_length
    per_sequence = fit.max_tokens() // batch  # context each of the batch's sequences can have
    many = "" if batch == 1 else f" for {batch} concurrent sequences"
    if max_model_len is not None:
        tokens, note = max_model_len, f"the requested max_model_len {max_model_len}{many}"
    elif per_sequence >= full:
        tokens, note = full, f"its full {full}-token context{many}"
    else:
        tokens = max(need, per_sequence // CONTEXT_ROUNDING * CONTEXT_ROUNDING)
        needs = "the full context needs" if batch == 1 else f"{batch} sequences of the full context need"
        note = (f"max_model_len reduced to {tokens} of {full} tokens{many} ({needs} "
                f"{fit.kv_per_token * full * batch:.1f} GiB of KV cache per GPU, "
                f"{max(fit.free_for_kv, 0):.1f} GiB is left)")
        roomier = _first_fit(spec, available, budget, reserve, full * batch)
        if roomier is not None:
            note += f"; {roomier.layout.describe()} would allow the full context"
    kv_text = "" if batch == 1 else f" ({batch} x {tokens} tokens)"
    reason = (f"{what} fits on {_count(fit.layout.gpus, 'GPU')} of {gpu_gib:.0f} GiB ({fit.layout.describe()}) with {note}: per GPU "
              f"{fit.weights:.1f} GiB of weights + {fit.kv_per_token * tokens * batch:.1f} GiB of KV cache{kv_text} + "
              f"{reserve:.1f} GiB {_ENGINE_NAMES[engine]} reserve within {budget:.1f} GiB "
              f"(gpu_memory_utilization {util:.2f}).")
    return plan(fit, True, tokens, reason)


def _concurrency_limits(spec: ModelSpec, layouts: list[_Layout], budget: float, reserve: float, need: int,
                        batch: int, max_model_len: int | None) -> str:
    """What these nodes do hold when ``batch`` sequences of ``need`` tokens do not fit: the
    settings to lower, with the values that fit."""
    held, where = _most_sequences(spec, layouts, budget, reserve, need)
    if where is None:
        return (f"Not one sequence of {need} tokens fits on these nodes, whatever serve_target_concurrency "
                f"({batch}) is.")
    text = (f"At {need} tokens per sequence {where.describe()} holds {held}: serve_target_concurrency {batch} is "
            f"more than these GPUs hold, lower it to {held}")
    if max_model_len is not None:
        longest = _longest_context(spec, layouts, budget, reserve, batch)
        if longest >= CONTEXT_ROUNDING:
            text += f", or lower deepseek_max_model_len to {longest} for {batch} sequences"
        if _first_fit(spec, layouts, budget, reserve, spec.min_context_length * batch) is not None:
            text += " (or unset deepseek_max_model_len: the plan shortens the context for them)"
    return text + "."


def required_disk_gb(model: ModelSpec | str, kept_releases: int = 1) -> int:
    """Disk (decimal GB, rounded up) to keep ``kept_releases`` downloaded copies of the weights.

    A rollback keeps the previous release next to the current one, so 2 is typical.
    """
    spec = model if isinstance(model, ModelSpec) else get_model(model)
    if isinstance(kept_releases, bool) or not isinstance(kept_releases, int) or kept_releases < 1:
        raise ValueError(f"kept_releases: expected an integer >= 1, found {kept_releases!r}")
    return math.ceil(spec.weights_gb * kept_releases * DISK_SLACK)
