"""deepseek_infra.catalog: completeness, name resolution and per-model KV-cache arithmetic."""

from __future__ import annotations

import dataclasses

import pytest

from deepseek_infra.catalog import GQA, MLA, ENGINES, ModelSpec, UnknownModelError, get_model, list_models

EXPECTED_REPOS = (
    "deepseek-ai/DeepSeek-V3",
    "deepseek-ai/DeepSeek-R1",
    "deepseek-ai/DeepSeek-R1-0528",
    "deepseek-ai/DeepSeek-V3.1",
    "deepseek-ai/DeepSeek-V3.2-Exp",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
    "deepseek-ai/DeepSeek-R1-Distill-Llama-70B",
    "deepseek-ai/deepseek-vl2-tiny",
    "deepseek-ai/deepseek-vl2-small",
    "deepseek-ai/deepseek-vl2",
    "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct",
    "deepseek-ai/deepseek-llm-7b-chat",
    "deepseek-ai/DeepSeek-OCR",
)


def test_catalog_holds_exactly_the_expected_models():
    repos = [spec.hf_repo for spec in list_models()]
    assert sorted(repos) == sorted(EXPECTED_REPOS), f"catalog: expected {sorted(EXPECTED_REPOS)}, found {sorted(repos)}"
    assert len(repos) == len(set(repos)), f"catalog: duplicate repos in {repos}"


@pytest.mark.parametrize("repo", EXPECTED_REPOS)
def test_every_model_resolves_by_repo_name_and_aliases(repo):
    spec = get_model(repo)
    assert spec.hf_repo == repo
    assert get_model(repo.upper()) is spec
    assert get_model(spec.name) is spec
    for alias in spec.aliases:
        assert get_model(alias) is spec, f"{repo}: alias {alias!r} resolves to {get_model(alias).hf_repo}"
        assert get_model(f"  {alias.upper()} ") is spec


@pytest.mark.parametrize(
    ("alias", "repo"),
    [
        ("deepseek-v3", "deepseek-ai/DeepSeek-V3"),
        ("R1", "deepseek-ai/DeepSeek-R1"),
        ("r1-0528", "deepseek-ai/DeepSeek-R1-0528"),
        ("v3.1", "deepseek-ai/DeepSeek-V3.1"),
        ("v3.2-exp", "deepseek-ai/DeepSeek-V3.2-Exp"),
        ("r1-distill-qwen-7b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"),
        ("r1-distill-llama-70b", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"),
        ("deepseek-vl2-tiny", "deepseek-ai/deepseek-vl2-tiny"),
        ("vl2-base", "deepseek-ai/deepseek-vl2"),
        ("coder-v2-lite", "deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct"),
        ("deepseek-llm-7b-chat", "deepseek-ai/deepseek-llm-7b-chat"),
        ("ocr", "deepseek-ai/DeepSeek-OCR"),
    ],
)
def test_short_names(alias, repo):
    assert get_model(alias).hf_repo == repo


def test_unknown_name_lists_close_matches_and_how_to_list():
    with pytest.raises(UnknownModelError) as caught:
        get_model("deepseek-r2")
    message = str(caught.value)
    assert "'deepseek-r2'" in message
    assert "'deepseek-r1'" in message, message
    assert "list_models()" in message
    assert isinstance(caught.value, ValueError)


def test_unknown_name_without_close_matches_still_says_how_to_list():
    with pytest.raises(UnknownModelError, match=r"list_models\(\)") as caught:
        get_model("llama-3-405b-instruct-awq")
    assert "did you mean" not in str(caught.value)


def test_kv_bytes_per_token_v3_mla():
    # 61 layers * (kv_lora_rank 512 + qk_rope_head_dim 64) * 2 bytes
    assert get_model("deepseek-v3").kv_cache_bytes_per_token() == 61 * 576 * 2 == 70272
    assert get_model("deepseek-v3").kv_cache_bytes_per_token(kv_dtype_bytes=1) == 35136


def test_kv_bytes_per_token_v32_adds_indexer_keys():
    # 61 layers * (576 * 2 bytes + 132 bytes of FP8 indexer key and scale)
    assert get_model("v3.2-exp").kv_cache_bytes_per_token() == 61 * (1152 + 132) == 78324


def test_kv_bytes_per_token_gqa_by_hand():
    # R1-Distill-Qwen-7B: 2 (K and V) * 28 layers * 4 kv heads * 128 head_dim * 2 bytes
    assert get_model("r1-distill-qwen-7b").kv_cache_bytes_per_token() == 57344
    # R1-Distill-Llama-70B: 2 * 80 * 8 * 128 * 2
    assert get_model("r1-distill-llama-70b").kv_cache_bytes_per_token() == 327680


def test_kv_dtype_bytes_is_checked():
    with pytest.raises(ValueError, match="kv_dtype_bytes"):
        get_model("v3").kv_cache_bytes_per_token(kv_dtype_bytes=3)


def test_model_spec_is_frozen_and_keyword_only():
    spec = get_model("v3")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.weights_gb = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        ModelSpec("x/y")  # type: ignore[misc]


@pytest.mark.parametrize("spec", list_models(), ids=lambda s: s.name)
def test_every_spec_is_consistent(spec):
    assert spec.engines <= ENGINES and spec.engines, f"{spec.hf_repo}: engines {sorted(spec.engines)}"
    assert spec.dtype in ("fp8", "bf16")
    assert 0 < spec.params_active_b <= spec.params_total_b
    # bytes per parameter of the checkpoint: ~1 for FP8, ~2 for BF16
    per_param = spec.weights_gb / spec.params_total_b
    expected = 1.0 if spec.dtype == "fp8" else 2.0
    assert abs(per_param - expected) < 0.1, f"{spec.hf_repo}: {per_param:.2f} GB per billion params, expected ~{expected}"
    assert spec.min_context_length <= spec.context_length
    assert isinstance(spec.attention, (MLA, GQA))
    if isinstance(spec.attention, GQA):
        assert spec.num_attention_heads % spec.attention.num_kv_heads == 0
    assert spec.min_compute_capability >= (8.9 if spec.dtype == "fp8" else 8.0)


def test_compute_capability_decisions():
    assert get_model("v3").min_compute_capability == 8.9
    assert get_model("v3.2-exp").min_compute_capability == 9.0
    assert get_model("r1-distill-qwen-1.5b").min_compute_capability == 8.0


def test_spec_validation_rejects_unknown_engine():
    spec = get_model("r1-distill-qwen-1.5b")
    with pytest.raises(ValueError, match="engines"):
        dataclasses.replace(spec, engines=frozenset({"vllm", "tgi"}))
    with pytest.raises(ValueError, match="dtype"):
        dataclasses.replace(spec, dtype="fp16")
