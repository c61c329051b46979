"""Drift audit summaries: what counts as drift, per host and per role, and the exit code."""

from __future__ import annotations

import json

import pytest

from fleet.drift import EXIT_CLEAN, EXIT_DRIFT, EXIT_ERROR, OpResult, is_refresh, split_name, summarise

HOSTS = ["@docker/n1", "@docker/n2", "@docker/n3"]


def clean(host: str, role: str = "base: install", op: str = "Ensure /etc/deepseek exists") -> OpResult:
    return OpResult(host, role, op)


@pytest.mark.parametrize(("name", "expected"), [
    ("base: install | Ensure /etc/deepseek exists", ("base: install", "Ensure /etc/deepseek exists")),
    ("site | base: install | Ensure x", ("base: install", "Ensure x")),
    ("files.directory", ("(no deploy)", "files.directory")),
])
def test_role_is_the_innermost_deploy_name(name, expected):
    assert split_name(name) == expected


@pytest.mark.parametrize(("command", "refresh"), [
    ("apt-get update", True),
    ("touch /var/lib/apt/periodic/update-success-stamp", True),
    ("apt-get -y install jq", False),
    ("apt-get update && rm -rf /etc/deepseek", False),
    ("chmod 750 /etc/deepseek", False),
])
def test_only_cache_refreshes_are_refresh_commands(command, refresh):
    assert is_refresh(command) is refresh


def test_one_drifted_host_and_role_is_reported_alone():
    results = [clean(h) for h in HOSTS] + [clean(h, "preflight: check", "Ensure the host passed preflight") for h in HOSTS]
    results[1] = OpResult("@docker/n2", "base: install", "Ensure /etc/deepseek exists", ("chmod 750 /etc/deepseek",))
    summary = summarise(results, HOSTS)
    assert summary.drifted_hosts == ["@docker/n2"]
    assert summary.exit_code == EXIT_DRIFT
    data = summary.to_dict()
    assert data["roles"]["base: install"]["drifted_hosts"] == ["@docker/n2"]
    assert data["roles"]["preflight: check"]["drifted_hosts"] == []
    assert data["hosts"]["@docker/n1"]["status"] == "ok"
    assert data["hosts"]["@docker/n2"]["drifted"] == [
        {"role": "base: install", "operation": "Ensure /etc/deepseek exists", "commands": ["chmod 750 /etc/deepseek"]}
    ]
    table = summary.render_table()
    assert "@docker/n2  drift" in table
    assert any(line.split() == ["base:", "install", "1/3", "Ensure", "/etc/deepseek", "exists"] for line in table.splitlines())
    assert "chmod 750 /etc/deepseek" in table
    assert table.endswith("DRIFT on 1 of 3 host(s)")
    assert json.loads(summary.to_json()) == data


def test_pending_cache_refresh_is_not_drift_unless_strict():
    refresh = OpResult("@docker/n1", "base: install", "Ensure base packages are installed",
                       ("apt-get update", "touch /var/lib/apt/periodic/update-success-stamp"))
    lenient = summarise([refresh], HOSTS[:1])
    assert lenient.exit_code == EXIT_CLEAN
    assert lenient.hosts["@docker/n1"].pending_refresh == 1
    strict = summarise([refresh], HOSTS[:1], strict=True)
    assert strict.exit_code == EXIT_DRIFT


def test_refresh_plus_install_is_drift():
    op = OpResult("@docker/n1", "base: install", "Ensure base packages are installed", ("apt-get update", "apt-get -y install jq"))
    assert summarise([op], HOSTS[:1]).drifted_hosts == ["@docker/n1"]


def test_guarded_operation_is_conditional_not_drift():
    op = OpResult("@docker/n1", "base: install", "Restart chrony", ("systemctl restart chrony",), conditional=True)
    assert op.status() == "conditional"
    assert summarise([op], HOSTS[:1]).exit_code == EXIT_CLEAN
    assert op.status(strict=True) == "drift"


def test_unreachable_host_or_failed_operation_is_an_error():
    unreachable = summarise([clean("@docker/n1")], HOSTS[:2], unreachable={"@docker/n2": "failed to connect or prepare"})
    assert unreachable.exit_code == EXIT_ERROR
    assert unreachable.to_dict()["hosts"]["@docker/n2"]["status"] == "error"
    assert "error (failed to connect or prepare)" in unreachable.render_table()
    failed = summarise([OpResult("@docker/n1", "base: install", "x", error="FactError: boom")], HOSTS[:1])
    assert failed.exit_code == EXIT_ERROR
    assert "ERROR FactError: boom" in failed.render_table()


def test_no_drift_anywhere():
    summary = summarise([clean(h) for h in HOSTS], HOSTS)
    assert summary.exit_code == EXIT_CLEAN
    assert summary.render_table().endswith("no drift")
