"""deepseek_infra.catalog: completeness, name resolution and per-model KV-cache arithmetic."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from deepseek_infra.catalog import GQA, MLA, ENGINES, ModelSpec, UnknownModelError, get_model, list_models
from deepseek_infra.sizing import plan_serving
from lab import hwsim

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
    # issue 22
    "deepseek-ai/DeepSeek-V3-0324",
    "deepseek-ai/DeepSeek-V3.1-Terminus",
    "deepseek-ai/DeepSeek-V3.2",
    "deepseek-ai/DeepSeek-V2-Chat",
    "deepseek-ai/DeepSeek-V2.5",
    "deepseek-ai/DeepSeek-V2-Lite-Chat",
    "deepseek-ai/DeepSeek-Coder-V2-Instruct",
    "deepseek-ai/DeepSeek-Coder-V2-Lite-Base",
    "deepseek-ai/deepseek-coder-1.3b-instruct",
    "deepseek-ai/deepseek-coder-6.7b-instruct",
    "deepseek-ai/deepseek-coder-33b-instruct",
    "deepseek-ai/deepseek-llm-67b-chat",
    "deepseek-ai/deepseek-math-7b-rl",
    "deepseek-ai/DeepSeek-Prover-V2-671B",
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
        ("v3-0324", "deepseek-ai/DeepSeek-V3-0324"),
        ("v3.1-terminus", "deepseek-ai/DeepSeek-V3.1-Terminus"),
        ("v3.2", "deepseek-ai/DeepSeek-V3.2"),
        ("deepseek-v3.2", "deepseek-ai/DeepSeek-V3.2"),
        ("v2-chat", "deepseek-ai/DeepSeek-V2-Chat"),
        ("v2.5", "deepseek-ai/DeepSeek-V2.5"),
        ("v2-lite-chat", "deepseek-ai/DeepSeek-V2-Lite-Chat"),
        ("coder-v2", "deepseek-ai/DeepSeek-Coder-V2-Instruct"),
        ("coder-v2-lite-base", "deepseek-ai/DeepSeek-Coder-V2-Lite-Base"),
        ("coder-1.3b", "deepseek-ai/deepseek-coder-1.3b-instruct"),
        ("coder-6.7b-instruct", "deepseek-ai/deepseek-coder-6.7b-instruct"),
        ("coder-33b", "deepseek-ai/deepseek-coder-33b-instruct"),
        ("llm-67b-chat", "deepseek-ai/deepseek-llm-67b-chat"),
        ("math-7b-rl", "deepseek-ai/deepseek-math-7b-rl"),
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


# --- issue 22: new releases ---------------------------------------------------------------


def test_prefixes_of_newer_releases_do_not_shadow_older_ones():
    # "v3.2" must not resolve to V3.2-Exp (nor the reverse), "coder-v2" not to the Lite models
    assert get_model("v3.2") is not get_model("v3.2-exp")
    assert get_model("coder-v2") is not get_model("coder-v2-lite")
    assert get_model("deepseek-v3") is not get_model("deepseek-v3-0324")
    assert get_model("v3.1") is not get_model("v3.1-terminus")


@pytest.mark.parametrize(
    ("name", "layers", "kv_bytes"),
    [
        # MLA: num_hidden_layers * (kv_lora_rank 512 + qk_rope_head_dim 64) * 2 bytes
        ("v2-chat", 60, 60 * 576 * 2),
        ("v2.5", 60, 60 * 576 * 2),
        ("coder-v2", 60, 60 * 576 * 2),
        ("v2-lite-chat", 27, 27 * 576 * 2),
        ("coder-v2-lite-base", 27, 27 * 576 * 2),
        ("v3-0324", 61, 61 * 576 * 2),
        ("v3.1-terminus", 61, 61 * 576 * 2),
        # V3.2: V3's latent plus 132 bytes of FP8 indexer key + scale per layer, like V3.2-Exp
        ("v3.2", 61, 61 * (576 * 2 + 132)),
    ],
)
def test_kv_bytes_per_token_new_mla_entries(name, layers, kv_bytes):
    spec = get_model(name)
    assert isinstance(spec.attention, MLA)
    assert (spec.attention.kv_lora_rank, spec.attention.qk_rope_head_dim, spec.attention.num_layers) == (512, 64, layers)
    assert spec.kv_cache_bytes_per_token() == kv_bytes


@pytest.mark.parametrize(
    ("name", "layers", "heads", "kv_heads", "kv_bytes"),
    [
        # GQA/MHA: 2 (K and V) * num_hidden_layers * num_key_value_heads * head_dim 128 * 2 bytes
        ("coder-1.3b", 24, 16, 16, 2 * 24 * 16 * 128 * 2),  # hidden 2048 / 16 heads = 128
        ("coder-6.7b", 32, 32, 32, 2 * 32 * 32 * 128 * 2),  # hidden 4096 / 32 heads
        ("coder-33b", 62, 56, 8, 2 * 62 * 8 * 128 * 2),  # hidden 7168 / 56 heads, 8 kv heads
        ("llm-67b-chat", 95, 64, 8, 2 * 95 * 8 * 128 * 2),  # hidden 8192 / 64 heads, 8 kv heads
        ("math-7b-rl", 30, 32, 32, 2 * 30 * 32 * 128 * 2),  # hidden 4096 / 32 heads
    ],
)
def test_kv_bytes_per_token_new_gqa_entries(name, layers, heads, kv_heads, kv_bytes):
    spec = get_model(name)
    assert isinstance(spec.attention, GQA)
    assert (spec.attention.num_layers, spec.num_attention_heads, spec.attention.num_kv_heads) == (layers, heads, kv_heads)
    assert spec.attention.head_dim == 128
    assert spec.kv_cache_bytes_per_token() == kv_bytes
    assert spec.kv_cache_bytes_per_token(kv_dtype_bytes=1) == kv_bytes // 2


def test_new_entries_architecture_dtype_and_context():
    expected = {
        "v3-0324": ("DeepseekV3ForCausalLM", "fp8", 163840, 8.9),
        "v3.1-terminus": ("DeepseekV3ForCausalLM", "fp8", 163840, 8.9),
        "v3.2": ("DeepseekV32ForCausalLM", "fp8", 163840, 9.0),
        "v2-chat": ("DeepseekV2ForCausalLM", "bf16", 163840, 8.0),
        "v2.5": ("DeepseekV2ForCausalLM", "bf16", 163840, 8.0),
        "coder-v2": ("DeepseekV2ForCausalLM", "bf16", 163840, 8.0),
        "v2-lite-chat": ("DeepseekV2ForCausalLM", "bf16", 163840, 8.0),
        "coder-v2-lite-base": ("DeepseekV2ForCausalLM", "bf16", 163840, 8.0),
        "coder-1.3b": ("LlamaForCausalLM", "bf16", 16384, 8.0),
        "coder-6.7b": ("LlamaForCausalLM", "bf16", 16384, 8.0),
        "coder-33b": ("LlamaForCausalLM", "bf16", 16384, 8.0),
        "llm-67b-chat": ("LlamaForCausalLM", "bf16", 4096, 8.0),
        "math-7b-rl": ("LlamaForCausalLM", "bf16", 4096, 8.0),
    }
    for name, (arch, dtype, context, cc) in expected.items():
        spec = get_model(name)
        found = (spec.architecture, spec.dtype, spec.context_length, spec.min_compute_capability)
        assert found == (arch, dtype, context, cc), f"{spec.hf_repo}: {found}"


def test_bf16_checkpoint_sizes_match_the_parameter_count_of_their_config():
    # 2 bytes per parameter, parameters counted from config.json (see the catalog comments):
    # DeepSeek-V2 235,741,434,880; V2-Lite 15,706,484,224; coder-1.3b 1,346,471,936;
    # coder-6.7b 6,740,512,768; coder-33b 33,342,991,360; llm-67b 67,425,001,472; math-7b 6,910,365,696
    for name, params in [("v2-chat", 235_741_434_880), ("coder-v2", 235_741_434_880), ("v2.5", 235_741_434_880),
                         ("v2-lite-chat", 15_706_484_224), ("coder-v2-lite-base", 15_706_484_224),
                         ("coder-1.3b", 1_346_471_936), ("coder-6.7b", 6_740_512_768),
                         ("coder-33b", 33_342_991_360), ("llm-67b-chat", 67_425_001_472),
                         ("math-7b-rl", 6_910_365_696)]:
        spec = get_model(name)
        assert spec.weights_gb == pytest.approx(params * 2 / 1e9, abs=0.03), spec.hf_repo


# --- sizing of every catalog model on the lab's shipped GPU profiles -----------------------


def _lab_gpus():
    for name in hwsim.list_profiles():
        if "extends" in yaml.safe_load((hwsim.PROFILES_DIR / name / "profile.yaml").read_text()):
            continue  # a variant of another profile (a degraded fabric): the same GPUs to plan on
        gpus = hwsim.load_profile(name)["gpus"]
        yield name, len(gpus), float(gpus[0]["memory.total"].split()[0])


LAB_GPUS = {name: (count, mib) for name, count, mib in _lab_gpus()}


def test_lab_ships_the_three_gpu_profiles_this_file_plans_for():
    assert LAB_GPUS == {"dgx-h200-8x": (8, 143771.0), "hgx-h100-8x": (8, 81559.0),
                        "workstation-rtx6000ada-2x": (2, 49140.0)}


@pytest.mark.parametrize("profile", sorted(LAB_GPUS))
@pytest.mark.parametrize("spec", list_models(), ids=lambda s: s.name)
def test_every_model_plans_on_every_lab_profile(spec, profile):
    count, mib = LAB_GPUS[profile]
    for engine in sorted(spec.engines):
        plan = plan_serving(spec, gpu_memory_mib=mib, gpus_per_node=count, engine=engine)
        where = f"{spec.name} on {profile} with {engine}: {plan.reason}"
        assert plan.reason and plan.reason.startswith(spec.name), where
        if plan.fits:
            assert plan.nodes == 1 and plan.gpus <= count, where
            assert spec.num_attention_heads % plan.tensor_parallel_size == 0, where
            assert spec.min_context_length <= plan.max_model_len <= spec.context_length, where
            used = plan.weights_gib_per_gpu + plan.kv_gib_per_gpu + plan.reserve_gib_per_gpu
            assert used <= mib / 1024 * plan.gpu_memory_utilization + 0.01, where
        else:
            assert (plan.nodes > 1 or "does not fit" in plan.reason
                    or "transformers is planned on a single GPU" in plan.reason), where
            assert plan.nodes == 0 or plan.tensor_parallel_size * plan.pipeline_parallel_size == plan.gpus, where


def _plan(name, profile, engine="vllm"):
    count, mib = LAB_GPUS[profile]
    return plan_serving(name, gpu_memory_mib=mib, gpus_per_node=count, engine=engine)


def test_v2_236b_fits_one_h100_node_and_refuses_the_workstation():
    plan = _plan("v2-chat", "hgx-h100-8x")
    assert (plan.fits, plan.tensor_parallel_size, plan.pipeline_parallel_size) == (True, 8, 1), plan.reason
    assert plan.max_model_len == 163840  # 471.48 GB / 8 leaves room for the 69,120-byte latent
    assert plan.weights_gib_per_gpu == pytest.approx(471.48e9 / 2**30 / 8, abs=0.01)
    h200 = _plan("v2-chat", "dgx-h200-8x")
    assert (h200.fits, h200.tensor_parallel_size) == (True, 4), h200.reason
    ws = _plan("v2-chat", "workstation-rtx6000ada-2x")
    assert not ws.fits and ws.nodes > 1, ws.reason
    single = _plan("v2-chat", "hgx-h100-8x", engine="transformers")
    assert not single.fits and "transformers is planned on a single GPU" in single.reason


def test_v32_needs_two_h100_nodes_like_v32_exp():
    for name in ("v3.2", "v3.2-exp"):
        plan = _plan(name, "hgx-h100-8x")
        assert not plan.fits and (plan.tensor_parallel_size, plan.pipeline_parallel_size, plan.nodes) == (8, 2, 2), plan.reason
        assert _plan(name, "dgx-h200-8x").fits


def test_dense_coder_and_llm_models_on_the_workstation():
    coder = _plan("coder-33b", "workstation-rtx6000ada-2x")
    assert (coder.fits, coder.tensor_parallel_size, coder.max_model_len) == (True, 2, 16384), coder.reason
    llm = _plan("llm-67b-chat", "workstation-rtx6000ada-2x")
    assert not llm.fits and llm.nodes == 2, llm.reason  # 134.85 GB does not fit 2 x 48 GB
    assert _plan("llm-67b-chat", "hgx-h100-8x").tensor_parallel_size == 2
    small = _plan("coder-1.3b", "workstation-rtx6000ada-2x", engine="transformers")
    assert small.fits and small.max_model_len == 16384, small.reason


# --- release-specific engine flags ----------------------------------------------------------


@pytest.mark.parametrize("spec", list_models(), ids=lambda s: s.name)
def test_engine_flags_are_argv_for_engines_the_model_has(spec):
    assert set(spec.engine_flags) <= spec.engines, spec.hf_repo
    for engine, argv in spec.engine_flags.items():
        assert isinstance(argv, tuple) and argv and argv[0].startswith("--"), (spec.hf_repo, engine, argv)
        assert spec.flags_for(engine) == argv
        # every --flag that takes a value is followed by one
        for i, token in enumerate(argv):
            if token in ("--tool-call-parser", "--reasoning-parser", "--tokenizer-mode"):
                assert i + 1 < len(argv) and not argv[i + 1].startswith("--"), (spec.hf_repo, argv)
        if "--tool-call-parser" in argv and engine == "vllm":
            assert "--enable-auto-tool-choice" in argv  # the vLLM recipes pair the two
    assert set(spec.tool_chat_templates) <= set(spec.engine_flags)
    assert spec.flags_for("transformers") == ()


def _value(argv, flag):
    return argv[argv.index(flag) + 1] if flag in argv else None


@pytest.mark.parametrize(
    ("name", "vllm_tools", "vllm_reasoning", "sglang_tools", "sglang_reasoning"),
    [
        ("v3", "deepseek_v3", None, "deepseekv3", None),
        ("v3-0324", "deepseek_v3", None, "deepseekv3", None),
        ("r1", "deepseek_v3", "deepseek_r1", "deepseekv3", "deepseek-r1"),
        ("r1-0528", "deepseek_v3", "deepseek_r1", "deepseekv3", "deepseek-r1"),
        ("v3.1", "deepseek_v31", "deepseek_v3", "deepseekv31", "deepseek-v3"),
        ("v3.1-terminus", "deepseek_v31", "deepseek_v3", "deepseekv31", "deepseek-v3"),
        ("v3.2-exp", "deepseek_v32", "deepseek_v3", "deepseekv31", "deepseek-v3"),
        ("v3.2", "deepseek_v32", "deepseek_v3", "deepseekv32", "deepseek-v3"),
        ("r1-distill-qwen-7b", None, "deepseek_r1", None, "deepseek-r1"),
        ("r1-distill-llama-70b", None, "deepseek_r1", None, "deepseek-r1"),
    ],
)
def test_documented_parsers(name, vllm_tools, vllm_reasoning, sglang_tools, sglang_reasoning):
    spec = get_model(name)
    vllm, sglang = spec.flags_for("vllm"), spec.flags_for("sglang")
    assert (_value(vllm, "--tool-call-parser"), _value(vllm, "--reasoning-parser")) == (vllm_tools, vllm_reasoning)
    assert (_value(sglang, "--tool-call-parser"), _value(sglang, "--reasoning-parser")) == (sglang_tools, sglang_reasoning)


def test_v32_family_uses_deepseeks_own_encoder_in_vllm_and_no_sglang_template_for_v32():
    for name in ("v3.2", "v3.2-exp"):
        assert _value(get_model(name).flags_for("vllm"), "--tokenizer-mode") == "deepseek_v32"
    assert "sglang" not in get_model("v3.2").tool_chat_templates  # cookbook: "remove --chat-template"
    assert get_model("v3.2-exp").tool_chat_templates["sglang"].endswith("tool_chat_template_deepseekv32.jinja")
    assert get_model("v3").tool_chat_templates == {
        "vllm": "examples/tool_chat_template_deepseekv3.jinja",
        "sglang": "examples/chat_template/tool_chat_template_deepseekv3.jinja",
    }


def test_models_without_documented_parsers_carry_no_flags():
    for name in ("v2-chat", "v2.5", "coder-v2", "v2-lite-chat", "coder-v2-lite", "coder-33b", "llm-67b-chat",
                 "math-7b-rl", "llm-7b-chat", "vl2", "ocr", "prover-v2"):
        spec = get_model(name)
        assert dict(spec.engine_flags) == {} and dict(spec.tool_chat_templates) == {}, spec.hf_repo


def test_engine_flags_are_validated_and_read_only():
    spec = get_model("r1-distill-qwen-1.5b")
    with pytest.raises(ValueError, match="engine_flags"):
        dataclasses.replace(spec, engine_flags={"tgi": ("--x", "y")})
    with pytest.raises(ValueError, match="engine_flags"):
        dataclasses.replace(spec, engine_flags={"vllm": ("deepseek_r1",)})
    with pytest.raises(ValueError, match="tool_chat_templates"):
        dataclasses.replace(spec, tool_chat_templates={"vllm": "examples/tool_chat_template_deepseekr1.jinja"})
    with pytest.raises(TypeError):
        spec.engine_flags["vllm"] = ()  # type: ignore[index]
    copy = dataclasses.replace(spec)
    assert copy == spec and hash(copy) == hash(spec)  # mappings compare, and stay out of the hash
