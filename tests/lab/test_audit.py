"""Drift audit against a lab fleet of its own: deploy, change one node by hand, and the
audit names that node and that role only (deploy/audit.py, fleet/)."""

from __future__ import annotations

import json
import os
import sys
from functools import partial
from pathlib import Path

import pytest

from lab.testing import fleet_run

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# A fleet of its own, so this test never touches another run's nodes.
FLEET = os.environ.get("DEEPSEEK_AUDIT_FLEET", "audit")
NODES = 2
# The per-role deploy of the role every node has: the audit is role-agnostic, and this
# keeps the test independent of the later roles' lab services and under two minutes.
DEPLOY = "deploy/base.py"


run = partial(fleet_run, FLEET, timeout=600)


def audit_json() -> tuple[int, dict]:
    result = run(sys.executable, "deploy/audit.py", "inventories/lab.py", DEPLOY, "--json", check=False)
    assert result.returncode in (0, 1), f"audit could not run (rc {result.returncode}):\n{result.stderr[-3000:]}"
    return result.returncode, json.loads(result.stdout)


@pytest.fixture(scope="module")
def fleet():
    up = run(str(BIN / "python"), "-m", "lab", "up", str(NODES), "--recreate")
    names = [line.split("\t")[0] for line in up.stdout.splitlines() if "\t" in line]
    assert len(names) == NODES, up.stdout
    run(str(BIN / "pyinfra"), "-y", "inventories/lab.py", DEPLOY)
    yield names
    run(str(BIN / "python"), "-m", "lab", "down")


def test_freshly_deployed_fleet_has_no_drift(fleet):
    code, report = audit_json()
    assert code == 0, json.dumps(report, indent=1)
    assert set(report["hosts"]) == {f"@docker/{name}" for name in fleet}
    assert all(host["operations"] > 0 for host in report["hosts"].values()), report["hosts"]


def test_hand_made_change_is_reported_for_that_node_and_role_only(fleet):
    changed, untouched = fleet[0], fleet[1:]
    run("docker", "exec", changed, "chmod", "0755", "/etc/deepseek")
    code, report = audit_json()
    assert code == 1, json.dumps(report, indent=1)
    drifted = report["hosts"][f"@docker/{changed}"]["drifted"]
    assert [(op["role"], op["operation"]) for op in drifted] == [
        ("base: install", "Ensure /etc/deepseek exists (root:deepseek 0750)")
    ], drifted
    assert drifted[0]["commands"] == ["chmod 750 /etc/deepseek"]
    for name in untouched:
        assert report["hosts"][f"@docker/{name}"]["status"] == "ok", report["hosts"][f"@docker/{name}"]
    assert report["roles"]["base: install"]["drifted_hosts"] == [f"@docker/{changed}"]
    # The audit changed nothing: the node still has the hand-made mode.
    mode = run("docker", "exec", changed, "stat", "-c", "%a", "/etc/deepseek").stdout.strip()
    assert mode == "755", f"{changed}: /etc/deepseek: expected the audit to leave mode 755, found {mode}"
    # The table names the same node and role.
    table = run(sys.executable, "deploy/audit.py", "inventories/lab.py", DEPLOY, check=False)
    assert table.returncode == 1
    assert f"@docker/{changed}  drift" in table.stdout, table.stdout
    assert "DRIFT on 1 of 2 host(s)" in table.stdout
