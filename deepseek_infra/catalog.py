"""Catalog of the open-weight DeepSeek models this collection can deploy.

Every figure comes from the model's Hugging Face page: ``config.json`` for the
architecture (layers, heads, MLA ranks, ``max_position_embeddings``), the model card
for parameter counts, and the "Files and versions" listing for the checkpoint size
(decimal GB, as Hugging Face prints it). The source is cited next to each entry.

Minimum compute capability (a decision, documented here once):

* FP8 checkpoints (V3, R1, V3.1 family) need **8.9** (Ada/Hopper): that is where vLLM
  and SGLang run the 128x128 block-scaled FP8 GEMMs natively. vLLM can run FP8
  weight-only on Ampere through Marlin kernels and SGLang asks A100 users to convert
  to BF16 first; neither path is supported by this collection, so Ampere is refused.
* DeepSeek-V3.2-Exp needs **9.0**: its sparse-attention kernels (FlashMLA sparse,
  DeepGEMM indexer) ship for Hopper and Blackwell only (vLLM blog 2025-09-29,
  "Only Hopper and Blackwell data center GPUs are supported for now").
* BF16 checkpoints need **8.0** (Ampere): older GPUs have no BF16 and engines fall back
  to FP16, which these checkpoints were not validated for.

Pure module: no pyinfra import.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

Dtype = Literal["fp8", "bf16"]
Engine = Literal["vllm", "sglang", "transformers"]

ENGINES: frozenset[str] = frozenset({"vllm", "sglang", "transformers"})
_DTYPES = frozenset({"fp8", "bf16"})


class UnknownModelError(ValueError):
    """A model name that is neither a catalog repo id nor an alias."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MLA:
    """Multi-head latent attention: one compressed latent + RoPE key per token and layer.

    ``indexer_key_bytes`` is the per-token, per-layer key cache of DeepSeek Sparse
    Attention's lightning indexer (V3.2 only). vLLM stores it as FP8 keys of
    ``index_head_dim`` (128) plus one FP32 scale per 128-value block: 128 + 4 = 132 bytes,
    independent of the KV-cache dtype.
    """

    kv_lora_rank: int
    qk_rope_head_dim: int
    num_layers: int
    indexer_key_bytes: int = 0

    def bytes_per_token(self, kv_dtype_bytes: int) -> int:
        latent = (self.kv_lora_rank + self.qk_rope_head_dim) * kv_dtype_bytes
        return self.num_layers * (latent + self.indexer_key_bytes)


@dataclass(frozen=True, slots=True, kw_only=True)
class GQA:
    """Grouped-query (or plain multi-head, when kv heads == heads) attention."""

    num_layers: int
    num_kv_heads: int
    head_dim: int

    def bytes_per_token(self, kv_dtype_bytes: int) -> int:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * kv_dtype_bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """What the sizing and deploy code needs to know about one released checkpoint."""

    hf_repo: str  # Hugging Face repo id, the catalog key ("deepseek-ai/DeepSeek-V3")
    aliases: tuple[str, ...]  # short names accepted by get_model(), lower case
    params_total_b: float  # parameters in billions, as on the model card
    params_active_b: float  # parameters active per token (== total for dense models)
    dtype: Dtype  # dtype of the released weights
    weights_gb: float  # checkpoint size on disk, decimal GB (HF "Files and versions")
    context_length: int  # config.json max_position_embeddings
    architecture: str  # config.json architectures[0]
    attention: MLA | GQA  # what the KV cache stores per token
    num_attention_heads: int  # tensor parallel size must divide this
    engines: frozenset[str]  # engines known to serve this checkpoint
    min_compute_capability: float  # see module docstring
    min_context_length: int = 4096  # smallest max_model_len worth serving (sizing)

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(f"{self.hf_repo}: dtype: expected one of {sorted(_DTYPES)}, found {self.dtype!r}")
        unknown = set(self.engines) - ENGINES
        if unknown or not self.engines:
            raise ValueError(f"{self.hf_repo}: engines: expected a non-empty subset of {sorted(ENGINES)}, found {sorted(self.engines)!r}")
        if self.min_context_length > self.context_length:
            raise ValueError(f"{self.hf_repo}: min_context_length {self.min_context_length} exceeds context_length {self.context_length}")

    @property
    def name(self) -> str:
        """Repo name without the organisation ("DeepSeek-V3")."""
        return self.hf_repo.split("/", 1)[1]

    @property
    def weights_gib(self) -> float:
        return self.weights_gb * 1e9 / 2**30

    def kv_cache_bytes_per_token(self, kv_dtype_bytes: int = 2) -> int:
        """KV-cache bytes one token occupies across all layers (whole model, no sharding).

        MLA: ``num_layers * (kv_lora_rank + qk_rope_head_dim) * bytes`` (+ indexer keys).
        GQA: ``2 * num_layers * num_kv_heads * head_dim * bytes``.
        """
        if kv_dtype_bytes not in (1, 2, 4):
            raise ValueError(f"{self.hf_repo}: kv_dtype_bytes: expected 1, 2 or 4, found {kv_dtype_bytes!r}")
        return self.attention.bytes_per_token(kv_dtype_bytes)


_BIG = frozenset({"vllm", "sglang"})
_ALL = frozenset({"vllm", "sglang", "transformers"})
# R1-family models think for tens of thousands of tokens; the model cards evaluate
# them with "a maximum generation length of 32,768 tokens", so sizing will not offer
# them a shorter context.
_REASONING_MIN_CONTEXT = 32768

# DeepSeek-V3 architecture, shared by V3, R1, R1-0528, V3.1 and (plus indexer) V3.2-Exp.
# config.json (huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json):
# num_hidden_layers 61, num_attention_heads 128, kv_lora_rank 512, qk_rope_head_dim 64,
# max_position_embeddings 163840, quantization_config fp8 e4m3, 128x128 blocks.
# Model card: 671B total / 37B activated (+14B MTP module = 685B on HF).
_V3_MLA = MLA(kv_lora_rank=512, qk_rope_head_dim=64, num_layers=61)
# Checkpoint: 163 safetensors shards, 688.6 GB in total (HF "Files and versions", ~689 GB).
_V3_WEIGHTS_GB = 688.6


def _v3_family(repo: str, aliases: tuple[str, ...], *, architecture: str = "DeepseekV3ForCausalLM",
               attention: MLA = _V3_MLA, weights_gb: float = _V3_WEIGHTS_GB,
               min_cc: float = 8.9, min_context: int = _REASONING_MIN_CONTEXT) -> ModelSpec:
    return ModelSpec(
        hf_repo=repo, aliases=aliases, params_total_b=671, params_active_b=37, dtype="fp8",
        weights_gb=weights_gb, context_length=163840, architecture=architecture,
        attention=attention, num_attention_heads=128, engines=_BIG,
        min_compute_capability=min_cc, min_context_length=min_context,
    )


def _distill(repo: str, aliases: tuple[str, ...], *, params_b: float, weights_gb: float,
             architecture: str, layers: int, heads: int, kv_heads: int) -> ModelSpec:
    # All six distills: config.json max_position_embeddings 131072, head_dim 128
    # (hidden_size / num_attention_heads), torch_dtype bfloat16.
    return ModelSpec(
        hf_repo=repo, aliases=aliases, params_total_b=params_b, params_active_b=params_b,
        dtype="bf16", weights_gb=weights_gb, context_length=131072, architecture=architecture,
        attention=GQA(num_layers=layers, num_kv_heads=kv_heads, head_dim=128),
        num_attention_heads=heads, engines=_ALL, min_compute_capability=8.0,
        min_context_length=_REASONING_MIN_CONTEXT,
    )


_MODELS: tuple[ModelSpec, ...] = (
    # --- Full-size MoE models (FP8) ------------------------------------------------
    _v3_family("deepseek-ai/DeepSeek-V3", ("deepseek-v3", "v3"), min_context=4096),
    # R1 / R1-0528: same config.json as V3 (architectures DeepseekV3ForCausalLM, 61 layers).
    _v3_family("deepseek-ai/DeepSeek-R1", ("deepseek-r1", "r1")),
    _v3_family("deepseek-ai/DeepSeek-R1-0528", ("deepseek-r1-0528", "r1-0528")),
    # V3.1: same architecture and shard layout (hybrid thinking mode, UE8M0 FP8 scales).
    _v3_family("deepseek-ai/DeepSeek-V3.1", ("deepseek-v3.1", "v3.1")),
    # V3.2-Exp: config.json architectures DeepseekV32ForCausalLM, model_type deepseek_v32,
    # index_head_dim 128, index_n_heads 64, index_topk 2048; otherwise V3. ~689 GB on HF.
    _v3_family(
        "deepseek-ai/DeepSeek-V3.2-Exp", ("deepseek-v3.2-exp", "v3.2-exp"),
        architecture="DeepseekV32ForCausalLM",
        attention=MLA(kv_lora_rank=512, qk_rope_head_dim=64, num_layers=61, indexer_key_bytes=132),
        weights_gb=689.0, min_cc=9.0,
    ),
    # --- R1 distills (dense, BF16) ------------------------------------------------------
    # Qwen2ForCausalLM; 28 layers, 12 heads, 2 kv heads (config.json); 1.78B params, model.safetensors 3.55 GB.
    _distill("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", ("deepseek-r1-distill-qwen-1.5b", "r1-distill-qwen-1.5b"),
             params_b=1.78, weights_gb=3.55, architecture="Qwen2ForCausalLM", layers=28, heads=12, kv_heads=2),
    # Qwen2ForCausalLM; 28 layers, 28 heads, 4 kv heads; 7.62B params, 2 shards 8.61 + 6.62 GB.
    _distill("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", ("deepseek-r1-distill-qwen-7b", "r1-distill-qwen-7b"),
             params_b=7.62, weights_gb=15.23, architecture="Qwen2ForCausalLM", layers=28, heads=28, kv_heads=4),
    # Qwen2ForCausalLM; 48 layers, 40 heads, 8 kv heads; 14.8B params, 4 shards 29.5 GB.
    _distill("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", ("deepseek-r1-distill-qwen-14b", "r1-distill-qwen-14b"),
             params_b=14.8, weights_gb=29.54, architecture="Qwen2ForCausalLM", layers=48, heads=40, kv_heads=8),
    # Qwen2ForCausalLM; 64 layers, 40 heads, 8 kv heads; 32.8B params, 8 shards 65.5 GB.
    _distill("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", ("deepseek-r1-distill-qwen-32b", "r1-distill-qwen-32b"),
             params_b=32.8, weights_gb=65.53, architecture="Qwen2ForCausalLM", layers=64, heads=40, kv_heads=8),
    # LlamaForCausalLM; 32 layers, 32 heads, 8 kv heads; 8.03B params, 2 shards 8.67 + 7.39 GB.
    _distill("deepseek-ai/DeepSeek-R1-Distill-Llama-8B", ("deepseek-r1-distill-llama-8b", "r1-distill-llama-8b"),
             params_b=8.03, weights_gb=16.06, architecture="LlamaForCausalLM", layers=32, heads=32, kv_heads=8),
    # LlamaForCausalLM; 80 layers, 64 heads, 8 kv heads; 70.6B params, 17 shards 141.1 GB.
    _distill("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", ("deepseek-r1-distill-llama-70b", "r1-distill-llama-70b"),
             params_b=70.6, weights_gb=141.1, architecture="LlamaForCausalLM", layers=80, heads=64, kv_heads=8),
    # --- Vision-language (BF16) -----------------------------------------------------
    # DeepseekVLV2ForCausalLM. Card: "DeepSeekMoE-3B (total activated parameters are 1.0B)",
    # 3.37B params (6.74 GB). language_config: 12 layers, hidden 1280, 10 heads, 10 kv heads,
    # kv_lora_rank null (plain MHA, head_dim 128), max_position_embeddings 4096.
    # Served by vLLM and SGLang; plain transformers needs DeepSeek's deepseek_vl2 package.
    ModelSpec(
        hf_repo="deepseek-ai/deepseek-vl2-tiny", aliases=("vl2-tiny",), params_total_b=3.37,
        params_active_b=1.0, dtype="bf16", weights_gb=6.74, context_length=4096,
        architecture="DeepseekVLV2ForCausalLM", attention=GQA(num_layers=12, num_kv_heads=10, head_dim=128),
        num_attention_heads=10, engines=_BIG, min_compute_capability=8.0,
    ),
    # Card: 2.8B activated, 16.1B total; 4 shards 8.59*3 + 6.52 = 32.29 GB.
    # language_config (DeepSeekMoE-16B / V2-Lite): 27 layers, 16 heads, MLA kv_lora_rank 512, rope 64.
    ModelSpec(
        hf_repo="deepseek-ai/deepseek-vl2-small", aliases=("vl2-small",), params_total_b=16.1,
        params_active_b=2.8, dtype="bf16", weights_gb=32.29, context_length=4096,
        architecture="DeepseekVLV2ForCausalLM", attention=MLA(kv_lora_rank=512, qk_rope_head_dim=64, num_layers=27),
        num_attention_heads=16, engines=_BIG, min_compute_capability=8.0,
    ),
    # Card: 4.5B activated, 27.5B total; 8 shards, 54.95 GB (HF shows 55 GB).
    # language_config (DeepSeekMoE-27B): 30 layers, 32 heads, MLA kv_lora_rank 512, rope 64.
    ModelSpec(
        hf_repo="deepseek-ai/deepseek-vl2", aliases=("vl2", "deepseek-vl2-base", "vl2-base"),
        params_total_b=27.5, params_active_b=4.5, dtype="bf16", weights_gb=54.95, context_length=4096,
        architecture="DeepseekVLV2ForCausalLM", attention=MLA(kv_lora_rank=512, qk_rope_head_dim=64, num_layers=30),
        num_attention_heads=32, engines=_BIG, min_compute_capability=8.0,
    ),
    # DeepseekOCRForCausalLM (model_type deepseek_vl_v2). language_config: 12 layers, hidden 1280,
    # 10 heads, 10 kv heads, use_mla false, max_position_embeddings 8192. Card: DeepEncoder +
    # DeepSeek3B-MoE-A570M; one shard of 6.67 GB. vLLM upstream and transformers (remote code).
    ModelSpec(
        hf_repo="deepseek-ai/DeepSeek-OCR", aliases=("deepseek-ocr", "ocr"), params_total_b=3.34,
        params_active_b=0.57, dtype="bf16", weights_gb=6.67, context_length=8192,
        architecture="DeepseekOCRForCausalLM", attention=GQA(num_layers=12, num_kv_heads=10, head_dim=128),
        num_attention_heads=10, engines=frozenset({"vllm", "transformers"}), min_compute_capability=8.0,
    ),
    # --- Other text models (BF16) ---------------------------------------------------
    # DeepseekV2ForCausalLM; config.json: 27 layers, 16 heads, kv_lora_rank 512, qk_rope_head_dim 64,
    # max_position_embeddings 163840. Card: 16B total, 2.4B active; 4 shards 31.4 GB.
    ModelSpec(
        hf_repo="deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct", aliases=("deepseek-coder-v2-lite", "coder-v2-lite"),
        params_total_b=15.7, params_active_b=2.4, dtype="bf16", weights_gb=31.41, context_length=163840,
        architecture="DeepseekV2ForCausalLM", attention=MLA(kv_lora_rank=512, qk_rope_head_dim=64, num_layers=27),
        num_attention_heads=16, engines=_ALL, min_compute_capability=8.0,
    ),
    # LlamaForCausalLM; config.json: 30 layers, 32 heads, 32 kv heads (MHA), hidden 4096,
    # max_position_embeddings 4096. 6.9B params; pytorch_model shards 9.97 + 3.85 GB.
    ModelSpec(
        hf_repo="deepseek-ai/deepseek-llm-7b-chat", aliases=("llm-7b-chat",), params_total_b=6.9,
        params_active_b=6.9, dtype="bf16", weights_gb=13.82, context_length=4096,
        architecture="LlamaForCausalLM", attention=GQA(num_layers=30, num_kv_heads=32, head_dim=128),
        num_attention_heads=32, engines=_ALL, min_compute_capability=8.0,
    ),
)


def _build_index(models: tuple[ModelSpec, ...]) -> dict[str, ModelSpec]:
    index: dict[str, ModelSpec] = {}
    for spec in models:
        for key in {spec.hf_repo.lower(), spec.name.lower(), *(a.lower() for a in spec.aliases)}:
            if key in index and index[key] is not spec:
                raise ValueError(f"catalog: name {key!r} is claimed by {index[key].hf_repo} and {spec.hf_repo}")
            index[key] = spec
    return index


_INDEX = _build_index(_MODELS)


def list_models() -> tuple[ModelSpec, ...]:
    """Every model in the catalog, in catalog order."""
    return _MODELS


def get_model(name: str) -> ModelSpec:
    """Look up a model by repo id, repo name or alias, ignoring case.

    >>> get_model("r1").hf_repo
    'deepseek-ai/DeepSeek-R1'
    """
    spec = _INDEX.get(name.strip().lower())
    if spec is not None:
        return spec
    close = difflib.get_close_matches(name.strip().lower(), list(_INDEX), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownModelError(
        f"unknown model {name!r}{hint} "
        "(list the catalog with deepseek_infra.catalog.list_models(); names are repo ids or aliases)"
    )
