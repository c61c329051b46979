"""Lab integration of the acceptance gate (issue 21): a two-node fleet of its own.

base + nvidia_driver + exporters put the NVIDIA stack and DCGM (with the mirror's dcgmi) on
both nodes; deploy/acceptance.py then runs dcgmi diag, all_reduce_perf and ib_write_bw per HCA
pair (the simulated tools print what the real ones print, figures from each node's profile).
The healthy profile passes every check; hgx-h100-8x-degraded fails the all-reduce check only,
the run fails that host naming the check, figure and threshold, and its record says the same.
Then each node's real gateway (deploy/gateway.py, in front of the lab's stand-in engine)
answers /health: 200 on the accepted node, 503 "not_accepted" with the failed check on the
other, so a load balancer or the upgrade's health gate keeps it out.

The fleet is DEEPSEEK_LAB_ACCEPTANCE_FLEET (default "acclab"), created fresh and brought down.
"""

from __future__ import annotations

import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from deepseek_node.acceptance import RECORD_PATH, AcceptanceRecord
from lab import gateway_lab, tiny_model
from lab.testing import fleet_run

pytestmark = pytest.mark.lab

FLEET = os.environ.get("DEEPSEEK_LAB_ACCEPTANCE_FLEET", "acclab")
BIN = Path(sys.executable).parent
PROFILES = ("hgx-h100-8x", "hgx-h100-8x-degraded")
run = partial(fleet_run, FLEET, timeout=1200)


def pyinfra(*args: str, check: bool = True) -> dict:
    result = run(str(BIN / "pyinfra"), "-y", "--json", "inventories/lab.py", *args, check=check)
    return {"report": json.loads(result.stdout[result.stdout.index("{"):]), "output": result.stdout + result.stderr,
            "returncode": result.returncode}


@pytest.fixture(scope="module")
def fleet():
    up = run(str(BIN / "python"), "-m", "lab", "up", "2", "--profile", ",".join(PROFILES), "--recreate")
    nodes = {fields[2]: fields[0] for fields in (line.split("\t") for line in up.stdout.splitlines()) if len(fields) > 2}
    assert sorted(nodes) == sorted(PROFILES), up.stdout
    try:
        result = pyinfra("deploy/base.py", "deploy/nvidia_driver.py", "deploy/exporters.py")
        assert result["report"]["results"]["totals"]["error"] == 0, result["output"][-4000:]
        yield nodes
    finally:
        run(str(BIN / "python"), "-m", "lab", "down", check=False)


@pytest.fixture(scope="module")
def accepted(fleet):
    # The checks at the binary seam; the PyTorch ones (burnin, replica_allreduce) need the engine's
    # venv and run in tests/lab/test_vllm_replica.py, where it is deployed.
    return pyinfra("deploy/acceptance.py", "--data", 'acceptance_checks=["dcgm","allreduce","ib_write_bw"]', check=False)


def record(node: str) -> AcceptanceRecord:
    text = run("docker", "exec", node, "cat", RECORD_PATH, timeout=60).stdout
    return AcceptanceRecord.from_json(text, f"{node}:{RECORD_PATH}")


def test_healthy_profile_passes_every_check(fleet, accepted):
    healthy = record(fleet["hgx-h100-8x"])
    names = [v.name for v in healthy.verdicts]
    assert healthy.passed, healthy.failure_message()
    assert names[:2] == ["dcgm_diag_r2", "allreduce_busbw"] and any(n.startswith("ib_write_bw ") for n in names), names
    busbw = next(v for v in healthy.verdicts if v.name == "allreduce_busbw")
    assert busbw.threshold == 360.0 and busbw.measured > 400, busbw.summary()
    assert healthy.basis["fabric"] == "nvswitch" and healthy.basis["gpus"] == 8


def test_degraded_profile_fails_the_allreduce_check_only(fleet, accepted):
    degraded = record(fleet["hgx-h100-8x-degraded"])
    assert [v.name for v in degraded.failures] == ["allreduce_busbw"], degraded.failure_message()
    (failure,) = degraded.failures
    assert (failure.threshold, failure.unit) == (360.0, "GB/s") and 270 < failure.measured < 290, failure.summary()
    # The run fails that host (and only it), with the check, the figure and the threshold in the message.
    assert accepted["returncode"] != 0
    assert accepted["report"]["results"]["totals"]["error"] >= 1
    assert f"allreduce_busbw: measured {failure.measured:.2f} GB/s, threshold 360.00 GB/s" in accepted["output"]


def _health(node: str) -> tuple[str, dict]:
    https = f"curl -s --max-time 10 --cacert /etc/deepseek/gateway/tls.crt --resolve {node}:8443:127.0.0.1 https://{node}:8443"
    for _ in range(60):
        reply = run("docker", "exec", node, "sh", "-c", f"{https}/health -w ' %{{http_code}}'", check=False, timeout=60).stdout
        body, _, code = reply.rpartition(" ")
        if code in ("200", "503") and body.strip().startswith("{"):
            return code, json.loads(body)
        time.sleep(1)
    raise AssertionError(f"{node}: gateway /health never answered: {reply!r}")


def test_the_failed_node_is_kept_out_of_the_gateways(fleet, accepted):
    for node in fleet.values():
        run("docker", "cp", str(gateway_lab.FAKE_ENGINE), f"{node}:/usr/local/lib/lab-fake-engine.py")
        run("docker", "exec", node, "systemd-run", "--unit=lab-fake-engine", "-p", "User=nobody", "python3",
            "/usr/local/lib/lab-fake-engine.py", "--model", tiny_model.REPO_ID)
    result = pyinfra("deploy/gateway.py")
    assert result["report"]["results"]["totals"]["error"] == 0, result["output"][-4000:]
    code, body = _health(fleet["hgx-h100-8x"])
    assert (code, body["status"]) == ("200", "ok") and body["acceptance"].startswith("accepted at"), body
    code, body = _health(fleet["hgx-h100-8x-degraded"])
    assert (code, body["status"]) == ("503", "not_accepted"), body
    assert "allreduce_busbw: measured" in body["acceptance"] and "threshold 360.00 GB/s" in body["acceptance"], body
