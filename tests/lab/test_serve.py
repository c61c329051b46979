"""Lab integration of the serve role's failure handling: its own one-node fleet, real faults.

A second deploy changes nothing; an engine killed with SIGKILL is restarted by systemd
(Restart=on-failure) and serves again; a truncated weights file keeps the engine from
starting, with the file named in the journal, and once restored the engine starts again.

The fleet is this file's own (``svlab``, or DEEPSEEK_LAB_SERVE_FLEET); a fleet that was
already running is reused and left running, one started here is brought down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from lab import tiny_model
from lab.testing import fleet_run
from deepseek_infra import engine

pytestmark = pytest.mark.lab

FLEET = os.environ.get("DEEPSEEK_LAB_SERVE_FLEET", "svlab")  # never collides with tests/lab/test_fleet.py
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NODE = f"{FLEET}-node-1"
SHARD = "model.safetensors"
HEALTH = "http://127.0.0.1:8000/health"  # inventories/lab_settings.py: the ServeDefaults listen address and port


run = partial(fleet_run, FLEET, timeout=900)


def node(command: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    return run("docker", "exec", NODE, "sh", "-c", command, check=check, timeout=timeout)


def deploy(name: str, json_output: bool = False) -> subprocess.CompletedProcess:
    return run(str(BIN / "pyinfra"), "-y", *(["--json"] if json_output else []), "inventories/lab.py", f"deploy/{name}.py")


def state() -> str:
    return node(f"systemctl is-active {engine.UNIT}", check=False).stdout.strip()


def wait_serving(timeout: float) -> None:
    """Until the unit is active and /health answers 200, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = node(f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 {HEALTH}", check=False).stdout
        if state() == "active" and health == "200":
            return
        time.sleep(2)
    pytest.fail(f"{NODE}: {engine.UNIT}: expected active and serving within {timeout:.0f}s, found {state()}\n"
                + node(f"journalctl -u {engine.UNIT} -n 30 --no-pager -o cat", check=False).stdout)


@pytest.fixture(scope="module")
def fleet():
    # No daemon (the lab stops its own once no fleet is left) means no node of ours either.
    listing = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True)
    running = listing.returncode == 0 and NODE in listing.stdout.split()
    if not running:
        run(str(BIN / "python"), "-m", "lab", "up", "1", "--profile", "workstation-rtx6000ada-2x")
    deploy("base")
    deploy("serve")
    wait_serving(120)
    yield NODE
    if not running:
        run(str(BIN / "python"), "-m", "lab", "down")


def test_second_deploy_changes_nothing(fleet):
    report = deploy("serve", json_output=True).stdout
    operations = json.loads(report[report.index("{"):])["results"]["operations"]
    changed = [op["name"] for op in operations if op["success"]]
    assert changed == [], f"{NODE}: second deploy/serve.py: expected no changes, found {changed}"


def test_killed_engine_is_restarted_and_serves(fleet):
    before = node(f"systemctl show -p MainPID -p NRestarts --value {engine.UNIT}").stdout.split()
    node(f"systemctl kill -s KILL {engine.UNIT}")
    # RestartSec (15 s by default) plus the model load and the health wait.
    wait_serving(180)
    after = node(f"systemctl show -p MainPID -p NRestarts --value {engine.UNIT}").stdout.split()
    assert after[0] != before[0] and int(after[1]) == int(before[1]) + 1, (
        f"{NODE}: {engine.UNIT}: expected a new MainPID and NRestarts {int(before[1]) + 1}, "
        f"found MainPID {before[0]} -> {after[0]}, NRestarts {after[1]}"
    )


def test_truncated_weights_file_keeps_the_engine_from_starting(fleet):
    shard = f"{tiny_model.node_current_path()}/{SHARD}"
    size = int(node(f"stat -L -c %s {shard}").stdout)
    since = node("date +%s").stdout.strip()
    node(f"cp -p {shard} /root/{SHARD}.good && truncate -s {size // 2} {shard}")
    try:
        restart = node(f"systemctl restart {engine.UNIT}", check=False, timeout=120)
        assert restart.returncode != 0, f"{NODE}: {engine.UNIT} restarted with a truncated {SHARD}"
        assert state() != "active", f"{NODE}: {engine.UNIT}: expected not active, found {state()}"
        journal = node(f"journalctl -u {engine.UNIT} --since @{since} --no-pager -o cat").stdout
        expected = f"size of {SHARD}: expected {size}, found {size // 2}"
        assert expected in journal, f"{NODE}: journal of {engine.UNIT}: expected {expected!r}, found:\n{journal[-3000:]}"
    finally:
        node(f"cp -p /root/{SHARD}.good {shard} && rm /root/{SHARD}.good")
    node(f"systemctl reset-failed {engine.UNIT}; systemctl restart {engine.UNIT}", check=False, timeout=300)
    wait_serving(180)
