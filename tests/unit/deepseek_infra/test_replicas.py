"""Replicas from the inventory: default single-node, consecutive runs, named replicas, errors."""

from __future__ import annotations

import pytest

from deepseek_infra.replicas import Replica, ReplicaError, ReplicaMember, plan_replicas, replica_units

M = ReplicaMember


def names(plan: dict[str, Replica]) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {host: (replica.name, replica.hosts) for host, replica in plan.items()}


def test_every_host_is_its_own_replica_by_default():
    plan = plan_replicas([M("a"), M("b")])
    assert names(plan) == {"a": ("a", ("a",)), "b": ("b", ("b",))}
    assert plan["a"].is_head("a") and plan["a"].workers == () and plan["a"].describe() == "replica 'a'"


def test_consecutive_hosts_form_multi_node_replicas_without_names():
    plan = plan_replicas([M(h, 2) for h in ("n1", "n2", "n3", "n4")])
    assert [(plan[h].rank(h), plan[h].head) for h in ("n1", "n2", "n3", "n4")] == [(0, "n1"), (1, "n1"), (0, "n3"), (1, "n3")]
    assert plan["n1"] is plan["n2"] and plan["n3"].describe() == "replica 'n3' (n3 head, n4)"


def test_named_replicas_group_hosts_wherever_they_are_listed():
    plan = plan_replicas([M("a", 2, "r1"), M("b", 2, "r2"), M("c", 2, "r1"), M("d", 2, "r2")])
    assert names(plan)["c"] == ("r1", ("a", "c")) and names(plan)["b"] == ("r2", ("b", "d"))
    assert plan["d"].rank("d") == 1 and plan["b"].is_head("b")


def test_explicit_ranks_order_a_replica():
    plan = plan_replicas([M("a", 2, "r1", rank=1), M("b", 2, "r1", rank=0)])
    assert plan["a"].hosts == ("b", "a") and plan["a"].head == "b"


@pytest.mark.parametrize(("members", "words"), [
    ([M("a", 2, "r1"), M("b", 2, "r2"), M("c", 2, "r1")],
     "replica 'r2' has 1 host(s) (b), its deepseek_nodes = 2 needs 2"),
    ([M("a", 2, "r1"), M("b", 2, "r1"), M("c", 2, "r1")], "replica 'r1' has 3 host(s) (a, b, c)"),
    ([M("a", 2), M("b", 2), M("c", 2)], "the last one, c, has 1"),
    ([M("a", 2, "r1"), M("b", 2)], "deepseek_replica: set on some serving hosts but not on b"),
    ([M("a", 2, "r1"), M("b", 1, "r1")], "deepseek_nodes: the hosts of replica 'r1' (a, b) disagree"),
    ([M("a", 2, "r1", model="x"), M("b", 2, "r1", model="y")], "deepseek_model: the hosts of replica 'r1'"),
    ([M("a", 2, "r1", rank=0), M("b", 2, "r1", rank=0)], "serve_node_rank: the hosts of replica 'r1' must be ranks 0..1"),
    ([M("a", 2, "r1", rank=0), M("b", 2, "r1")], "found a=0, b=None"),
])
def test_a_wrong_replica_is_refused_naming_field_replica_and_hosts(members, words):
    with pytest.raises(ReplicaError) as raised:
        plan_replicas(members)
    assert words in str(raised.value)


def test_units_group_a_replicas_hosts_in_order_of_its_first_host():
    plan = plan_replicas([M("a", 2, "r1"), M("b", 2, "r2"), M("c", 2, "r1"), M("d", 2, "r2")])
    assert replica_units(plan, ["a", "b", "c", "d", "mon"]) == [("r1", ["a", "c"]), ("r2", ["b", "d"]), ("mon", ["mon"])]
    assert replica_units(plan, ["d", "a"]) == [("r2", ["d"]), ("r1", ["a"])]
