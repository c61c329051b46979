"""Lab integration of the rolling upgrade (deploy/upgrade.py): its own two-node fleet.

Two nodes, not six: each batch is five pyinfra runs, and this must stay well under 8
minutes on a 2-core controller. Story: full deploy on lab-1; upgrade the weights release
to lab-2 one node at a time (canary first) while a client keeps asking the engine of the
node that is not in the batch (zero failures expected), each node's ``current`` switched
and its health gates passed; then an upgrade to lab-3 with a fault on the canary only
(its engine pointed at a checkpoint it cannot load) stops at max_fail=0, the canary is
rolled back to lab-2 and serves again, the other node is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

FLEET = "uplab"  # this file's own fleet: never collides with the other lab tests
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NODES = [f"{FLEET}-node-1", f"{FLEET}-node-2"]
HOSTS = [f"@docker/{name}" for name in NODES]
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"  # inventories/lab_settings.py
SLUG = MODEL.replace("/", "--")
MODELS = "/var/lib/deepseek/models"
MIRROR_DATA = Path(os.environ.get("DEEPSEEK_LAB_STATE", REPO / ".lab")) / "fleets" / FLEET / "weights-mirror" / "data"
# Weights and engine only: the roles an upgrade of the release touches (full.py would re-check every role).
ROLES = ("deploy/weights.py", "deploy/serve.py")


def run(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
                            env={**os.environ, "DEEPSEEK_LAB_FLEET": FLEET})
    if check and result.returncode != 0:
        pytest.fail(f"`{' '.join(args)}` exited {result.returncode}\nstdout:\n{result.stdout[-4000:]}\n"
                    f"stderr:\n{result.stderr[-4000:]}")
    return result


def node(name: str, command: str, check: bool = True) -> str:
    return run("docker", "exec", name, "sh", "-c", command, check=check).stdout


def current(name: str) -> str:
    return node(name, f"readlink {MODELS}/{SLUG}/current", check=False).strip().rsplit("/", 1)[-1]


def revision_data(revision: str, flag: str = "--set") -> list[str]:
    manifest = MIRROR_DATA / MODEL / revision / "MANIFEST.dsw.json"
    return [flag, f"weights_revision={revision}", flag, f"weights_manifest={manifest}"]


def upgrade(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp_path / f"{name}.json"
    result = run(str(BIN / "python"), "deploy/upgrade.py", "inventories/lab.py", *ROLES, *args,
                 "--report", str(report), check=False)
    assert report.exists(), f"no report\nstdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    return result, json.loads(report.read_text())


def engine_answers(name: str) -> bool:
    """The node's engine serves a real completion (what a load balancer would route to)."""
    body = json.dumps({"model": "deepseek-lab/tiny-deepseek-v3", "prompt": "hi", "max_tokens": 2})
    command = ("curl -sf -m 20 -H 'Content-Type: application/json' "
               f"-d '{body}' http://127.0.0.1:8000/v1/completions")
    return run("docker", "exec", name, "sh", "-c", command, check=False, timeout=60).returncode == 0


@pytest.fixture(scope="module")
def fleet():
    run(str(BIN / "lab"), "up", "2", "--profile", "hgx-h100-8x,dgx-h200-8x", "--recreate")
    run(str(BIN / "lab"), "weights-mirror", "up", "--revision", "lab-1", "--revision", "lab-2", "--revision", "lab-3")
    run(str(BIN / "pyinfra"), "-y", "inventories/lab.py", "deploy/full.py", timeout=1800)
    yield NODES
    run(str(BIN / "lab"), "down")


def test_refused_before_any_host_is_changed(fleet, tmp_path):
    result = run(str(BIN / "python"), "deploy/upgrade.py", "inventories/lab.py", "--max-fail", "lots",
                 "--report", str(tmp_path / "r.json"), check=False)
    assert result.returncode == 2 and "max_fail: expected a count" in result.stderr, result.stderr
    assert [current(name) for name in NODES] == ["lab-1", "lab-1"]


def test_upgrade_batch_by_batch_keeps_serving(fleet, tmp_path):
    assert [current(name) for name in NODES] == ["lab-1", "lab-1"]
    stop = threading.Event()
    calls = {"ok": 0, "failed": 0}

    def client() -> None:
        # The node not in the current batch: node-2 while node-1 (canary) upgrades, then node-1.
        while not stop.is_set():
            state = tmp_path / "up.json.state.json"
            doc = json.loads(state.read_text()) if state.exists() else {"hosts": {}}
            first_done = doc["hosts"].get(HOSTS[0], {}).get("status") == "upgraded"
            target = NODES[0] if first_done else NODES[1]
            calls["ok" if engine_answers(target) else "failed"] += 1
            time.sleep(0.5)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        result, report = upgrade(tmp_path, "up", *revision_data("lab-2"), "--batch-size", "1", "--canary", "1",
                                 "--max-fail", "0")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert report["batches"] == [[HOSTS[0]], [HOSTS[1]]] and report["ok"]
    for host, name in zip(HOSTS, NODES):
        outcome = report["hosts"][host]
        assert outcome["status"] == "upgraded", f"{host}: status expected upgraded, found {outcome}"
        assert outcome["before"][SLUG].rsplit("/", 1)[-1] == "lab-1", outcome
        assert outcome["after"][SLUG].rsplit("/", 1)[-1] == "lab-2", outcome
        assert current(name) == "lab-2", f"{name}: current expected lab-2, found {current(name)}"
        assert f"{host}: health ok" in result.stdout and f"{host}: resume ok" in result.stdout
    assert calls["ok"] > 0 and calls["failed"] == 0, f"client while upgrading: {calls}"
    # Rerun: the state file says every host is done, nothing runs again.
    again, report = upgrade(tmp_path, "up", *revision_data("lab-2"), "--batch-size", "1", "--canary", "1")
    assert again.returncode == 0 and "resuming" in again.stdout and "drain ok" not in again.stdout, again.stdout


def test_fault_stops_the_rollout_and_rolls_the_canary_back(fleet, tmp_path):
    assert [current(name) for name in NODES] == ["lab-2", "lab-2"]
    # The canary's engine is pointed at the synthetic weights release: it has a config.json
    # (the serve role's gate passes) but no tokenizer or loadable weights, so it cannot serve.
    bad = f"{MODELS}/{SLUG}/current"
    result, report = upgrade(
        tmp_path, "fault", *revision_data("lab-3"), "--host-set", f"{HOSTS[0]}:serve_model_path={bad}",
        "--host-set", f"{HOSTS[0]}:serve_health_timeout_s=30",
        # The unit's start (and its health wait) gives up after 60 s instead of 30 minutes.
        "--host-set", f"{HOSTS[0]}:serve_start_timeout_s=60",
        *revision_data("lab-2", "--rollback-set"), "--batch-size", "1", "--canary", "1", "--max-fail", "0")
    assert result.returncode == 1, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    canary, other = report["hosts"][HOSTS[0]], report["hosts"][HOSTS[1]]
    assert canary["status"] == "rolled_back" and canary["step"] in ("apply", "health"), canary
    assert canary["rollback"] == "rolled back, healthy, re-admitted", canary
    assert canary["after"][SLUG].rsplit("/", 1)[-1] == "lab-2", canary
    assert "max_fail=0: rollout stopped" in report["stopped"]
    assert other["status"] == "pending" and report["untouched"] == [HOSTS[1]], other
    assert current(NODES[0]) == "lab-2" and engine_answers(NODES[0]), f"{NODES[0]}: not back on lab-2 and serving"
    assert current(NODES[1]) == "lab-2"
    assert node(NODES[1], f"test -e {MODELS}/{SLUG}/lab-3 && echo touched || echo untouched").strip() == "untouched"
