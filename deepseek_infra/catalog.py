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

Where no single Hugging Face page gave a figure, the comment says how it was derived: a
checkpoint size computed from config.json (parameters x 2 bytes for a pure-BF16
checkpoint; the same arithmetic reproduces the sizes HF shows for DeepSeek-V2-Lite,
deepseek-coder-1.3b/6.7b and deepseek-llm-7b-chat to the 10 MB), or the size of a release
whose model card says its structure is exactly that of another release.

Release-specific serving flags (``engine_flags``): the reasoning and tool-call parsers
vLLM and SGLang document for a release, as argv tokens per engine. Tool calling on the V3
family additionally wants the engines' own chat templates (``tool_chat_templates``: paths
inside the engine's source tree, which pip wheels do not ship); the engine role decides how
to provide them. Sources:

* vLLM: vllm-project/recipes ``models/deepseek-ai/*.yaml`` (DeepSeek-V3, -R1, -V3.1,
  -V3.2-Exp, -V3.2; snapshot commit 8959cf6 of 2026-08-21) and docs.vllm.ai
  "Reasoning Outputs" (``deepseek_r1`` for the R1 series, quickstart with
  DeepSeek-R1-Distill-Qwen-1.5B; ``deepseek_v3`` for V3.1).
* SGLang: docs.sglang.io "Reasoning Parser" (``deepseek-r1``: "all variants (R1, R1-0528,
  R1-Distill)"; ``deepseek-v3``: "DeepSeek-V3 series ... including DeepSeek-V3.2"),
  "Tool Parser" (``deepseekv3``: "DeepSeek-v3 (e.g., deepseek-ai/DeepSeek-V3-0324)") and
  sgl-project/sgl-cookbook ``docs/autoregressive/DeepSeek/*.md`` (commit 7b5bd9c:
  ``deepseekv31`` for V3.1, V3.1-Terminus and V3.2-Exp, ``deepseekv32`` for V3.2 without
  ``--chat-template``).

Pure module: no pyinfra import.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
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
    # Release-specific engine arguments (reasoning / tool-call parsers), per engine, as argv
    # tokens to append to the engine command line; empty: nothing release-specific. Not part
    # of the hash (mappings are not hashable); compared like the other fields.
    engine_flags: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    # Chat template the engine documents for tool calling with ``engine_flags``, per engine:
    # a path inside that engine's source tree (not in its pip wheel), e.g.
    # "examples/tool_chat_template_deepseekv3.jinja" for vLLM.
    tool_chat_templates: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(f"{self.hf_repo}: dtype: expected one of {sorted(_DTYPES)}, found {self.dtype!r}")
        unknown = set(self.engines) - ENGINES
        if unknown or not self.engines:
            raise ValueError(f"{self.hf_repo}: engines: expected a non-empty subset of {sorted(ENGINES)}, found {sorted(self.engines)!r}")
        if self.min_context_length > self.context_length:
            raise ValueError(f"{self.hf_repo}: min_context_length {self.min_context_length} exceeds context_length {self.context_length}")
        flags: dict[str, tuple[str, ...]] = {}
        for engine, argv in dict(self.engine_flags).items():
            if engine not in self.engines:
                raise ValueError(f"{self.hf_repo}: engine_flags: {engine!r} is not one of its engines {sorted(self.engines)}")
            argv = tuple(argv) if not isinstance(argv, str) else (argv,)
            if not argv or not argv[0].startswith("--") or not all(isinstance(a, str) and a for a in argv):
                raise ValueError(f"{self.hf_repo}: engine_flags[{engine!r}]: expected argv tokens starting with a --flag, "
                                 f"found {argv!r}")
            flags[engine] = argv
        templates: dict[str, str] = {}
        for engine, path in dict(self.tool_chat_templates).items():
            if "--tool-call-parser" not in flags.get(engine, ()):
                raise ValueError(f"{self.hf_repo}: tool_chat_templates[{engine!r}]: only for an engine whose "
                                 "engine_flags set --tool-call-parser")
            if not isinstance(path, str) or not path.endswith(".jinja"):
                raise ValueError(f"{self.hf_repo}: tool_chat_templates[{engine!r}]: expected a .jinja path, found {path!r}")
            templates[engine] = path
        object.__setattr__(self, "engine_flags", MappingProxyType(flags))
        object.__setattr__(self, "tool_chat_templates", MappingProxyType(templates))

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

    def flags_for(self, engine: str) -> tuple[str, ...]:
        """Release-specific arguments for ``engine`` (empty when it documents none)."""
        return self.engine_flags.get(engine, ())


_BIG = frozenset({"vllm", "sglang"})
_ALL = frozenset({"vllm", "sglang", "transformers"})
# R1-family models think for tens of thousands of tokens; the model cards evaluate
# them with "a maximum generation length of 32,768 tokens", so sizing will not offer
# them a shorter context.
_REASONING_MIN_CONTEXT = 32768

# --- Release-specific engine flags (sources in the module docstring) -------------------
_AUTO_TOOLS = ("--enable-auto-tool-choice",)
# V3 / V3-0324: tool calls in the V3 format. No reasoning parser: these are not thinking
# models (vLLM's "Reasoning Outputs" table lists deepseek_v3 for V3.1, not V3), although the
# vLLM recipe DeepSeek-V3.yaml and the SGLang cookbook also show one for V3, where it is inert.
# Templates: vLLM recipe DeepSeek-V3.yaml, SGLang "Tool Parser" page.
_V3_FLAGS = {
    "vllm": (*_AUTO_TOOLS, "--tool-call-parser", "deepseek_v3"),
    "sglang": ("--tool-call-parser", "deepseekv3"),
}
_V3_TEMPLATES = {
    "vllm": "examples/tool_chat_template_deepseekv3.jinja",
    "sglang": "examples/chat_template/tool_chat_template_deepseekv3.jinja",
}
# R1 / R1-0528: vLLM recipe DeepSeek-R1.yaml (reasoning deepseek_r1, tools deepseek_v3 with the
# R1 template); SGLang cookbook DeepSeek-R1.md (deepseek-r1 + deepseekv3, no template).
_R1_FLAGS = {
    "vllm": ("--reasoning-parser", "deepseek_r1", *_AUTO_TOOLS, "--tool-call-parser", "deepseek_v3"),
    "sglang": ("--reasoning-parser", "deepseek-r1", "--tool-call-parser", "deepseekv3"),
}
_R1_TEMPLATES = {"vllm": "examples/tool_chat_template_deepseekr1.jinja"}
# V3.1 / V3.1-Terminus (hybrid thinking, thinking=True in chat_template_kwargs): vLLM recipe
# DeepSeek-V3.1.yaml; SGLang cookbook DeepSeek-V3_1.md ("DeepSeek-V3.1 and DeepSeek-V3.1-Terminus").
_V31_FLAGS = {
    "vllm": ("--reasoning-parser", "deepseek_v3", *_AUTO_TOOLS, "--tool-call-parser", "deepseek_v31"),
    "sglang": ("--reasoning-parser", "deepseek-v3", "--tool-call-parser", "deepseekv31"),
}
_V31_TEMPLATES = {
    "vllm": "examples/tool_chat_template_deepseekv31.jinja",
    "sglang": "examples/chat_template/tool_chat_template_deepseekv31.jinja",
}
# V3.2-Exp: vLLM recipe DeepSeek-V3.2-Exp.yaml (DeepSeek's own encoder: --tokenizer-mode
# deepseek_v32); SGLang cookbook DeepSeek-V3_2.md (deepseekv31 with the V3.2 template).
_V32_EXP_FLAGS = {
    "vllm": ("--tokenizer-mode", "deepseek_v32", "--reasoning-parser", "deepseek_v3",
             *_AUTO_TOOLS, "--tool-call-parser", "deepseek_v32"),
    "sglang": ("--reasoning-parser", "deepseek-v3", "--tool-call-parser", "deepseekv31"),
}
_V32_EXP_TEMPLATES = {"sglang": "examples/chat_template/tool_chat_template_deepseekv32.jinja"}
# V3.2: vLLM recipe DeepSeek-V3.2.yaml; SGLang cookbook: "use --tool-call-parser deepseekv32
# and remove --chat-template".
_V32_FLAGS = {
    "vllm": ("--tokenizer-mode", "deepseek_v32", "--reasoning-parser", "deepseek_v3",
             *_AUTO_TOOLS, "--tool-call-parser", "deepseek_v32"),
    "sglang": ("--reasoning-parser", "deepseek-v3", "--tool-call-parser", "deepseekv32"),
}
# R1 distills: reasoning parser only (vLLM "Reasoning Outputs" quickstart serves
# DeepSeek-R1-Distill-Qwen-1.5B with deepseek_r1; SGLang: deepseek-r1 "Supports all variants
# (R1, R1-0528, R1-Distill)"). Neither engine documents tool calling for the distills.
_DISTILL_FLAGS = {"vllm": ("--reasoning-parser", "deepseek_r1"), "sglang": ("--reasoning-parser", "deepseek-r1")}

# DeepSeek-V3 architecture, shared by V3, R1, R1-0528, V3.1 and (plus indexer) V3.2-Exp.
# config.json (huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json):
# num_hidden_layers 61, num_attention_heads 128, kv_lora_rank 512, qk_rope_head_dim 64,
# max_position_embeddings 163840, quantization_config fp8 e4m3, 128x128 blocks.
# Model card: 671B total / 37B activated (+14B MTP module = 685B on HF).
_V3_MLA = MLA(kv_lora_rank=512, qk_rope_head_dim=64, num_layers=61)
# Checkpoint: 163 safetensors shards, 688.6 GB in total (HF "Files and versions", ~689 GB).
_V3_WEIGHTS_GB = 688.6
# V3.2-Exp / V3.2: the V3 MLA plus the lightning indexer's keys (see MLA).
_V32_MLA = MLA(kv_lora_rank=512, qk_rope_head_dim=64, num_layers=61, indexer_key_bytes=132)


def _v3_family(repo: str, aliases: tuple[str, ...], *, architecture: str = "DeepseekV3ForCausalLM",
               attention: MLA = _V3_MLA, weights_gb: float = _V3_WEIGHTS_GB,
               min_cc: float = 8.9, min_context: int = _REASONING_MIN_CONTEXT,
               flags: Mapping[str, tuple[str, ...]] | None = None,
               templates: Mapping[str, str] | None = None) -> ModelSpec:
    return ModelSpec(
        hf_repo=repo, aliases=aliases, params_total_b=671, params_active_b=37, dtype="fp8",
        weights_gb=weights_gb, context_length=163840, architecture=architecture,
        attention=attention, num_attention_heads=128, engines=_BIG,
        min_compute_capability=min_cc, min_context_length=min_context,
        engine_flags=flags or {}, tool_chat_templates=templates or {},
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
        min_context_length=_REASONING_MIN_CONTEXT, engine_flags=_DISTILL_FLAGS,
    )


# DeepSeek-V2 architecture (236B), shared by DeepSeek-V2-Chat, DeepSeek-V2.5 and
# DeepSeek-Coder-V2-Instruct: config.json DeepseekV2ForCausalLM, hidden_size 5120,
# num_hidden_layers 60, num_attention_heads 128 (num_key_value_heads 128), q_lora_rank 1536,
# kv_lora_rank 512, qk_rope_head_dim 64, 160 routed + 2 shared experts (6 per token),
# max_position_embeddings 163840, torch_dtype bfloat16. Model cards: 236B total, 21B active.
# Checkpoint: 55 BF16 safetensors shards (~8.6 GB each on HF); the total, 471.48 GB, is
# 2 bytes x 235.741B parameters (HF's safetensors count for deepseek-ai/DeepSeek-V2, as
# recorded by the open-cn-llm-leaderboard request file "params": 235.741; the config above
# gives 235,741,434,880 parameters).
_V2_MLA = MLA(kv_lora_rank=512, qk_rope_head_dim=64, num_layers=60)
_V2_WEIGHTS_GB = 471.48


def _v2_236b(repo: str, aliases: tuple[str, ...]) -> ModelSpec:
    # Served by vLLM and SGLang (DeepseekV2ForCausalLM) and by transformers with remote code
    # (the model cards' "Inference with Huggingface's Transformers", 8x80 GB); this
    # collection plans transformers on one GPU, so sizing refuses it there.
    return ModelSpec(
        hf_repo=repo, aliases=aliases, params_total_b=236, params_active_b=21, dtype="bf16",
        weights_gb=_V2_WEIGHTS_GB, context_length=163840, architecture="DeepseekV2ForCausalLM",
        attention=_V2_MLA, num_attention_heads=128, engines=_ALL, min_compute_capability=8.0,
    )


# DeepSeek-V2-Lite architecture (16B): config.json DeepseekV2ForCausalLM, hidden_size 2048,
# num_hidden_layers 27, num_attention_heads 16 (num_key_value_heads 16), q_lora_rank null,
# kv_lora_rank 512, qk_rope_head_dim 64, max_position_embeddings 163840, torch_dtype bfloat16.
# 15.7B parameters (15,706,484,224 from the config), 2.4B active (cards: "16B total params,
# 2.4B active params"). Checkpoint: 4 shards 8.59 + 8.59 + 8.59 + 5.64 = 31.41 GB.
_V2_LITE_MLA = MLA(kv_lora_rank=512, qk_rope_head_dim=64, num_layers=27)


def _v2_lite(repo: str, aliases: tuple[str, ...]) -> ModelSpec:
    return ModelSpec(
        hf_repo=repo, aliases=aliases, params_total_b=15.7, params_active_b=2.4, dtype="bf16",
        weights_gb=31.41, context_length=163840, architecture="DeepseekV2ForCausalLM",
        attention=_V2_LITE_MLA, num_attention_heads=16, engines=_ALL, min_compute_capability=8.0,
    )


def _llama(repo: str, aliases: tuple[str, ...], *, params_b: float, weights_gb: float, context: int,
           layers: int, heads: int, kv_heads: int) -> ModelSpec:
    # Dense LlamaForCausalLM checkpoints in BF16 (head_dim = hidden_size / num_attention_heads
    # = 128 for every one below); vLLM, SGLang and transformers all serve LlamaForCausalLM.
    return ModelSpec(
        hf_repo=repo, aliases=aliases, params_total_b=params_b, params_active_b=params_b,
        dtype="bf16", weights_gb=weights_gb, context_length=context, architecture="LlamaForCausalLM",
        attention=GQA(num_layers=layers, num_kv_heads=kv_heads, head_dim=128),
        num_attention_heads=heads, engines=_ALL, min_compute_capability=8.0,
    )


_MODELS: tuple[ModelSpec, ...] = (
    # --- Full-size MoE models (FP8) ------------------------------------------------
    _v3_family("deepseek-ai/DeepSeek-V3", ("deepseek-v3", "v3"), min_context=4096,
               flags=_V3_FLAGS, templates=_V3_TEMPLATES),
    # V3-0324 (MIT per amallo.ai's model wiki): model card "The model structure of DeepSeek-V3-0324 is exactly the same as
    # DeepSeek-V3" (quoted on the unsloth GGUF card mirror, model.aibase.com), so V3's config
    # numbers and shard layout; HF shows 685B params. Not a thinking model: V3's flags (SGLang's
    # Tool Parser page names V3-0324 as the deepseekv3 example).
    _v3_family("deepseek-ai/DeepSeek-V3-0324", ("deepseek-v3-0324", "v3-0324"), min_context=4096,
               flags=_V3_FLAGS, templates=_V3_TEMPLATES),
    # R1 / R1-0528: same config.json as V3 (architectures DeepseekV3ForCausalLM, 61 layers).
    _v3_family("deepseek-ai/DeepSeek-R1", ("deepseek-r1", "r1"), flags=_R1_FLAGS, templates=_R1_TEMPLATES),
    _v3_family("deepseek-ai/DeepSeek-R1-0528", ("deepseek-r1-0528", "r1-0528"),
               flags=_R1_FLAGS, templates=_R1_TEMPLATES),
    # V3.1: same architecture and shard layout (hybrid thinking mode, UE8M0 FP8 scales).
    _v3_family("deepseek-ai/DeepSeek-V3.1", ("deepseek-v3.1", "v3.1"), flags=_V31_FLAGS, templates=_V31_TEMPLATES),
    # V3.1-Terminus (license: mit, HF release commit 407a129): model card "The model structure of
    # DeepSeek-V3.1-Terminus is the same as DeepSeek-V3" and "For the model's chat template other
    # than search agent, please refer to the DeepSeek-V3.1 repo"; HF tags fp8. V3.1's flags.
    _v3_family("deepseek-ai/DeepSeek-V3.1-Terminus", ("deepseek-v3.1-terminus", "v3.1-terminus"),
               flags=_V31_FLAGS, templates=_V31_TEMPLATES),
    # V3.2-Exp: config.json architectures DeepseekV32ForCausalLM, model_type deepseek_v32,
    # index_head_dim 128, index_n_heads 64, index_topk 2048; otherwise V3. ~689 GB on HF.
    _v3_family(
        "deepseek-ai/DeepSeek-V3.2-Exp", ("deepseek-v3.2-exp", "v3.2-exp"),
        architecture="DeepseekV32ForCausalLM", attention=_V32_MLA, weights_gb=689.0, min_cc=9.0,
        flags=_V32_EXP_FLAGS, templates=_V32_EXP_TEMPLATES,
    ),
    # V3.2 (published: vLLM recipe date_added 2025-12-04): config.json as copied in ai-dynamo/aiconfigurator
    # aic-core/src/aiconfigurator_core/model_configs/deepseek-ai--DeepSeek-V3.2_config.json:
    # DeepseekV32ForCausalLM, num_hidden_layers 61, num_attention_heads 128, kv_lora_rank 512,
    # qk_rope_head_dim 64, index_head_dim 128, index_n_heads 64, index_topk 2048,
    # max_position_embeddings 163840, quantization_config fp8 e4m3 128x128 (scale_fmt ue8m0):
    # the V3.2-Exp config, so V3.2-Exp's tensors and size. vLLM recipe DeepSeek-V3.2.yaml:
    # 671B / 37B active, hardware h100/h200 "verified" (Hopper+, like V3.2-Exp).
    _v3_family(
        "deepseek-ai/DeepSeek-V3.2", ("deepseek-v3.2", "v3.2"),
        architecture="DeepseekV32ForCausalLM", attention=_V32_MLA, weights_gb=689.0, min_cc=9.0,
        flags=_V32_FLAGS,
    ),
    # Prover-V2-671B (Lean 4 theorem prover, released 2025-04-30): "built on DeepSeek-V3-Base" (model
    # card); its config.json is V3's: DeepseekV3ForCausalLM, 61 layers, hidden 7168,
    # max_position_embeddings 163840, FP8 (as read from it by news.futunn.com post 56248405,
    # 2025-04-30, and Xinference's model list "deepseek-prover-v2": context length 163840); 163
    # shards of ~4.3 GB, V3's layout. No engine documents a parser for it: no release flags.
    # Left out, with why: DeepSeek-Prover-V2-7B (no public copy of its config.json to take the
    # figures from; model card: Prover-V1.5-Base with a 32K context) and Janus-Pro 1B/7B
    # (MultiModalityCausalLM: neither vLLM nor SGLang serves that architecture).
    _v3_family("deepseek-ai/DeepSeek-Prover-V2-671B", ("deepseek-prover-v2-671b", "prover-v2-671b", "prover-v2")),
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
    # --- DeepSeek-V2 family (MLA MoE, BF16) -------------------------------------------
    # DeepSeek-V2-Chat (DeepSeek model license): V2 dims above from the HF blame of config.json at
    # f1e9ce2, which still names the class DeepseekForCausalLM (model_type deepseek). Recorded here
    # as DeepseekV2ForCausalLM, the name of every later V2 config (V2-Chat-0628, V2-Lite-Chat,
    # V2.5, Coder-V2) and of vLLM's/SGLang's V2 class; the current main config.json was not read.
    _v2_236b("deepseek-ai/DeepSeek-V2-Chat", ("deepseek-v2-chat", "v2-chat")),
    # DeepSeek-V2.5 (DeepSeek model license): config.json as copied in nm-testing/DeepSeek-V2.5-W4A16
    # (_name_or_path the HF snapshot 24b08cb of deepseek-ai/DeepSeek-V2.5): V2 dims above.
    _v2_236b("deepseek-ai/DeepSeek-V2.5", ("deepseek-v2.5", "v2.5")),
    # DeepSeek-Coder-V2-Instruct (DeepSeek model license): config.json as copied in
    # casperhansen/deepseek-coder-v2-instruct-awq (_name_or_path the HF snapshot 601f33f): V2 dims.
    _v2_236b("deepseek-ai/DeepSeek-Coder-V2-Instruct", ("deepseek-coder-v2", "coder-v2")),
    # DeepSeek-V2-Lite-Chat (DeepSeek model license): HF tree a6f88f2 4 shards 31.41 GB; config as
    # copied in TechxGenus/DeepSeek-V2-Lite-Chat-AWQ (_name_or_path deepseek-ai/DeepSeek-V2-Lite-Chat).
    _v2_lite("deepseek-ai/DeepSeek-V2-Lite-Chat", ("deepseek-v2-lite-chat", "v2-lite-chat")),
    # DeepSeek-Coder-V2-Lite-Base (deepseek-license): HF blame main/config.json (5a3cf15) and
    # tree (31.4 GB, 4 shards as above).
    _v2_lite("deepseek-ai/DeepSeek-Coder-V2-Lite-Base", ("deepseek-coder-v2-lite-base", "coder-v2-lite-base")),
    # --- deepseek-coder / deepseek-llm / deepseek-math (dense LlamaForCausalLM, BF16) ------
    # deepseek-coder-1.3b-instruct (DeepSeek license): config.json (as copied by its fine-tunes,
    # e.g. CMU-AIR2/code-full-hard, _name_or_path deepseek-ai/deepseek-coder-1.3b-instruct): hidden 2048,
    # 24 layers, 16 heads, 16 kv heads, max_position_embeddings 16384. 1.35B params (1,346,471,936 from
    # the config; card "1.3B"); HF tree d9e1a4e: pytorch_model.bin 2.69 GB (BF16).
    _llama("deepseek-ai/deepseek-coder-1.3b-instruct", ("coder-1.3b-instruct", "coder-1.3b"),
           params_b=1.35, weights_gb=2.69, context=16384, layers=24, heads=16, kv_heads=16),
    # deepseek-coder-6.7b-instruct (DeepSeek license): config.json (as copied by
    # cfahlgren1/NaturalSQL-6.7B-v0, _name_or_path deepseek-ai/deepseek-coder-6.7b-instruct): hidden 4096,
    # 32 layers, 32 heads, 32 kv heads, max_position_embeddings 16384. 6.74B params; HF tree
    # b56e989: model-0000{1,2}-of-00002.safetensors 9.98 + 3.5 = 13.48 GB (BFloat16Storage .bin as well).
    _llama("deepseek-ai/deepseek-coder-6.7b-instruct", ("coder-6.7b-instruct", "coder-6.7b"),
           params_b=6.74, weights_gb=13.48, context=16384, layers=32, heads=32, kv_heads=32),
    # deepseek-coder-33b-instruct (DeepSeek license): config.json hidden 7168, 62 layers, 56 heads,
    # 8 kv heads (GQA), max_position_embeddings 16384 (quoted with the HF URL in a DataStates
    # benchmark script; the same numbers in codefuse-ai/CodeFuse-DeepSeek-33B-4bits, from 33b-base).
    # 33.3B params (33,342,991,360 from the config); HF tree 4a82596: 7 safetensors shards
    # 9.73 + 9.95 + 9.92 + 9.82 + 9.95 + 9.92 + 7.38 = 66.67 GB (shard 7 as listed for 33b-base,
    # same layout; HF shows 133 GB for .bin + .safetensors).
    _llama("deepseek-ai/deepseek-coder-33b-instruct", ("coder-33b-instruct", "coder-33b"),
           params_b=33.3, weights_gb=66.67, context=16384, layers=62, heads=56, kv_heads=8),
    # deepseek-llm-67b-chat (DeepSeek license): HF blob config.json (ffc1bb8): hidden 8192, 95 layers,
    # 64 heads, 8 kv heads, max_position_embeddings 4096, torch_dtype bfloat16. Card "67B";
    # 67,425,001,472 params from the config x 2 bytes = 134.85 GB (HF tree fbf210e: 14 BF16 .bin
    # shards 9.98, 9.99, 9.69, ...).
    _llama("deepseek-ai/deepseek-llm-67b-chat", ("llm-67b-chat",),
           params_b=67.4, weights_gb=134.85, context=4096, layers=95, heads=64, kv_heads=8),
    # deepseek-math-7b-rl (DeepSeek license): config.json (as copied by a fine-tune,
    # _name_or_path deepseek-ai/deepseek-math-7b-rl): hidden 4096, 30 layers, 32 heads, 32 kv heads,
    # max_position_embeddings 4096 (deepseek-llm-7b dims). 6.91B params; HF tree main (f3cd419):
    # model-0000{1,2}-of-000002.safetensors 8.59 + 5.23 = 13.82 GB (BF16).
    _llama("deepseek-ai/deepseek-math-7b-rl", ("math-7b-rl",),
           params_b=6.91, weights_gb=13.82, context=4096, layers=30, heads=32, kv_heads=32),
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
