"""deepseek_infra.sizing: serving plans against public reference points, layout rules, bad input."""

from __future__ import annotations

import dataclasses

import pytest

from deepseek_infra.catalog import get_model
from deepseek_infra.sizing import (
    ENGINE_RESERVE_GIB,
    ServingPlan,
    plan_serving,
    required_disk_gb,
    tensor_parallel_sizes,
)

# nvidia-smi memory.total of common cards, MiB
H200 = 143771
H100_80GB = 81559
RTX_4090 = 24564
GPU_16GB = 16376


def _budget_holds(plan: ServingPlan, gpu_mib: int) -> None:
    used = plan.weights_gib_per_gpu + plan.kv_gib_per_gpu + plan.reserve_gib_per_gpu
    allowed = gpu_mib / 1024 * plan.gpu_memory_utilization
    assert used <= allowed + 0.01, f"{plan.model}: per GPU {used:.2f} GiB, allowed {allowed:.2f} GiB"


def test_v3_fits_one_node_of_h200_with_full_context():
    plan = plan_serving("deepseek-v3", gpu_memory_mib=H200, gpus_per_node=8)
    assert plan.fits, plan.reason
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size, plan.nodes) == (8, 1, 1)
    assert plan.max_model_len == 163840
    assert plan.weights_gib_per_gpu == pytest.approx(688.6e9 / 2**30 / 8, abs=0.01)
    # MLA latent is replicated on every TP rank: 70272 bytes * 163840 tokens
    assert plan.kv_gib_per_gpu == pytest.approx(70272 * 163840 / 2**30, abs=0.01)
    _budget_holds(plan, H200)
    assert "full 163840-token context" in plan.reason


def test_v3_does_not_fit_one_node_of_h100():
    plan = plan_serving("deepseek-ai/DeepSeek-V3", gpu_memory_mib=H100_80GB, gpus_per_node=8)
    assert not plan.fits
    # what it would need: two such nodes
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size, plan.nodes) == (8, 2, 2)
    assert plan.reason.startswith("DeepSeek-V3 (FP8, 641 GiB of weights) needs 16 GPUs of 80 GiB"), plan.reason
    assert "only 1 node of 8 GPUs is available" in plan.reason


def test_v3_fits_two_nodes_of_h100_with_pipeline_parallel():
    plan = plan_serving("v3", gpu_memory_mib=H100_80GB, gpus_per_node=8, nodes=2)
    assert plan.fits, plan.reason
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size, plan.nodes) == (8, 2, 2)
    assert plan.gpus == 16
    assert plan.max_model_len == 163840
    _budget_holds(plan, H100_80GB)


def test_v3_on_sglang_spans_nodes_with_tensor_parallel():
    plan = plan_serving("v3", gpu_memory_mib=H100_80GB, gpus_per_node=8, nodes=2, engine="sglang")
    assert plan.fits, plan.reason
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size, plan.nodes) == (16, 1, 2)
    assert plan.gpu_memory_utilization == 0.85


def test_distill_qwen_7b_fits_rtx_4090_with_reduced_context():
    plan = plan_serving("r1-distill-qwen-7b", gpu_memory_mib=RTX_4090, gpus_per_node=1)
    assert plan.fits, plan.reason
    assert plan.tensor_parallel_size == 1
    assert 32768 <= plan.max_model_len < 131072
    assert plan.max_model_len % 1024 == 0
    assert "reduced to" in plan.reason and "of 131072 tokens" in plan.reason
    _budget_holds(plan, RTX_4090)


def test_reduced_context_mentions_a_layout_with_full_context():
    plan = plan_serving("r1-distill-qwen-7b", gpu_memory_mib=RTX_4090, gpus_per_node=2)
    assert (plan.fits, plan.tensor_parallel_size) == (True, 1)  # smallest layout first
    assert "tensor parallel 2 would allow the full context" in plan.reason


@pytest.mark.parametrize("gpus", [1, 2, 3])
def test_distill_llama_70b_does_not_fit_a_node_of_fewer_than_four_80gb(gpus):
    plan = plan_serving("r1-distill-llama-70b", gpu_memory_mib=H100_80GB, gpus_per_node=gpus)
    assert not plan.fits, plan.reason


def test_distill_llama_70b_on_two_gpus_reports_four_needed():
    plan = plan_serving("r1-distill-llama-70b", gpu_memory_mib=H100_80GB, gpus_per_node=2)
    assert plan.gpus == 4 and "needs 4 GPUs of 80 GiB" in plan.reason, plan.reason


def test_distill_llama_70b_needs_four_80gb():
    plan = plan_serving("r1-distill-llama-70b", gpu_memory_mib=H100_80GB, gpus_per_node=8)
    assert plan.fits, plan.reason
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size) == (4, 1)
    _budget_holds(plan, H100_80GB)


def test_distill_qwen_1_5b_fits_a_16gb_gpu():
    plan = plan_serving("r1-distill-qwen-1.5b", gpu_memory_mib=GPU_16GB, gpus_per_node=1)
    assert plan.fits, plan.reason
    assert plan.max_model_len == 131072
    _budget_holds(plan, GPU_16GB)


def test_requested_max_model_len_is_used_as_is():
    plan = plan_serving("r1-distill-qwen-7b", gpu_memory_mib=RTX_4090, gpus_per_node=1, max_model_len=8192)
    assert (plan.fits, plan.max_model_len) == (True, 8192)
    assert plan.kv_gib_per_gpu == pytest.approx(57344 * 8192 / 2**30, abs=0.01)
    assert "requested max_model_len 8192" in plan.reason


def test_requested_max_model_len_that_does_not_fit():
    plan = plan_serving("r1-distill-qwen-7b", gpu_memory_mib=RTX_4090, gpus_per_node=1, max_model_len=131072)
    assert not plan.fits
    assert "131072 tokens of context" in plan.reason


def test_tensor_parallel_must_divide_attention_heads():
    assert tensor_parallel_sizes(28, 8) == (1, 2, 4)
    assert tensor_parallel_sizes(128, 8) == (1, 2, 4, 8)
    assert tensor_parallel_sizes(10, 8) == (1, 2)
    assert tensor_parallel_sizes(40, 6) == (1, 2, 4)


def test_heads_cap_tensor_parallel_and_the_reason_says_so():
    # Qwen-7B has 28 heads: on eight 8 GiB GPUs TP=8 would fit but is not allowed.
    plan = plan_serving("r1-distill-qwen-7b", gpu_memory_mib=8192, gpus_per_node=8)
    assert not plan.fits
    assert plan.tensor_parallel_size == 4 and plan.pipeline_parallel_size == 2
    assert "must divide its 28 attention heads" in plan.reason


def test_kv_is_sharded_over_gqa_kv_heads():
    spec = get_model("r1-distill-llama-70b")  # 8 kv heads, lands on TP 2 for a short context
    plan = plan_serving(spec, gpu_memory_mib=H100_80GB, gpus_per_node=8, max_model_len=4096)
    assert plan.tensor_parallel_size == 2
    assert plan.kv_gib_per_gpu == pytest.approx(327680 * 4096 / 2 / 2**30, abs=0.01)


def test_kv_heads_are_replicated_past_their_count():
    # Qwen-1.5B has 2 kv heads; on 6 GiB GPUs it needs TP 4, where each rank still holds one kv head.
    plan = plan_serving("r1-distill-qwen-1.5b", gpu_memory_mib=6144, gpus_per_node=4, max_model_len=32768)
    assert (plan.fits, plan.tensor_parallel_size) == (True, 4), plan.reason
    assert plan.kv_gib_per_gpu == pytest.approx(28672 * 32768 / 2 / 2**30, abs=0.01)


def test_transformers_plans_one_gpu():
    plan = plan_serving("r1-distill-qwen-1.5b", gpu_memory_mib=GPU_16GB, gpus_per_node=4, engine="transformers")
    assert (plan.fits, plan.tensor_parallel_size, plan.reserve_gib_per_gpu) == (True, 1, ENGINE_RESERVE_GIB["transformers"])
    big = plan_serving("r1-distill-qwen-32b", gpu_memory_mib=RTX_4090, gpus_per_node=8, engine="transformers")
    assert not big.fits and "single GPU" in big.reason


def test_engine_not_supported_by_model():
    with pytest.raises(ValueError, match="engine 'transformers' is not supported; supported: sglang, vllm"):
        plan_serving("v3", gpu_memory_mib=H200, gpus_per_node=8, engine="transformers")
    with pytest.raises(ValueError, match="engine: expected one of"):
        plan_serving("v3", gpu_memory_mib=H200, gpus_per_node=8, engine="tgi")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gpu_memory_mib": H200, "gpus_per_node": 0}, "gpus_per_node: expected an integer >= 1, found 0"),
        ({"gpu_memory_mib": -1, "gpus_per_node": 8}, "gpu_memory_mib: expected a positive number of MiB"),
        ({"gpu_memory_mib": 0, "gpus_per_node": 8}, "gpu_memory_mib"),
        ({"gpu_memory_mib": H200, "gpus_per_node": 8, "nodes": 0}, "nodes: expected an integer >= 1, found 0"),
        ({"gpu_memory_mib": H200, "gpus_per_node": 8, "gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"gpu_memory_mib": H200, "gpus_per_node": 8, "max_model_len": 200000}, r"max_model_len: expected 1\.\.163840"),
        ({"gpu_memory_mib": H200, "gpus_per_node": 8, "max_model_len": 0}, "max_model_len"),
    ],
)
def test_invalid_inputs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_serving("v3", **kwargs)


def test_unknown_model_name_raises():
    with pytest.raises(ValueError, match="unknown model"):
        plan_serving("deepseek-v9", gpu_memory_mib=H200, gpus_per_node=8)


def test_plan_is_frozen():
    plan = plan_serving("ocr", gpu_memory_mib=RTX_4090, gpus_per_node=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.fits = False  # type: ignore[misc]


def test_required_disk_gb():
    assert required_disk_gb("v3", 1) == 758  # ceil(688.6 * 1.1)
    assert required_disk_gb("deepseek-ai/DeepSeek-V3", kept_releases=2) == 1515
    assert required_disk_gb(get_model("r1-distill-qwen-1.5b")) == 4
    with pytest.raises(ValueError, match="kept_releases: expected an integer >= 1, found 0"):
        required_disk_gb("v3", 0)


# --- serve_target_concurrency: batch x context per GPU ---------------------------------------

def test_v3_on_16_h100_holds_one_full_sequence_or_32_shorter_ones():
    one = plan_serving("v3", gpu_memory_mib=H100_80GB, gpus_per_node=8, nodes=2)
    assert (one.concurrency, one.max_model_len, one.fits) == (1, 163840, True)
    many = plan_serving("v3", gpu_memory_mib=H100_80GB, gpus_per_node=8, nodes=2, concurrency=32)
    assert many.fits, many.reason
    assert (many.tensor_parallel_size, many.pipeline_parallel_size, many.concurrency) == (8, 2, 32)
    # Per GPU: 71.68 GiB budget - 40.08 GiB of weights - 4 GiB reserve = 27.6 GiB for KV; MLA's
    # 70272 B/token over 2 stages = 35136 B: 843k tokens, 26.3k per sequence -> 25600 (a multiple of 1024).
    assert many.max_model_len == 25600
    assert many.kv_gib_per_gpu == pytest.approx(35136 * 25600 * 32 / 2**30, abs=0.01)
    assert many.kv_gib_per_gpu > 4 * one.kv_gib_per_gpu  # the batch, not one sequence, is reserved
    _budget_holds(many, H100_80GB)
    assert "reduced to 25600 of 163840 tokens for 32 concurrent sequences" in many.reason
    assert "(32 x 25600 tokens)" in many.reason


def test_a_requested_context_the_target_does_not_fit_fails_naming_both_settings():
    plan = plan_serving("v3", gpu_memory_mib=H100_80GB, gpus_per_node=8, nodes=2, concurrency=32, max_model_len=163840)
    assert not plan.fits
    assert plan.nodes == 7  # 32 x 163840 tokens need seven pipeline stages of H100s
    assert "for 32 concurrent sequences of 163840 tokens" in plan.reason
    assert "holds 5: serve_target_concurrency 32 is more than these GPUs hold, lower it to 5" in plan.reason
    assert "or lower deepseek_max_model_len to 25600 for 32 sequences" in plan.reason
    assert "unset deepseek_max_model_len" in plan.reason  # 32 x 4096 tokens fit, shortened
    assert plan_serving("v3", gpu_memory_mib=H100_80GB, gpus_per_node=8, nodes=2, concurrency=5,
                        max_model_len=163840).fits  # the value it names fits
    assert not plan_serving("v3", gpu_memory_mib=H100_80GB, gpus_per_node=8, nodes=2, concurrency=6,
                            max_model_len=163840).fits  # and is the most


def test_a_7b_model_takes_more_gpus_for_32_sequences_of_its_minimum_context():
    one = plan_serving("r1-distill-qwen-7b", gpu_memory_mib=H100_80GB, gpus_per_node=8)
    assert (one.tensor_parallel_size, one.max_model_len) == (1, 131072)
    many = plan_serving("r1-distill-qwen-7b", gpu_memory_mib=H100_80GB, gpus_per_node=8, concurrency=32)
    # One H100 holds 53.5 GiB of KV = 1.0M tokens: 32 x 32768 (the R1 minimum) does not fit; TP 2 does.
    assert (many.fits, many.tensor_parallel_size) == (True, 2), many.reason
    assert many.max_model_len == 70656 and many.max_model_len % 1024 == 0
    _budget_holds(many, H100_80GB)
    assert "tensor parallel 4 would allow the full context" in many.reason
    alone = plan_serving("r1-distill-qwen-7b", gpu_memory_mib=H100_80GB, gpus_per_node=1, concurrency=32)
    assert not alone.fits and "lower it to 30" in alone.reason
    assert plan_serving("r1-distill-qwen-7b", gpu_memory_mib=H100_80GB, gpus_per_node=1, concurrency=30).fits


def test_the_kv_cache_reserved_is_concurrency_times_the_context():
    one = plan_serving("r1-distill-qwen-7b", gpu_memory_mib=RTX_4090, gpus_per_node=1, max_model_len=8192)
    two = plan_serving("r1-distill-qwen-7b", gpu_memory_mib=RTX_4090, gpus_per_node=1, max_model_len=8192, concurrency=2)
    assert one.kv_gib_per_gpu == pytest.approx(57344 * 8192 / 2**30, abs=0.01)  # as before concurrency existed
    assert two.kv_gib_per_gpu == pytest.approx(2 * 57344 * 8192 / 2**30, abs=0.01)
    assert "concurrent" not in one.reason
    assert "requested max_model_len 8192 for 2 concurrent sequences" in two.reason


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_concurrency_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="concurrency: expected an integer >= 1"):
        plan_serving("v3", gpu_memory_mib=H200, gpus_per_node=8, concurrency=bad)
