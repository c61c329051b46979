"""Rolling upgrade planning and state (fleet/rollout.py)."""

from __future__ import annotations

import json

import pytest

from fleet.rollout import (
    RolloutError,
    RolloutState,
    load_or_start,
    parse_amount,
    plan_batches,
    target_key,
)

HOSTS = [f"n{i}" for i in range(1, 8)]


@pytest.mark.parametrize(("value", "total", "up", "expected"), [
    ("3", 7, True, 3), (2, 7, False, 2), ("25%", 7, True, 2), ("25%", 7, False, 1),
    ("10%", 5, False, 0), ("10%", 5, True, 1), ("100%", 7, True, 7), ("50%", 4, False, 2), ("0", 4, True, 0),
])
def test_amounts_are_counts_or_percentages(value, total, up, expected):
    assert parse_amount("batch_size", value, total, round_up=up) == expected


@pytest.mark.parametrize("value", ["", "x", "-1", "1.5", "150%", "5 hosts"])
def test_bad_amounts_are_refused_naming_the_field(value):
    with pytest.raises(RolloutError, match="^max_fail: "):
        parse_amount("max_fail", value, 4, round_up=False)


def test_canary_first_then_batches_by_count():
    assert plan_batches(HOSTS, 2, canary=1) == [["n1"], ["n2", "n3"], ["n4", "n5"], ["n6", "n7"]]
    assert plan_batches(HOSTS, 3, canary=0) == [["n1", "n2", "n3"], ["n4", "n5", "n6"], ["n7"]]


def test_batches_by_percentage_round_up():
    # 30% of 7 = 2.1 -> 3 per batch; canary 10% of 7 = 0.7 -> 1 host
    assert plan_batches(HOSTS, "30%", canary="10%") == [["n1"], ["n2", "n3", "n4"], ["n5", "n6", "n7"]]
    assert plan_batches(["a", "b"], "100%", canary=1) == [["a"], ["b"]]


def test_plan_refuses_empty_or_zero_batches():
    with pytest.raises(RolloutError, match="^hosts: "):
        plan_batches([], 1)
    with pytest.raises(RolloutError, match="^batch_size: expected at least 1"):
        plan_batches(HOSTS, "0")
    with pytest.raises(RolloutError, match="^hosts: listed twice"):
        plan_batches(["a", "a"], 1)


def test_max_fail_budget_stops_the_remaining_batches():
    state = RolloutState.new("k", HOSTS[:4], 1, 1, max_fail=1)
    assert state.max_fail == 1 and state.canary
    assert not RolloutState.new("k", HOSTS, 2, 0, 0).canary
    state.record("n1", "upgraded")
    state.record("n2", "failed", "health", "engine down")
    assert not state.over_budget() and [n for n, _ in state.remaining_batches()] == [2, 3]
    state.record("n3", "failed", "apply", "boom")
    assert state.over_budget() and state.remaining_batches() == []
    state.finish()
    assert state.stopped and "n2, n3" in state.stopped and "max_fail=1" in state.stopped
    assert state.untouched() == ["n4"] and not state.ok


def test_max_fail_percentage_rounds_down():
    state = RolloutState.new("k", HOSTS, 2, 1, max_fail="20%")  # 1.4 -> 1
    assert state.max_fail == 1


def test_rollback_selects_only_failed_hosts_never_untouched_ones():
    state = RolloutState.new("k", HOSTS[:4], 1, 1, max_fail=0)
    state.record("n1", "upgraded")
    state.record("n2", "failed", "health", "bad model path")
    assert state.rollback_candidates() == ["n2"]
    state.record("n2", "rolled_back", "health", "bad model path")
    assert state.rollback_candidates() == [] and state.untouched() == ["n3", "n4"]
    assert state.failures() == ["n2"] and state.over_budget()


def test_state_round_trips_and_resume_continues_where_it_stopped(tmp_path):
    path = tmp_path / "state.json"
    key = target_key(["deploy/full.py"], {"weights_revision": "lab-2"}, {})
    state = load_or_start(path, key, HOSTS[:5], 2, 1, 0)
    assert state.runs == 1
    state.record("n1", "upgraded")
    state.record("n2", "upgraded")
    state.hosts["n2"].before = {"m": "/x/lab-1"}
    state.hosts["n2"].seconds = {"drain": 1.5, "apply": 42.0}
    state.save(path)  # interrupted during batch 2 (n3 still pending)
    resumed = load_or_start(path, key, HOSTS[:5], 2, 1, 0)
    assert resumed.runs == 2 and resumed.hosts["n2"].before == {"m": "/x/lab-1"}
    assert resumed.hosts["n2"].seconds == {"drain": 1.5, "apply": 42.0} and resumed.hosts["n3"].seconds == {}
    assert resumed.remaining_batches() == [(1, ["n3"]), (2, ["n4", "n5"])]
    doc = json.loads(path.read_text())
    assert doc["hosts"]["n1"]["status"] == "upgraded" and doc["untouched"] == ["n3", "n4", "n5"]


def test_resume_retries_rolled_back_hosts(tmp_path):
    path = tmp_path / "state.json"
    state = load_or_start(path, "k", ["a", "b"], 1, 1, 0)
    state.record("a", "rolled_back", "health", "down")
    state.save(path)
    resumed = load_or_start(path, "k", ["a", "b"], 1, 1, 0)
    assert resumed.hosts["a"].status == "pending" and resumed.remaining_batches() == [(0, ["a"]), (1, ["b"])]


def test_resume_refuses_another_target_or_other_hosts(tmp_path):
    path = tmp_path / "state.json"
    load_or_start(path, "k1", ["a", "b"], 1, 1, 0).save(path)
    with pytest.raises(RolloutError, match="another rollout target"):
        load_or_start(path, "k2", ["a", "b"], 1, 1, 0)
    with pytest.raises(RolloutError, match="records hosts"):
        load_or_start(path, "k1", ["a", "c"], 1, 1, 0)
    path.write_text("{not json")
    with pytest.raises(RolloutError, match="unreadable"):
        load_or_start(path, "k1", ["a", "b"], 1, 1, 0)


def test_target_key_depends_on_roles_and_data():
    base = target_key(["deploy/full.py"], {"weights_revision": "lab-2"}, {})
    assert base == target_key(["deploy/full.py"], {"weights_revision": "lab-2"}, {})
    assert base != target_key(["deploy/full.py"], {"weights_revision": "lab-3"}, {})
    assert base != target_key(["deploy/weights.py"], {"weights_revision": "lab-2"}, {})
    assert base != target_key(["deploy/full.py"], {"weights_revision": "lab-2"}, {"a": {"x": 1}})


def test_a_state_file_written_before_step_timings_existed_still_resumes(tmp_path):
    path = tmp_path / "state.json"
    key = target_key(["deploy/serve.py"], {}, {})
    state = load_or_start(path, key, HOSTS[:2], 1, 0, 0)
    state.record("n1", "upgraded")
    doc = state.to_dict()
    for outcome in doc["hosts"].values():
        del outcome["seconds"]
    path.write_text(json.dumps(doc))
    resumed = load_or_start(path, key, HOSTS[:2], 1, 0, 0)
    assert resumed.hosts["n1"].status == "upgraded" and resumed.hosts["n1"].seconds == {}


# --- replicas as the unit -------------------------------------------------------------------
REPLICAS = [("r1", ["a1", "a2"]), ("r2", ["b1", "b2"]), ("r3", ["c1", "c2"]), ("r4", ["d1", "d2"])]
REPLICA_HOSTS = [host for _name, members in REPLICAS for host in members]


def test_batches_canary_and_max_fail_count_replicas_never_splitting_one():
    state = RolloutState.new("k", REPLICA_HOSTS, "50%", 1, max_fail="25%", units=REPLICAS)
    # canary: one replica (2 hosts); then 50% of 4 replicas = 2 replicas (4 hosts); then the last one
    assert state.batches == [["a1", "a2"], ["b1", "b2", "c1", "c2"], ["d1", "d2"]]
    assert state.max_fail == 1 and state.replicas == dict(REPLICAS)
    state.record("b1", "failed", "health", "engine down")
    state.record("b2", "failed", "health", "replica r2: b1 failed health")
    assert state.failed_replicas() == ["r2"] and not state.over_budget()  # two hosts, one replica
    state.record("c2", "failed", "apply", "boom")
    assert state.over_budget()
    state.finish()
    assert "2 replica(s) failed (r2 (b1, b2), r3 (c1, c2))" in state.stopped


def test_replicas_must_cover_the_hosts_exactly():
    with pytest.raises(RolloutError, match="do not cover"):
        plan_batches(REPLICA_HOSTS, 1, 0, REPLICAS[:3])


def test_single_node_replicas_plan_as_hosts_and_record_no_replicas():
    units = [(host, [host]) for host in HOSTS]
    assert plan_batches(HOSTS, 2, 1, units) == plan_batches(HOSTS, 2, 1)
    assert RolloutState.new("k", HOSTS, 2, 1, 0, units).replicas == {}


def test_a_state_file_of_other_replicas_is_refused(tmp_path):
    path = tmp_path / "state.json"
    RolloutState.new("k", REPLICA_HOSTS, 1, 0, 0, units=REPLICAS).save(path)
    regrouped = [("r1", ["a1", "b1"]), ("r2", ["a2", "b2"]), ("r3", ["c1", "c2"]), ("r4", ["d1", "d2"])]
    with pytest.raises(RolloutError, match="records replicas"):
        load_or_start(path, "k", REPLICA_HOSTS, 1, 0, 0, regrouped)
    assert load_or_start(path, "k", REPLICA_HOSTS, 1, 0, 0, REPLICAS).runs == 1
