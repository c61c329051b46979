"""Per-rank NUMA placement: what engine.json says the engine was given is what its unit runs.

The serve role hands each rank's NUMA node (and, for vLLM, CPU list) from the tuning plan
to an engine that binds per rank (deepseek_infra/pinning.py: rank_placement), and records the
decision in engine.json ``placement``; the tuning role records the plan in pinning.json.
"""

from __future__ import annotations

import json
import shlex

import pytest

from deepseek_infra import engine
from roles.tuning.operations import RECORD_FILE as PINNING_RECORD

RANK_FLAGS = ("--numa-bind", "--numa-bind-nodes", "--numa-bind-cpus", "--numa-node")


def _placement(host, engine_config) -> dict:
    placement = engine_config.get("placement")
    if placement is None:
        pytest.fail(f"{host.backend.hostname}: {engine.ENGINE_CONFIG_FILE}: expected the per-rank decision "
                    "(\"placement\"), found none: redeploy with deploy/serve.py")
    return placement


def _exec_argv(host) -> list[str]:
    # ExecStart={ path=... ; argv[]=python -m ... ; ignore_errors=no ; ... }
    shown = host.check_output(f"systemctl show -p ExecStart --value {engine.UNIT}")
    argv = shown.split("argv[]=", 1)[1].split(" ;", 1)[0] if "argv[]=" in shown else shown
    return shlex.split(argv)


def _values(argv: list[str], flag: str) -> list[str]:
    at = argv.index(flag) + 1
    values = []
    while at < len(argv) and not argv[at].startswith("--"):
        values.append(argv[at])
        at += 1
    return values


def test_the_unit_carries_exactly_the_recorded_rank_placement(host, engine_config):
    placement = _placement(host, engine_config)
    argv = _exec_argv(host)
    name = host.backend.hostname
    if not placement["per_rank"]:
        given = [flag for flag in RANK_FLAGS if flag in argv]
        assert not given, f"{name}: recorded unit-wide ({placement['reason']}), but {engine.UNIT} passes {given}"
        return
    nodes = [str(node) for node in placement["rank_numa_nodes"]]
    if engine_config["engine"] == "vllm":
        assert "--numa-bind" in argv, f"{name}: {engine.UNIT}: expected --numa-bind"
        assert _values(argv, "--numa-bind-nodes") == nodes, f"{name}: --numa-bind-nodes"
        assert _values(argv, "--numa-bind-cpus") == placement["rank_cpus"], f"{name}: --numa-bind-cpus"
    else:
        assert _values(argv, "--numa-node") == nodes, f"{name}: --numa-node"


def test_rank_placement_is_the_tuning_plans(host, engine_config):
    """The ranks' nodes are those the tuning role planned from this host's topology."""
    placement = _placement(host, engine_config)
    if not placement["per_rank"]:
        pytest.skip(f"{host.backend.hostname}: unit-wide placement ({placement['reason']})")
    record = host.file(PINNING_RECORD)
    assert record.exists, f"{host.backend.hostname}: {PINNING_RECORD}: expected the tuning role's plan"
    plan = json.loads(record.content_string)
    assert plan.get("rank_numa_nodes") == placement["rank_numa_nodes"], (
        f"{host.backend.hostname}: engine ranks on nodes {placement['rank_numa_nodes']}, tuning planned "
        f"{plan.get('rank_numa_nodes')}: rerun deploy/tuning.py and deploy/serve.py")
    assert plan.get("rank_cpus") == placement["rank_cpus"] or engine_config["engine"] != "vllm"
