"""The rollout driver by replica (fleet/upgrade.py execute), its pyinfra runs replaced by a
recorder: a replica is gated as one, fails as one and is rolled back as one.

Run by test_upgrade_replicas.py in a process of its own: fleet/upgrade.py imports pyinfra_cli,
which monkey-patches the standard library for gevent, and other unit tests' threads (the
engine server's) hang under that patch.
"""

from __future__ import annotations

import pytest

from fleet import upgrade
from fleet.rollout import RolloutState

REPLICAS = [("r1", ["a1", "a2"]), ("r2", ["b1", "b2"]), ("r3", ["c1", "c2"])]
HOSTS = [host for _name, members in REPLICAS for host in members]


@pytest.fixture
def runs(monkeypatch):
    """Every step the driver runs: (step, hosts, data); the health gate fails on b2 (a worker)
    while the upgrade's data is applied, and passes once it is rolled back."""
    calls: list[tuple[str, list[str], dict]] = []

    def run_step(spec, hosts, deploy_files=(), data=None, host_data=None, ops=None):
        step = "ops" if ops is not None else deploy_files[0]
        calls.append((step, list(hosts), dict(data or {})))
        failing = step == "deploy/health.py" and (data or {}).get("weights_revision") == "new"
        return {host: ("gate engine-health failed" if failing and host == "b2" else None) for host in hosts}

    def hook(template, hosts, log):
        calls.append((f"hook {template}", list(hosts), {}))
        return {host: None for host in hosts}

    monkeypatch.setattr(upgrade, "run_step", run_step)
    monkeypatch.setattr(upgrade, "_hook", hook)
    monkeypatch.setattr(upgrade, "probe_releases", lambda spec, hosts: {host: {} for host in hosts})
    return calls


def test_a_failing_worker_fails_its_replica_and_the_whole_replica_is_rolled_back(runs):
    spec = upgrade.UpgradeSpec(inventory="inventories/lab.py", deploy_files=["deploy/weights.py"],
                               data={"weights_revision": "new"}, lb_drain="drain", lb_admit="admit")
    rollout = RolloutState.new("k", HOSTS, 1, 1, max_fail=0, units=REPLICAS)
    upgrade.execute(spec, rollout, None, log=lambda _line: None)

    statuses = {host: outcome.status for host, outcome in rollout.hosts.items()}
    assert statuses == {"a1": "upgraded", "a2": "upgraded", "b1": "rolled_back", "b2": "rolled_back",
                        "c1": "pending", "c2": "pending"}
    assert rollout.hosts["b2"].error == "gate engine-health failed"
    assert rollout.hosts["b1"].error == "replica r2: b2 failed health" and rollout.hosts["b1"].step == "health"
    assert "1 replica(s) failed (r2 (b1, b2)), more than max_fail=0" in rollout.stopped
    # Each step ran on a whole replica; the load balancer heard of heads only.
    assert ("deploy/weights.py", ["b1", "b2"], {"weights_revision": "new"}) in runs
    assert [hosts for step, hosts, _ in runs if step == "hook drain"] == [["a1"], ["b1"], ["b1"]]
    assert [hosts for step, hosts, _ in runs if step == "hook admit"] == [["a1"], ["b1"]]  # b1 after its rollback
    # The rollback: both hosts of r2 with the inventory's own data; nothing ran on r3.
    assert ("deploy/weights.py", ["b1", "b2"], {}) in runs
    assert not [call for call in runs if "c1" in call[1] or "c2" in call[1]]


def test_replicas_come_from_the_inventory_and_a_limit_may_not_split_one(tmp_path):
    inventory = tmp_path / "replicas.py"
    inventory.write_text(
        "gpu_nodes = [(f'gpu-{i}', {'deepseek_nodes': 2, 'deepseek_replica': f'r{(i + 1) // 2}'}) for i in (1, 2, 3, 4)]\n"
        "monitoring = ['mon-1']\n")
    spec = upgrade.UpgradeSpec(inventory=str(inventory), deploy_files=["deploy/weights.py"])
    hosts = upgrade.inventory_hosts(spec)
    assert upgrade.inventory_units(spec, hosts) == [("r1", ["gpu-1", "gpu-2"]), ("r2", ["gpu-3", "gpu-4"]),
                                                   ("mon-1", ["mon-1"])]
    with pytest.raises(upgrade.RolloutError, match=r"replica 'r2' \(gpu-3 head, gpu-4\) is upgraded as one.*gpu-4"):
        upgrade.inventory_units(spec, ["gpu-1", "gpu-2", "gpu-3"])


@pytest.mark.parametrize(("deploy_files", "acceptance", "runs_it"), [
    (["deploy/nvidia_driver.py", "deploy/reboot.py"], "auto", True), (["deploy/full.py"], "auto", True),
    (["deploy/weights.py", "deploy/serve.py"], "auto", False), (["deploy/weights.py"], "always", True),
    (["deploy/full.py"], "never", False),
])
def test_a_driver_change_runs_the_acceptance_gate_after_the_reboot_and_before_the_health_gate(
        runs, deploy_files, acceptance, runs_it):
    spec = upgrade.UpgradeSpec(inventory="inventories/lab.py", deploy_files=deploy_files, acceptance=acceptance)
    rollout = RolloutState.new("k", ["a1"], 1, 0, max_fail=0, units=[("a1", ["a1"])])
    upgrade.execute(spec, rollout, None, log=lambda _line: None)
    steps = [step for step, hosts, _ in runs if step.startswith("deploy/")]
    gated = [step for step in steps if step in ("deploy/reboot.py", "deploy/acceptance.py", "deploy/health.py")]
    assert gated == (["deploy/reboot.py", "deploy/acceptance.py", "deploy/health.py"] if runs_it
                     else ["deploy/reboot.py", "deploy/health.py"])


def test_a_node_failing_acceptance_fails_its_replica_and_is_rolled_back(monkeypatch, runs):
    def run_step(spec, hosts, deploy_files=(), data=None, host_data=None, ops=None):
        step = "ops" if ops is not None else deploy_files[0]
        runs.append((step, list(hosts), dict(data or {})))
        failing = step == "deploy/acceptance.py" and (data or {}).get("nvidia_driver_branch") == "575"
        return {host: ("acceptance failed, node not admitted: allreduce_busbw: measured 281.21 GB/s, threshold 360.00 GB/s"
                       if failing and host == "a2" else None) for host in hosts}

    monkeypatch.setattr(upgrade, "run_step", run_step)
    spec = upgrade.UpgradeSpec(inventory="inventories/lab.py", deploy_files=["deploy/nvidia_driver.py"],
                               data={"nvidia_driver_branch": "575"})
    rollout = RolloutState.new("k", ["a1", "a2"], 1, 0, max_fail=0, units=[("r1", ["a1", "a2"])])
    upgrade.execute(spec, rollout, None, log=lambda _line: None)
    assert {host: outcome.status for host, outcome in rollout.hosts.items()} == {"a1": "rolled_back", "a2": "rolled_back"}
    assert rollout.hosts["a2"].step == "acceptance" and "allreduce_busbw" in rollout.hosts["a2"].error
    assert ("deploy/health.py", ["a1", "a2"], {"nvidia_driver_branch": "575"}) not in runs  # stopped before the gate
    assert ("deploy/nvidia_driver.py", ["a1", "a2"], {}) in runs  # rolled back with the inventory's own data
