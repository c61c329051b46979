"""Rolling upgrade plan and state: canary first, then batches; a failure budget; resumable.

The unit of a rollout is the replica (deepseek_infra/replicas.py): batches, the canary and
``max_fail`` count replicas, a replica's hosts are always in one batch, and a host that
fails fails its whole replica (its hosts are rolled back together). Single-node replicas,
the default, make every host a unit of its own, so counting replicas is counting hosts.

Pure logic (no pyinfra import): ``fleet/upgrade.py`` runs each batch (drain, apply
the roles, reboot if required, health gates, re-admit) and records every host's outcome
here. The state is a JSON file written after every host outcome, so a rollout that was
interrupted (Ctrl-C, controller crash) and run again with the same target continues with
the hosts it had not finished; hosts already upgraded are not touched again.

* batch sizes and ``max_fail`` are a count (``2``) or a percentage of the replicas (``25%``);
  a batch percentage rounds up (never an empty batch), a failure percentage rounds down
  (``10%`` of 5 replicas allows 0 failures);
* the rollout stops once more replicas failed than ``max_fail`` allows; the hosts of failed
  replicas are rolled back, hosts never started stay untouched.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Status = Literal["pending", "upgraded", "failed", "rolled_back", "rollback_failed"]
DONE: tuple[str, ...] = ("upgraded",)
FAILED: tuple[str, ...] = ("failed", "rolled_back", "rollback_failed")
_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


class RolloutError(ValueError):
    """A rollout that cannot be planned or resumed; the message names the field."""


def parse_amount(field_name: str, value: str | int, total: int, round_up: bool) -> int:
    """``"3"`` -> 3, ``"25%"`` of ``total`` -> rounded up or down; refuses anything else.

    >>> parse_amount("batch_size", "25%", 6, round_up=True)
    2
    >>> parse_amount("max_fail", "25%", 6, round_up=False)
    1
    """
    match = _AMOUNT.match(str(value))
    if not match:
        raise RolloutError(f"{field_name}: expected a count (2) or a percentage (25%), found {value!r}")
    number, percent = float(match.group(1)), match.group(2)
    if percent:
        if number > 100:
            raise RolloutError(f"{field_name}: expected a percentage up to 100%, found {value!r}")
        exact = total * number / 100
        return math.ceil(exact - 1e-9) if round_up else math.floor(exact + 1e-9)
    if number != int(number):
        raise RolloutError(f"{field_name}: expected a whole count, found {value!r}")
    return int(number)


def plan_batches(hosts: list[str], batch_size: str | int, canary: str | int = 0,
                 units: list[tuple[str, list[str]]] | None = None) -> list[list[str]]:
    """The batches of hosts, in order: ``canary`` replicas alone first, then ``batch_size``
    replicas at a time. ``units`` are the replicas as (name, hosts), covering ``hosts``
    exactly; None: every host is a replica of its own."""
    if not hosts:
        raise RolloutError("hosts: the rollout has no host (check the inventory and --limit)")
    if len(set(hosts)) != len(hosts):
        raise RolloutError(f"hosts: listed twice: {sorted({h for h in hosts if hosts.count(h) > 1})}")
    units = _units(hosts, units)
    size = parse_amount("batch_size", batch_size, len(units), round_up=True)
    if size < 1:
        raise RolloutError(f"batch_size: expected at least 1 replica per batch, found {batch_size!r}")
    canaries = parse_amount("canary", canary, len(units), round_up=True)
    groups: list[list[tuple[str, list[str]]]] = []
    if canaries:
        groups.append(units[:canaries])
    rest = units[canaries:]
    groups += [rest[start:start + size] for start in range(0, len(rest), size)]
    return [[host for _name, members in group for host in members] for group in groups]


def _units(hosts: list[str], units: list[tuple[str, list[str]]] | None) -> list[tuple[str, list[str]]]:
    if units is None:
        return [(host, [host]) for host in hosts]
    covered = [host for _name, members in units for host in members]
    if sorted(covered) != sorted(hosts):
        raise RolloutError(f"replicas: {sorted(covered)} do not cover the rollout's hosts {sorted(hosts)} exactly")
    return units


def target_key(roles: list[str], data: dict, host_data: dict[str, dict]) -> str:
    """A fingerprint of what the rollout installs: a state file is resumed only for the same target."""
    doc = json.dumps({"roles": roles, "data": data, "host_data": host_data}, sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


@dataclass
class HostOutcome:
    status: Status = "pending"
    batch: int | None = None
    step: str | None = None  # the step that failed: drain, apply, reboot, health, resume
    error: str | None = None
    before: dict = field(default_factory=dict)  # what the host ran before (e.g. weights release)
    after: dict = field(default_factory=dict)
    rollback: str | None = None  # the rollback's outcome, when there was one
    seconds: dict[str, float] = field(default_factory=dict)  # step -> seconds its batch spent in it (one run per batch)


@dataclass
class RolloutState:
    key: str
    batches: list[list[str]]
    max_fail: int
    hosts: dict[str, HostOutcome] = field(default_factory=dict)
    stopped: str | None = None  # why the rollout stopped early; None when it ran through
    runs: int = 0  # how many times the rollout was started (resumes count)
    canary: bool = False  # the first batch is the canary
    replicas: dict[str, list[str]] = field(default_factory=dict)  # replica -> its hosts; empty: one per host

    @classmethod
    def new(cls, key: str, hosts: list[str], batch_size: str | int, canary: str | int, max_fail: str | int,
            units: list[tuple[str, list[str]]] | None = None) -> RolloutState:
        batches = plan_batches(hosts, batch_size, canary, units)
        units = _units(hosts, units)
        budget = parse_amount("max_fail", max_fail, len(units), round_up=False)
        canaries = parse_amount("canary", canary, len(units), round_up=True)
        replicas = {name: list(members) for name, members in units if members != [name]}
        state = cls(key=key, batches=batches, max_fail=budget, canary=canaries > 0, replicas=replicas)
        for number, batch in enumerate(batches):
            for name in batch:
                state.hosts[name] = HostOutcome(batch=number)
        return state

    # --- progress -------------------------------------------------------------------------
    def failures(self) -> list[str]:
        return [name for name, outcome in self.hosts.items() if outcome.status in FAILED]

    def replica_of(self, host: str) -> str:
        return next((name for name, members in self.replicas.items() if host in members), host)

    def hosts_of(self, replica: str) -> list[str]:
        return self.replicas.get(replica, [replica])

    def failed_replicas(self) -> list[str]:
        return list(dict.fromkeys(self.replica_of(host) for host in self.failures()))

    def over_budget(self) -> bool:
        return len(self.failed_replicas()) > self.max_fail

    def remaining_batches(self) -> list[tuple[int, list[str]]]:
        """Batches with hosts still pending, as (number, pending hosts); empty once over budget."""
        if self.over_budget():
            return []
        todo = []
        for number, batch in enumerate(self.batches):
            pending = [name for name in batch if self.hosts[name].status == "pending"]
            if pending:
                todo.append((number, pending))
        return todo

    def record(self, name: str, status: Status, step: str | None = None, error: str | None = None) -> None:
        outcome = self.hosts[name]
        outcome.status, outcome.step, outcome.error = status, step, error

    def rollback_candidates(self) -> list[str]:
        """Hosts to roll back: failed in a batch and not rolled back yet; never an untouched host."""
        return [name for name, outcome in self.hosts.items() if outcome.status == "failed"]

    def untouched(self) -> list[str]:
        return [name for name, outcome in self.hosts.items() if outcome.status == "pending"]

    def finish(self) -> None:
        if self.over_budget():
            failed = ", ".join(name if self.hosts_of(name) == [name] else f"{name} ({', '.join(self.hosts_of(name))})"
                               for name in self.failed_replicas())
            what = "host(s)" if not self.replicas else "replica(s)"
            self.stopped = (f"{len(self.failed_replicas())} {what} failed ({failed}), "
                            f"more than max_fail={self.max_fail}: rollout stopped")
        else:
            self.stopped = None

    @property
    def ok(self) -> bool:
        return not self.failures() and not self.untouched()

    # --- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "key": self.key, "batches": self.batches, "max_fail": self.max_fail, "stopped": self.stopped,
            "runs": self.runs, "canary": self.canary, "replicas": self.replicas, "ok": self.ok, "failed": self.failures(), "untouched": self.untouched(),
            "hosts": {name: asdict(outcome) for name, outcome in self.hosts.items()},
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)

    @classmethod
    def from_dict(cls, doc: dict) -> RolloutState:
        hosts = {name: HostOutcome(**outcome) for name, outcome in doc["hosts"].items()}
        return cls(key=doc["key"], batches=doc["batches"], max_fail=doc["max_fail"], hosts=hosts,
                   stopped=doc.get("stopped"), runs=doc.get("runs", 0), canary=doc.get("canary", False),
                   replicas=doc.get("replicas", {}))


def load_or_start(path: Path | None, key: str, hosts: list[str], batch_size: str | int, canary: str | int,
                  max_fail: str | int, units: list[tuple[str, list[str]]] | None = None) -> RolloutState:
    """Resume the state at ``path`` when it is for the same target and hosts, else start a new one.

    A state file of another target is refused (the operator removes it or picks another
    path), never silently overwritten: it records a rollout that may need finishing.
    """
    fresh = RolloutState.new(key, hosts, batch_size, canary, max_fail, units)
    if path is None or not path.exists():
        fresh.runs = 1
        return fresh
    try:
        saved = RolloutState.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RolloutError(f"state file {path}: unreadable ({error}); remove it to start over") from error
    if saved.key != key:
        raise RolloutError(f"state file {path}: records another rollout target (key {saved.key}, this one "
                           f"{key}); finish that one or remove the file")
    if sorted(saved.hosts) != sorted(hosts):
        raise RolloutError(f"state file {path}: records hosts {sorted(saved.hosts)}, this run has {sorted(hosts)}")
    if saved.replicas != fresh.replicas:
        raise RolloutError(f"state file {path}: records replicas {saved.replicas}, the inventory now has {fresh.replicas}")
    saved.max_fail = fresh.max_fail
    # A host rolled back is back on the old release: a rerun tries it again.
    for outcome in saved.hosts.values():
        if outcome.status == "rolled_back":
            outcome.status, outcome.step, outcome.error, outcome.rollback = "pending", None, None, None
    saved.runs += 1
    saved.stopped = None
    return saved
