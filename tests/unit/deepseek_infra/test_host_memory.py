"""deepseek_infra.host_memory: the host-RAM terms of a serving plan, the engine unit's limits,
and the decrypt tmpfs' noswap decision."""

from __future__ import annotations

import math

import pytest

from deepseek_infra import host_memory
from deepseek_infra.catalog import get_model
from deepseek_infra.engine import plan_for_node
from deepseek_infra.host_memory import (
    CPU_KV, CPU_WEIGHTS, ENGINE, GIB, HUGEPAGES, OS, TMPFS, HostMemoryInputs, host_memory_plan, kernel_version,
    tmpfs_swap,
)
from deepseek_infra.sizing import plan_serving
from deepseek_node.weights.manifest import FileEntry, Manifest
from deepseek_node.weights.plan import tmpfs_size

H200 = 143771
H100 = 81559
TB2_KB = 2_097_152 * 1024  # 2 TiB of MemTotal, kB
GB512_KB = 512 * 1024 * 1024  # 512 GiB, kB
V3 = get_model("deepseek-v3")


def gib(plan, name: str) -> float:
    term = plan.term(name)
    assert term is not None, f"{name} missing from {[t.name for t in plan.terms]}"
    return term.gib


def v3_on_h200(**inputs):
    return plan_serving(V3, H200, 8), HostMemoryInputs(**inputs)


def test_encrypted_v3_needs_its_checkpoint_in_tmpfs_and_a_512_gib_host_cannot_hold_it():
    plan, inputs = v3_on_h200(weights_encrypted=True)
    small = host_memory_plan(V3, plan, on_cpu=False, inputs=inputs, mem_total_kb=GB512_KB)
    # 688.6 GB of shards: 641.3 GiB, page-rounded, plus tmpfs_size's 16 MiB of slack.
    assert gib(small, TMPFS) == pytest.approx(688.6e9 / GIB + 16 / 1024, abs=0.01)
    assert round(gib(small, TMPFS)) == 641
    assert small.needed_gib > 512 and small.fits is False
    assert "decrypted weights (tmpfs) 641.3 GiB" in small.describe()
    large = host_memory_plan(V3, plan, on_cpu=False, inputs=inputs, mem_total_kb=TB2_KB)
    assert large.fits is True and large.needed_gib == small.needed_gib


def test_the_tmpfs_term_is_what_the_decrypt_unit_mounts():
    """The catalog estimate is tmpfs_size of one file of the checkpoint's size; a manifest at hand wins."""
    entry = FileEntry(path="checkpoint", size=int(688.6e9), sha384="")
    assert host_memory.catalog_tmpfs_bytes(V3) == tmpfs_size(Manifest(model=V3.hf_repo, revision="r", files=(entry,)))
    manifest = Manifest(model=V3.hf_repo, revision="r", files=tuple(
        FileEntry(path=f"model-{i:05d}.safetensors", size=4_300_000_001, sha384="") for i in range(160)))
    plan, inputs = v3_on_h200(weights_encrypted=True, tmpfs_bytes=tmpfs_size(manifest))
    memory = host_memory_plan(V3, plan, on_cpu=False, inputs=inputs, mem_total_kb=TB2_KB)
    assert gib(memory, TMPFS) * GIB == tmpfs_size(manifest)
    assert "manifest" in memory.term(TMPFS).detail


def test_an_unencrypted_release_has_no_tmpfs_term():
    plan, inputs = v3_on_h200()
    memory = host_memory_plan(V3, plan, on_cpu=False, inputs=inputs, mem_total_kb=TB2_KB)
    assert memory.term(TMPFS) is None
    assert [t.name for t in memory.terms] == [ENGINE, OS]


@pytest.mark.parametrize(("inputs", "expected_gib", "setting"), [
    (dict(hugepages_count=512), 1.0, "kernel_hugepages_count"),  # the lab: 512 x 2M
    (dict(hugepages_count=64, hugepages_size="1G"), 64.0, "kernel_hugepages_count"),
    (dict(hugepages_share=0.25), 512.0, "kernel_hugepages_share"),  # a quarter of 2 TiB, whole 2M pages
    (dict(present_hugepages_mib=4096), 4.0, "kernel_hugepages_count"),  # left alone: the host's own pool
])
def test_the_hugepage_pool_is_counted_as_the_kernel_role_plans_it(inputs, expected_gib, setting):
    plan, memory_inputs = v3_on_h200(**inputs)
    memory = host_memory_plan(V3, plan, on_cpu=False, inputs=memory_inputs, mem_total_kb=TB2_KB)
    assert gib(memory, HUGEPAGES) == pytest.approx(expected_gib)
    assert setting in memory.term(HUGEPAGES).settings


def test_a_managed_pool_replaces_the_present_one():
    plan, inputs = v3_on_h200(hugepages_count=512, present_hugepages_mib=65536)
    assert gib(host_memory_plan(V3, plan, on_cpu=False, inputs=inputs, mem_total_kb=TB2_KB), HUGEPAGES) == 1.0


def test_engine_processes_are_a_front_end_plus_one_process_per_gpu_of_this_node():
    h200 = host_memory_plan(V3, plan_serving(V3, H200, 8), on_cpu=False, inputs=HostMemoryInputs(), mem_total_kb=TB2_KB)
    assert gib(h200, ENGINE) == 3 + 8 * 4
    # Two nodes of H100s: pipeline stages (vLLM) or one TP group of 16 (SGLang): 8 GPUs per node either way.
    for engine in ("vllm", "sglang"):
        plan = plan_serving(V3, H100, 8, nodes=2, engine=engine)
        assert plan.nodes == 2 and gib(host_memory_plan(V3, plan, on_cpu=False, inputs=HostMemoryInputs(),
                                                        mem_total_kb=TB2_KB), ENGINE) == 35
    small = plan_serving("r1-distill-qwen-1.5b", H100, 8, engine="transformers")
    assert gib(host_memory_plan(get_model("r1-distill-qwen-1.5b"), small, on_cpu=False, inputs=HostMemoryInputs(),
                                mem_total_kb=TB2_KB), ENGINE) == 4  # one process on one GPU
    assert host_memory.VLLM_SWAP_SPACE_GIB_PER_GPU == 0  # V1 allocates no CPU swap blocks


def lab_cpu_plan(engine: str, **kwargs):
    spec = get_model("r1-distill-qwen-1.5b")
    return spec, plan_for_node(spec, engine, gpu_count=0, gpu_memory_mib=None, use_gpus=False, **kwargs)


def test_a_cpu_engine_holds_the_weights_and_its_kv_cache_in_host_ram():
    spec, plan = lab_cpu_plan("transformers", concurrency=2)
    memory = host_memory_plan(spec, plan, on_cpu=True, inputs=HostMemoryInputs(), mem_total_kb=None)
    assert gib(memory, CPU_WEIGHTS) == pytest.approx(3.55e9 / GIB)
    # 28 layers x 2 kv heads x 128 x 2 (K, V) x 2 bytes = 28672 B per token; 2 x 131072 tokens.
    assert gib(memory, CPU_KV) == pytest.approx(2 * 131072 * 28672 / GIB)
    assert "serve_target_concurrency" in memory.term(CPU_KV).settings
    as_float32 = host_memory_plan(spec, plan, on_cpu=True, inputs=HostMemoryInputs(dtype="float32"), mem_total_kb=None)
    assert gib(as_float32, CPU_WEIGHTS) == pytest.approx(2 * 3.55e9 / GIB)


def test_vllms_cpu_build_counts_the_kv_space_the_environment_gives_it():
    spec, plan = lab_cpu_plan("vllm")
    inputs = HostMemoryInputs(cpu_kv_cache_gib=host_memory.engine_cpu_kv_cache_gib({"VLLM_CPU_KVCACHE_SPACE": "1"}))
    memory = host_memory_plan(spec, plan, on_cpu=True, inputs=inputs, mem_total_kb=None)
    assert gib(memory, CPU_KV) == 1.0 and memory.term(CPU_KV).settings == ("serve_environment",)
    assert host_memory.engine_cpu_kv_cache_gib({"VLLM_CPU_KVCACHE_SPACE": "lots"}) is None


def test_memory_max_is_what_the_host_can_give_the_engine():
    plan, inputs = v3_on_h200(weights_encrypted=True, hugepages_count=512)
    memory = host_memory_plan(V3, plan, on_cpu=False, inputs=inputs, mem_total_kb=TB2_KB)
    others = gib(memory, TMPFS) + gib(memory, HUGEPAGES) + gib(memory, OS)
    assert memory.memory_max_bytes == (2048 - math.ceil(others)) * GIB  # 2048 - 650.3: 1397 GiB
    assert memory.oom_score_adjust == -500


def test_memory_max_is_whole_gib_so_a_reboots_memtotal_does_not_restart_the_engine():
    plan, inputs = v3_on_h200()
    booted = TB2_KB - 300 * 1024  # firmware and the kernel keep a few hundred MiB
    limits = {host_memory_plan(V3, plan, on_cpu=False, inputs=inputs, mem_total_kb=booted - kb).memory_max_bytes
              for kb in (0, 4, 512, 4096)}
    assert limits == {2039 * GIB}  # 2047.7 GiB - 8 GiB of OS reserve, down to a whole GiB


def test_memory_max_never_falls_below_the_engines_own_terms_plus_margin():
    """Unknown or too small a host: the engine still gets its estimate x 1.25 (>= +2 GiB)."""
    plan, inputs = v3_on_h200(weights_encrypted=True)
    for total in (None, GB512_KB):
        memory = host_memory_plan(V3, plan, on_cpu=False, inputs=inputs, mem_total_kb=total)
        assert memory.memory_max_bytes == math.ceil(35 * 1.25) * GIB  # 44 GiB


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
def test_the_lab_engines_limit_is_far_above_what_they_use(engine):
    """The lab: vLLM's CPU build at about 2.9 GB RSS, the transformers engine on small CPU models,
    on hosts whose MemTotal the limit must not depend on."""
    spec, plan = lab_cpu_plan(engine)
    inputs = HostMemoryInputs(hugepages_count=512, cpu_kv_cache_gib=1.0 if engine == "vllm" else None)
    memory = host_memory_plan(spec, plan, on_cpu=True, inputs=inputs, mem_total_kb=None)
    assert memory.memory_max_bytes >= 3 * 2.9e9
    assert memory.memory_max_bytes / GIB >= memory.engine_gib + 2


@pytest.mark.parametrize(("release", "noswap"), [
    ("6.1.0-28-amd64", False),  # Debian 12
    ("5.15.0-126-generic", False),  # Ubuntu 22.04
    ("6.4.0", True),  # the first with tmpfs noswap
    ("6.8.0-48-generic", True),  # Ubuntu 24.04
    ("10.0.1", True),
    ("", False), (None, False), ("unknown", False),
])
def test_the_decrypt_tmpfs_is_noswap_from_linux_6_4(release, noswap):
    decision = tmpfs_swap(release)
    assert decision.noswap is noswap
    if not noswap:
        assert "without" in decision.reason and "6.4" in decision.reason


def test_kernel_version_reads_major_and_minor():
    assert kernel_version("6.10.2-arch1-1") == (6, 10)
    assert kernel_version("4.18.0-553.el8_10.x86_64") == (4, 18)
    assert kernel_version("v6.8") is None
