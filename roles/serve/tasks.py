"""serve: the inference engine as a hardened, health-checked systemd unit.

Plans the layout on this node's GPUs (deepseek_infra/sizing.py), installs the engine offline (a
pinned venv from a wheelhouse or internal index, or a container image from the site's
registry or a saved tarball) and the health tool (the deepseek-node wheel's
``deepseek-engine-health``, in its own standard-library venv), renders ``deepseek-engine.service`` from the plan
(deepseek_infra/engine.py), and starts it; the start job ends only when ``/health`` answers
(ExecStartPost), so a deploy that returns has a serving engine, and fails as soon as the
engine's process dies while starting, with the unit's last journal lines. The engine listens on
loopback; the gateway is the way in. ``/etc/deepseek/engine.json`` records what runs, with the
host-memory plan (deepseek_infra/host_memory.py) the unit's ``MemoryMax=`` and
``OOMScoreAdjust=`` come from, and whether the decrypted weights' tmpfs is mounted ``noswap``.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, systemd

from deepseek_infra import engine, nodewheel, pinning
from deepseek_infra.catalog import get_model
from deepseek_infra.facts.host import hardware
from deepseek_infra.hardware import Hardware
from deepseek_infra.host_memory import (
    HostMemoryInputs, HostMemoryPlan, TmpfsSwap, engine_cpu_kv_cache_gib, host_memory_plan, tmpfs_swap,
)
from deepseek_infra.operations import sync, venv
from deepseek_infra.preflight import summarize_gpus
from deepseek_infra.runcache import cached, run_cache
from deepseek_node import paths
from deepseek_node.weights.manifest import ManifestError, load_manifest
from deepseek_node.weights.plan import tmpfs_size
from roles import template_path
from roles.deployment import DeploymentDefaults
from roles.kernel.defaults import KernelDefaults
from roles.serve.defaults import ServeDefaults
from roles.serve.operations import container_image, engine_running, present_when_started
from roles.settings import replica_for, settings_for
from roles.tuning.defaults import TuningDefaults
from roles.tuning.operations import host_plan
from roles.weights.defaults import WeightsDefaults

UNIT_PATH = f"/etc/systemd/system/{engine.UNIT}"
RAY_HEAD_UNIT_PATH = f"/etc/systemd/system/{engine.RAY_HEAD_UNIT}"
WHEELHOUSE_DIR = f"{engine.ENGINE_DIR}/wheelhouse"


@deploy("serve: install")
def install(config: ServeDefaults, deployment: DeploymentDefaults, weights: WeightsDefaults) -> None:
    kernel, tuning = settings_for(host).kernel, settings_for(host).tuning
    settings = engine_settings(config, deployment, weights, kernel, tuning)
    memory = engine_memory(config, deployment, weights, kernel, settings)
    swap = decrypt_tmpfs_swap(config, weights, hardware(host))
    try:
        launch = engine.render_launch(settings)
    except engine.EngineConfigError as error:
        raise DeployError(f"{host.name}: {error}") from None
    # vLLM's CPU build runs some ops through torch.compile (inductor), e.g. the logprob ranks
    # the gateway's confidence needs: they are compiled with the system's C++ compiler.
    cpu_vllm = settings.engine == "vllm" and settings.on_cpu

    apt.packages(name="Ensure python3 and python3-venv are installed (the engine's and its health tool's venvs)"
                      + (", and g++ with python3-dev (vLLM's CPU build compiles torch.compile kernels at first use)" if cpu_vllm else ""),
                 packages=["python3", "python3-venv", *(["g++", "python3-dev"] if cpu_vllm else [])], no_recommends=True)
    files.directory(name=f"Ensure {engine.ENGINE_DIR} exists", path=engine.ENGINE_DIR, user="root", group="root",
                    mode="0755")
    wheel = nodewheel.wheel_for_run(host.state)
    if config.serve_install_method == "venv":
        changed = _install_venv(config, deployment.deepseek_engine, wheel, deployment.deepseek_nodes)
    else:
        changed = _install_container(config, settings)
    # Neither the health tool nor the record changes the running engine: no restart for them.
    # The health tool is the node wheel alone (standard library), so it also judges a broken engine venv.
    venv.pinned_venv(
        name=f"Ensure {engine.TOOLS_VENV} holds the health tool {Path(engine.HEALTH_TOOL).name}",
        path=engine.TOOLS_VENV, requirements=[nodewheel.load_project().requirement()],
        wheelhouse=venv.dist_dir(engine.TOOLS_VENV), wheels=[wheel],  # --no-index: the wheel only
    )
    sync.file_synced(
        name=f"Ensure {engine.ENGINE_CONFIG_FILE} describes the engine",
        src=StringIO(engine_config_json(settings, launch, memory, swap)), dest=engine.ENGINE_CONFIG_FILE,
        user="root", group=paths.SERVICE_USER, mode="0640",
    )
    ray_head_changed = _ray_head(config, settings, launch)
    unit = sync.template_synced(
        name=f"Ensure {UNIT_PATH} runs {deployment.deepseek_engine} ({launch.role})",
        src=template_path(__package__, UNIT_PATH), dest=UNIT_PATH, mode="0644",
        **unit_context(config, settings, launch, weights, deployment.deepseek_model),
    )
    published = _published_path(config, weights, deployment.deepseek_model, settings.model_path)
    if config.serve_enabled:
        present_when_started(
            name=f"Ensure the weights are published at {published}", path=published,
            failure=(f"{host.name}: serve_model_path: expected the model at {published}, found nothing; "
                     "publish the weights first (deploy/weights.py)"),
        )
    systemd.service(
        name=f"Ensure {engine.UNIT} is " + ("enabled" if config.serve_enabled else "installed, stopped"),
        service=engine.UNIT, enabled=config.serve_enabled, running=None if config.serve_enabled else False,
        daemon_reload=unit.changed,
    )
    if config.serve_enabled:
        # A start that fails (the health wait sees the engine die) fails this host with the
        # unit's last journal lines.
        # The unit names the weights revision it serves (its model path, its weights check):
        # publishing another revision changes it, so the engine restarts onto what was deployed.
        managed_encrypted = weights.weights_encrypt and not config.serve_model_path
        engine_running(
            name=f"Ensure {engine.UNIT} is serving", unit=engine.UNIT,
            restarted=unit.changed or changed or ray_head_changed,
            restart_with=(engine.decrypt_unit(deployment.deepseek_model),) if managed_encrypted else (),
        )


def _ray_head(config: ServeDefaults, settings: engine.EngineSettings, launch: engine.EngineLaunch) -> bool:
    """A vLLM replica's head: the Ray head in its own unit, started before the engine (which
    binds to it); anywhere else, no such unit. True when the unit changed."""
    if not launch.ray_head:
        if host.get_fact(File, path=RAY_HEAD_UNIT_PATH):  # this node was a vLLM head before
            systemd.service(name=f"Ensure {engine.RAY_HEAD_UNIT} is stopped and disabled (not a vLLM head)",
                            service=engine.RAY_HEAD_UNIT, running=False, enabled=False)
            files.file(name=f"Ensure {RAY_HEAD_UNIT_PATH} is absent", path=RAY_HEAD_UNIT_PATH, present=False)
        return False
    unit = sync.template_synced(
        name=f"Ensure {RAY_HEAD_UNIT_PATH} runs the replica's Ray head",
        src=template_path(__package__, UNIT_PATH), dest=RAY_HEAD_UNIT_PATH, mode="0644",
        **ray_head_context(config, settings, launch),
    )
    systemd.service(
        name=f"Ensure {engine.RAY_HEAD_UNIT} is " + ("running and enabled" if config.serve_enabled else "installed, stopped"),
        service=engine.RAY_HEAD_UNIT, enabled=config.serve_enabled, running=config.serve_enabled,
        restarted=unit.changed and config.serve_enabled, daemon_reload=unit.changed,
    )
    return unit.changed


def _published_path(config: ServeDefaults, weights: WeightsDefaults, model: str, model_path: str) -> str:
    """What must exist before the engine starts: the checkpoint's config.json, or for an
    encrypted release (decrypted at engine start) its ``current`` link."""
    if weights.weights_encrypt and not config.serve_model_path:
        return f"{weights.weights_models_dir}/{engine.model_slug(model)}/current"
    return f"{model_path}/config.json"


def uses_gpus(config: ServeDefaults, engine_name: str) -> bool:
    """False when the settings put the engine on the CPU (serve_vllm_device / serve_transformers_device)."""
    return (config.serve_vllm_device if engine_name == "vllm" else config.serve_transformers_device) != "cpu"


def decrypts_weights(config: ServeDefaults, weights: WeightsDefaults) -> bool:
    """True when the engine loads the weights role's encrypted release, decrypted into a tmpfs at start."""
    return weights.weights_encrypt and not config.serve_model_path


def manifest_tmpfs_bytes(weights: WeightsDefaults, model: str) -> int | None:
    """``tmpfs_size`` of the release's manifest when it is on the controller and for ``model``
    (loaded once per run, shared with the weights role); None: size it from the catalog."""
    path = weights.weights_manifest
    state = getattr(host, "state", None)
    if not path or not weights.weights_encrypt or state is None:
        return None
    try:
        manifest = cached(run_cache(state, "weights.manifest"), path, lambda: load_manifest(path))
    except ManifestError:
        return None  # the weights role refuses it, naming the field
    return tmpfs_size(manifest) if manifest.model == model else None


def host_memory_inputs(config: ServeDefaults, deployment: DeploymentDefaults, weights: WeightsDefaults,
                       kernel: KernelDefaults, tmpfs_bytes: int | None = None) -> HostMemoryInputs:
    """What the host-memory terms take from the settings (preflight and the serve role alike)."""
    return HostMemoryInputs(
        weights_encrypted=decrypts_weights(config, weights), tmpfs_bytes=tmpfs_bytes,
        hugepages_count=kernel.kernel_hugepages_count, hugepages_share=kernel.kernel_hugepages_share,
        hugepages_size=kernel.kernel_hugepages_size, use_gpus=uses_gpus(config, deployment.deepseek_engine),
        cpu_kv_cache_gib=engine_cpu_kv_cache_gib(config.serve_environment), dtype=config.serve_transformers_dtype,
    )


def _kernel_settings(kernel: KernelDefaults | None) -> KernelDefaults:
    """``kernel``, else this host's kernel-role settings (the defaults where no inventory is at hand)."""
    if kernel is not None:
        return kernel
    return settings_for(host).kernel if getattr(host, "state", None) is not None else KernelDefaults()


def engine_memory(config: ServeDefaults, deployment: DeploymentDefaults, weights: WeightsDefaults,
                  kernel: KernelDefaults | None, settings: engine.EngineSettings,
                  reading: Hardware | None = None) -> HostMemoryPlan:
    """The host-memory plan of this node's engine (the terms preflight summed; MemoryMax, OOMScoreAdjust)."""
    reading = reading if reading is not None else hardware(host)
    inputs = host_memory_inputs(config, deployment, weights, _kernel_settings(kernel),
                                manifest_tmpfs_bytes(weights, deployment.deepseek_model))
    present_mib = reading.hugepages.total_mib or (reading.memory.hugepages_total or 0) * (
        reading.memory.hugepage_size_kb or 0) // 1024
    mem_kb = reading.memory.total_kb or (reading.memory.total_mb * 1024 if reading.memory.total_mb else None)
    return host_memory_plan(get_model(deployment.deepseek_model), settings.plan, on_cpu=settings.on_cpu,
                            inputs=replace(inputs, present_hugepages_mib=present_mib), mem_total_kb=mem_kb)


def decrypt_tmpfs_swap(config: ServeDefaults, weights: WeightsDefaults, reading: Hardware) -> TmpfsSwap | None:
    """Whether this host's decrypt tmpfs is mounted noswap, for the record (None: nothing is
    decrypted for the engine). The weights role, which renders the decrypt unit from the same
    decision, warns about a mount without it."""
    if not decrypts_weights(config, weights):
        return None
    return tmpfs_swap(reading.kernel_release)


def engine_settings(config: ServeDefaults, deployment: DeploymentDefaults, weights: WeightsDefaults,
                    kernel: KernelDefaults | None = None, tuning: TuningDefaults | None = None) -> engine.EngineSettings:
    """The engine's settings for this host: plan from its hardware, multi-node position, the
    unit's memory limits from the host-memory plan (``kernel``: the kernel role's settings, for the
    hugepage pool; None: this host's, from the inventory) and, given the tuning role's settings,
    each rank's NUMA placement (``rank_placement``; None: the unit-wide affinity only)."""
    spec = get_model(deployment.deepseek_model)
    reading = hardware(host)
    gpus = summarize_gpus(reading)
    nodes = deployment.deepseek_nodes
    use_gpus = uses_gpus(config, deployment.deepseek_engine)
    try:
        plan = engine.plan_for_node(
            spec, deployment.deepseek_engine, gpu_count=gpus.count, gpu_memory_mib=gpus.memory_mib, nodes=nodes,
            max_model_len=deployment.deepseek_max_model_len,
            gpu_memory_utilization=config.serve_gpu_memory_utilization, use_gpus=use_gpus,
            concurrency=config.serve_target_concurrency,
        )
    except engine.EngineConfigError as error:
        raise DeployError(f"{host.name}: {error}") from None
    rank, head_address = 0, None
    if nodes > 1:
        rank, head_address = _replica_position(config, nodes)
    unlimited = engine.EngineSettings(
        engine=deployment.deepseek_engine, plan=plan,
        model_path=config.serve_model_path or engine.default_model_path(
            spec.hf_repo, encrypted=weights.weights_encrypt, models_dir=weights.weights_models_dir,
            revision=weights.weights_revision),
        served_model_name=config.serve_served_model_name or spec.hf_repo,
        host=config.serve_listen_address, port=config.serve_port, install=config.serve_install_method,
        image=config.serve_container_image, container_args=config.serve_container_extra_args,
        release_args=spec.flags_for(deployment.deepseek_engine) if config.serve_release_flags else (),
        extra_args=config.serve_extra_args, environment=config.serve_environment,
        nodes=nodes, node_rank=rank, head_address=head_address, node_address=config.serve_cluster_address,
        ray_port=config.serve_ray_port, dist_port=config.serve_dist_port,
        device=config.serve_transformers_device, dtype=config.serve_transformers_dtype,
        on_cpu=engine.engine_on_cpu(deployment.deepseek_engine, gpu_count=gpus.count,
                                    gpu_memory_mib=gpus.memory_mib, use_gpus=use_gpus),
    )
    memory = engine_memory(config, deployment, weights, kernel, unlimited, reading)
    placed = replace(unlimited, memory_max_bytes=memory.memory_max_bytes, oom_score_adjust=memory.oom_score_adjust)
    why, nodes_per_rank, cpus_per_rank = rank_placement(placed, deployment, tuning)
    return replace(placed, rank_numa_nodes=nodes_per_rank, rank_cpus=cpus_per_rank, placement=why)


def rank_placement(settings: engine.EngineSettings, deployment: DeploymentDefaults,
                   tuning: TuningDefaults | None) -> tuple[str, tuple[int, ...], tuple[str, ...]]:
    """``(why, NUMA node per rank, cpulist per rank)`` for the engine's flags: the tuning role's
    plan of this host (``roles.tuning.operations.host_plan``) where the engine binds per rank
    (``deepseek_infra.pinning.rank_placement``), else empty lists and why not."""
    if tuning is None:
        return "unit-wide (no tuning settings)", (), ()
    if not tuning.tuning_per_rank_placement:
        return "unit-wide (tuning_per_rank_placement is off)", (), ()
    # Asked only where it can apply: the plan reads the host's PCI locality.
    supported, why = pinning.engine_binds_per_rank(settings.engine, nodes=settings.nodes,
                                                   install=settings.install, on_cpu=settings.on_cpu)
    if not supported:
        return why, (), ()
    plan = host_plan(tuning, deployment)[0]
    supported, why = pinning.rank_placement(plan, settings.engine, nodes=settings.nodes,
                                            install=settings.install, on_cpu=settings.on_cpu)
    if not supported:
        return why, (), ()
    gpus = settings.plan.gpus_per_node
    if len(plan.gpus) != gpus:
        return f"the tuning plan places {len(plan.gpus)} GPU(s), the engine uses {gpus}: unit-wide", (), ()
    return why, plan.rank_numa_nodes, plan.rank_cpus


def _replica_position(config: ServeDefaults, nodes: int) -> tuple[int, str | None]:
    """This host's rank in its replica (roles/settings.py: replica_for) and the head's cluster address."""
    replica = replica_for(host)
    if replica is None:
        raise DeployError(f"{host.name}: deepseek_nodes = {nodes} but the host is not a serving host "
                          "(not in the gpu_nodes group): it belongs to no replica")
    head = host.inventory.get_host(replica.head)
    return replica.rank(host.name), config.serve_head_address or head.data.get("serve_cluster_address")


def engine_requirements(config: ServeDefaults, engine_name: str, nodes: int = 1) -> tuple[str, ...]:
    """The engine venv's pins; the transformers engine's server is the node wheel (no extra:
    its runtime is serve_transformers_requirements, the site's torch build); a multi-node
    vLLM replica adds Ray, which a complete lock must already hold."""
    requirements = tuple(getattr(config, f"serve_{engine_name}_requirements"))
    if engine_name == "transformers":
        requirements += (nodewheel.load_project().requirement(),)
    if engine_name == "vllm" and nodes > 1:
        names = {requirement.partition("==")[0].partition("[")[0].lower() for requirement in requirements}
        if config.serve_requirements_complete and "ray" not in names:
            raise engine.EngineConfigError(
                f"serve_vllm_requirements: a {nodes}-node vLLM replica runs on Ray, and this complete lock "
                "has no ray==<version>; add Ray and its dependencies")
        if not config.serve_requirements_complete:
            requirements += tuple(r for r in config.serve_ray_requirements
                                  if r.partition("==")[0].partition("[")[0].lower() not in names)
    return requirements


def _install_venv(config: ServeDefaults, engine_name: str, wheel: Path, nodes: int) -> bool:
    if not config.serve_wheelhouse and not config.serve_pip_index_url:
        raise DeployError(f"{host.name}: serve_wheelhouse: the {engine_name} engine needs a wheelhouse or "
                          "serve_pip_index_url (nodes have no internet); found neither")
    try:
        requirements = engine_requirements(config, engine_name, nodes)
    except engine.EngineConfigError as error:
        raise DeployError(f"{host.name}: {error}") from None
    wheels = [wheel] if engine_name == "transformers" else []
    changed = False
    # The wheelhouse (hundreds of MB) is pushed only when the environment must be (re)installed.
    if config.serve_wheelhouse and not venv.venv_current(engine.VENV_DIR, requirements, wheels):
        changed |= sync.directory_synced(
            name=f"Ensure the wheelhouse {WHEELHOUSE_DIR} matches the controller's (environment to install)",
            src=config.serve_wheelhouse, dest=WHEELHOUSE_DIR, user="root", group="root", mode="0644",
            dir_mode="0755", delete=True, exclude=("*/.complete",),
        ).changed
    changed |= venv.pinned_venv(
        name=f"Ensure {engine.VENV_DIR} holds the pinned {engine_name} engine",
        path=engine.VENV_DIR, requirements=requirements,
        wheelhouse=WHEELHOUSE_DIR if config.serve_wheelhouse else None, index_url=config.serve_pip_index_url,
        wheels=wheels, no_deps=config.serve_requirements_complete,
    ).changed
    return changed


def _install_container(config: ServeDefaults, settings: engine.EngineSettings) -> bool:
    return container_image(
        name=f"Ensure the engine image {settings.image} is present",
        image=settings.image, tarball=config.serve_container_image_tarball,
    ).changed


def unit_context(config: ServeDefaults, settings: engine.EngineSettings, launch: engine.EngineLaunch,
                 weights: WeightsDefaults, model: str) -> dict:
    """Template variables of deepseek-engine.service (prepared data only)."""
    pre = [engine.exec_line(argv) for argv in launch.exec_start_pre]
    managed = not config.serve_model_path  # an overridden path is not the weights role's to check
    verify = weights_verify_command(
        config.serve_weights_verify if managed else "never",
        engine.weights_check(model, encrypted=weights.weights_encrypt, models_dir=weights.weights_models_dir,
                             revision=weights.weights_revision),
    )
    if not managed and config.serve_weights_verify != "never":
        # A checkpoint placed outside the weights role: checked when it carries a manifest.
        verify = engine.exec_line([engine.HEALTH_TOOL, "weights", "--path", settings.model_path,
                                   *(["--require"] if config.serve_weights_verify == "always" else [])])
    decrypt = [engine.decrypt_unit(model)] if managed and weights.weights_encrypt else []
    post = []
    if launch.serves_http:
        post.append(engine.exec_line([
            engine.HEALTH_TOOL, "wait", "--url", engine.health_url(settings.host, settings.port),
            "--timeout", str(config.serve_start_timeout_s), "--unit", engine.UNIT,
        ]))
    user = "root" if launch.runs_as_root else paths.SERVICE_USER
    ray_head = [engine.RAY_HEAD_UNIT] if launch.ray_head else []
    return {
        **memory_context(launch),
        "unit_name": engine.UNIT,
        "description": f"DeepSeek inference engine ({settings.engine}, {launch.role}): {settings.served_model_name}",
        "engine_config_file": engine.ENGINE_CONFIG_FILE,
        "after_units": [*decrypt, *config.serve_after_units, *(["docker.service"] if launch.runs_as_root else []),
                        *ray_head],
        "binds_to": ray_head[0] if ray_head else None,
        # Removing the service user's IPC objects at stop would take the Ray head's object store with it.
        "remove_ipc": not ray_head,
        "service_user": user, "service_group": user,
        "environment": [engine.environment_line(k, v) for k, v in sorted(launch.environment.items())],
        "working_directory": engine.CACHE_DIR,
        "exec_start_pre": ([verify] if verify else []) + pre,
        "exec_start": engine.exec_line(launch.exec_start),
        "exec_start_post": post,
        "exec_stop": [engine.exec_line(argv) for argv in launch.exec_stop],
        "exec_stop_post": [engine.exec_line(argv) for argv in launch.exec_stop_post],
        "restart_sec": config.serve_restart_sec, "timeout_start_s": config.serve_start_timeout_s,
        "runs_as_root": launch.runs_as_root, "cache_name": engine.CACHE_NAME,
        "read_write_paths": ["/run/docker.sock"] if launch.runs_as_root else [],
        "gpu_devices": list(engine.device_allow(settings, launch)),
        "ip_allow": list(engine.ip_allow(settings, launch)),
    }


def ray_head_context(config: ServeDefaults, settings: engine.EngineSettings, launch: engine.EngineLaunch) -> dict:
    """Template variables of deepseek-ray-head.service: the engine unit's hardening, devices and
    environment (Ray runs the head's GPU workers as its own children), no weights gate, no API."""
    environment = {k: v for k, v in launch.environment.items() if k != "RAY_ADDRESS"}
    return {
        **memory_context(launch),
        "unit_name": engine.RAY_HEAD_UNIT,
        "description": f"Ray head of the DeepSeek vLLM replica serving {settings.served_model_name}",
        "engine_config_file": engine.ENGINE_CONFIG_FILE,
        "after_units": list(config.serve_after_units), "binds_to": None, "remove_ipc": False,
        "service_user": paths.SERVICE_USER, "service_group": paths.SERVICE_USER,
        "environment": [engine.environment_line(k, v) for k, v in sorted(environment.items())],
        "working_directory": engine.CACHE_DIR,
        "exec_start_pre": [], "exec_start": engine.exec_line(launch.ray_head), "exec_start_post": [],
        "exec_stop": [], "exec_stop_post": [],
        "restart_sec": config.serve_restart_sec, "timeout_start_s": config.serve_start_timeout_s,
        "runs_as_root": False, "cache_name": engine.CACHE_NAME, "read_write_paths": [],
        "gpu_devices": list(engine.device_allow(settings, launch)), "ip_allow": [],
    }


def memory_context(launch: engine.EngineLaunch) -> dict:
    """MemoryMax= (bytes, as `systemctl show` reports it) and OOMScoreAdjust= of the unit."""
    return {"memory_max": launch.memory_max_bytes, "oom_score_adjust": launch.oom_score_adjust}


def weights_verify_command(mode: str, check: tuple[str, ...]) -> str | None:
    """ExecStartPre running the weights role's fast check: always, when its tool is installed, or never."""
    if mode == "never":
        return None
    if mode == "always":
        return engine.exec_line(check)
    # auto: the weights role installs the tool; a node without it starts the engine unchecked.
    script = f"if [ -x {check[0]} ]; then exec {shlex.join(check)}; fi"
    return engine.exec_line(["/bin/sh", "-c", script])


def engine_config_json(settings: engine.EngineSettings, launch: engine.EngineLaunch,
                       memory: HostMemoryPlan | None = None, swap: TmpfsSwap | None = None) -> str:
    plan = settings.plan
    document = {
        "engine": settings.engine, "install": settings.install, "role": launch.role,
        "served_model_name": settings.served_model_name, "model": plan.model, "model_path": settings.model_path,
        "listen": {"address": settings.host, "port": settings.port, "serves_http": launch.serves_http},
        "url": engine.health_url(settings.host, settings.port),
        "unit": engine.UNIT,
        "plan": {"tensor_parallel_size": plan.tensor_parallel_size,
                 "pipeline_parallel_size": plan.pipeline_parallel_size, "nodes": plan.nodes,
                 "max_model_len": plan.max_model_len, "gpu_memory_utilization": plan.gpu_memory_utilization,
                 "concurrency": plan.concurrency, "reason": plan.reason},
        "node_rank": settings.node_rank, "head_address": settings.head_address,
        # Per-rank NUMA placement given to the engine (tests/verify/serve compares the unit's flags).
        "placement": {"per_rank": bool(settings.rank_numa_nodes), "reason": settings.placement,
                      "rank_numa_nodes": list(settings.rank_numa_nodes), "rank_cpus": list(settings.rank_cpus)},
        # What the unit's MemoryMax= and OOMScoreAdjust= say (tests/verify/serve compares them).
        "limits": {"memory_max_bytes": launch.memory_max_bytes, "oom_score_adjust": launch.oom_score_adjust,
                   "units": [engine.UNIT, *([engine.RAY_HEAD_UNIT] if launch.ray_head else [])],
                   "docker_run": launch.runs_as_root},
        "host_memory": memory.to_dict() if memory else None,
        "decrypt_tmpfs": swap.to_dict() if swap else None,
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"