"""Replicas: the unit of serving. A replica is the ``deepseek_nodes`` hosts that serve one
copy of the model together (pipeline stages across nodes); its first host is the head
(the engine's API, the gateway, the Ray head), the others are workers (rank 1..N-1).

How an inventory declares them (pure logic; roles/settings.py feeds it the hosts'
validated data in inventory order):

* nothing: every serving host is a replica of its own (``deepseek_nodes`` 1, the default)
  or, with ``deepseek_nodes`` N > 1, each run of N consecutive serving hosts is one;
* ``deepseek_replica: "r1"`` host data (or group data of one group per replica): the hosts
  with the same name form that replica, head first in inventory order, or in the order of
  their ``serve_node_rank`` when every host of the replica sets one.

A replica whose size differs from its ``deepseek_nodes``, whose hosts disagree on the model
or node count, or ranks that are not 0..N-1 are refused, naming the replica and its hosts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ReplicaError(ValueError):
    """A replica the inventory declares wrongly; the message names the field, replica and hosts."""


@dataclass(frozen=True, slots=True)
class ReplicaMember:
    """What the replica plan reads of one serving host."""

    host: str
    nodes: int = 1  # deepseek_nodes
    replica: str | None = None  # deepseek_replica
    rank: int | None = None  # serve_node_rank
    model: str = ""  # deepseek_model (hosts of one replica serve one model)


@dataclass(frozen=True, slots=True)
class Replica:
    name: str
    hosts: tuple[str, ...]  # by rank: hosts[0] is the head

    @property
    def head(self) -> str:
        return self.hosts[0]

    @property
    def workers(self) -> tuple[str, ...]:
        return self.hosts[1:]

    def rank(self, host: str) -> int:
        return self.hosts.index(host)

    def is_head(self, host: str) -> bool:
        return host == self.head

    def describe(self) -> str:
        """``replica 'r1' (node-a head, node-b)``: how messages name it."""
        if len(self.hosts) == 1 and self.name == self.head:
            return f"replica {self.name!r}"
        return f"replica {self.name!r} ({self.head} head{''.join(', ' + worker for worker in self.workers)})"


def plan_replicas(members: Sequence[ReplicaMember]) -> dict[str, Replica]:
    """Serving host -> its replica (the same object for every host of one replica).

    >>> plan = plan_replicas([ReplicaMember("a", 2), ReplicaMember("b", 2), ReplicaMember("c", 2), ReplicaMember("d", 2)])
    >>> plan["d"].name, plan["d"].rank("d"), plan["d"].head
    ('c', 1, 'c')
    """
    named = [member for member in members if member.replica is not None]
    unnamed = [member for member in members if member.replica is None]
    if named and any(member.nodes > 1 for member in unnamed):
        hosts = ", ".join(member.host for member in unnamed if member.nodes > 1)
        raise ReplicaError(f"deepseek_replica: set on some serving hosts but not on {hosts} (deepseek_nodes > 1): "
                           "name the replica of every host of a multi-node deployment")
    groups: dict[str, list[ReplicaMember]] = {}
    for member in named:
        groups.setdefault(member.replica, []).append(member)
    singles = [member for member in unnamed if member.nodes == 1]
    runs = [member for member in unnamed if member.nodes > 1]
    for member in singles:
        if member.host in groups:
            raise ReplicaError(f"deepseek_replica: {member.host!r} names a replica and is a host serving on its own")
        groups[member.host] = [member]
    start = 0
    while start < len(runs):
        size = runs[start].nodes
        chunk = runs[start:start + size]
        if len(chunk) < size:
            raise ReplicaError(
                f"deepseek_nodes: {len(runs)} serving hosts ({', '.join(m.host for m in runs)}) do not split into "
                f"replicas of {size} nodes: the last one, {', '.join(m.host for m in chunk)}, has {len(chunk)}; "
                "add hosts or name each host's replica (deepseek_replica)")
        groups[chunk[0].host] = chunk
        start += size
    plan: dict[str, Replica] = {}
    for name, group in groups.items():
        replica = _replica(name, group)
        for host in replica.hosts:
            plan[host] = replica
    return plan


def _replica(name: str, group: list[ReplicaMember]) -> Replica:
    hosts = ", ".join(member.host for member in group)
    for field, values in (("deepseek_nodes", {m.nodes for m in group}), ("deepseek_model", {m.model for m in group})):
        if len(values) > 1:
            raise ReplicaError(f"{field}: the hosts of replica {name!r} ({hosts}) disagree: {sorted(map(str, values))}")
    nodes = group[0].nodes
    if len(group) != nodes:
        raise ReplicaError(
            f"deepseek_replica: replica {name!r} has {len(group)} host(s) ({hosts}), its deepseek_nodes = {nodes} "
            f"needs {nodes}: one host per pipeline stage of the serving plan")
    ranks = [member.rank for member in group]
    if all(rank is None for rank in ranks) or nodes == 1:
        return Replica(name, tuple(member.host for member in group))
    if any(rank is None for rank in ranks) or sorted(ranks) != list(range(nodes)):
        found = ", ".join(f"{m.host}={m.rank}" for m in group)
        raise ReplicaError(f"serve_node_rank: the hosts of replica {name!r} must be ranks 0..{nodes - 1}, "
                           f"each once (or none set), found {found}")
    return Replica(name, tuple(member.host for member in sorted(group, key=lambda m: m.rank)))


def replica_units(plan: dict[str, Replica], hosts: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``hosts`` as (replica name, its hosts among ``hosts``), in the order of their first host;
    a host outside the plan (no serving host: a monitoring node) is a unit of its own."""
    units: dict[str, list[str]] = {}
    for host in hosts:
        replica = plan.get(host)
        units.setdefault(replica.name if replica else host, []).append(host)
    return list(units.items())
