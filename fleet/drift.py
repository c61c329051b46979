"""Drift audit results: classify what a dry run would do, summarise per host and role.

Pure logic (no pyinfra import): ``fleet/audit.py`` feeds it one ``OpResult`` per
host and operation, taken from a prepared, never executed pyinfra state.

An operation *drifted* on a host when its command generator yields a command. Two kinds
of pending commands are not drift:

* cache refreshes (``apt-get update`` when the apt cache is older than
  ``base_apt_cache_valid_s``): they change no managed state and recur by design;
  ``--strict`` counts them too.
* operations guarded by ``_if``: a dry run cannot evaluate the guard; the operation it
  depends on shows up itself when it would change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

NO_DEPLOY = "(no deploy)"
# Commands that only refresh a cache; a pending one alone is not drift.
REFRESH_COMMANDS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^apt-get update$"),
    re.compile(r"^touch /var/lib/apt/periodic/update-success-stamp$"),
)
# Exit codes of the audit (cron/CI read them).
EXIT_CLEAN, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2

Status = Literal["ok", "drift", "refresh", "conditional", "error"]


def split_name(name: str) -> tuple[str, str]:
    """Split a pyinfra operation name into (role, operation); the role is the @deploy name.

    >>> split_name("base: install | Ensure /etc/deepseek exists")
    ('base: install', 'Ensure /etc/deepseek exists')
    >>> split_name("full | base: install | Ensure x")
    ('base: install', 'Ensure x')
    >>> split_name("files.directory")
    ('(no deploy)', 'files.directory')
    """
    parts = name.split(" | ")
    if len(parts) == 1:
        return NO_DEPLOY, name
    return parts[-2], parts[-1]


def is_refresh(command: str) -> bool:
    return any(pattern.match(command.strip()) for pattern in REFRESH_COMMANDS)


@dataclass(frozen=True, slots=True)
class OpResult:
    """What one operation would do on one host."""

    host: str
    role: str
    operation: str
    commands: tuple[str, ...] = ()
    conditional: bool = False  # has an ``_if`` guard, not evaluable without executing
    error: str | None = None  # the operation could not be evaluated (fact failed, ...)

    def status(self, strict: bool = False) -> Status:
        if self.error is not None:
            return "error"
        if not self.commands:
            return "ok"
        if self.conditional and not strict:
            return "conditional"
        if not strict and all(is_refresh(command) for command in self.commands):
            return "refresh"
        return "drift"


@dataclass(slots=True)
class HostSummary:
    host: str
    operations: int = 0
    drifted: list[OpResult] = field(default_factory=list)
    errors: list[OpResult] = field(default_factory=list)
    pending_refresh: int = 0
    unreachable: str | None = None

    @property
    def status(self) -> str:
        if self.unreachable is not None or self.errors:
            return "error"
        return "drift" if self.drifted else "ok"


@dataclass(slots=True)
class AuditSummary:
    hosts: dict[str, HostSummary]
    roles: dict[str, dict[str, list[str]]]  # role -> host -> drifted operation names
    strict: bool = False

    @property
    def drifted_hosts(self) -> list[str]:
        return [name for name, host in self.hosts.items() if host.drifted]

    @property
    def exit_code(self) -> int:
        if any(host.status == "error" for host in self.hosts.values()):
            return EXIT_ERROR
        return EXIT_DRIFT if self.drifted_hosts else EXIT_CLEAN

    def to_dict(self) -> dict:
        return {
            "drift": bool(self.drifted_hosts),
            "strict": self.strict,
            "exit_code": self.exit_code,
            "hosts": {
                name: {
                    "status": host.status,
                    "operations": host.operations,
                    "drifted": [
                        {"role": op.role, "operation": op.operation, "commands": list(op.commands)}
                        for op in host.drifted
                    ],
                    "errors": [
                        {"role": op.role, "operation": op.operation, "error": op.error} for op in host.errors
                    ],
                    "pending_refresh": host.pending_refresh,
                    "unreachable": host.unreachable,
                }
                for name, host in self.hosts.items()
            },
            "roles": {
                role: {"drifted_hosts": sorted(name for name, ops in hosts.items() if ops), "operations": hosts}
                for role, hosts in self.roles.items()
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def render_table(self) -> str:
        host_rows = []
        for name, host in self.hosts.items():
            status = host.status if host.unreachable is None else f"error ({host.unreachable})"
            roles = ", ".join(sorted({op.role for op in host.drifted})) or "-"
            host_rows.append((name, status, str(host.operations), str(len(host.drifted)), roles))
        role_rows = []
        for role, hosts in self.roles.items():
            drifted = {name: ops for name, ops in hosts.items() if ops}
            operations = sorted({op for ops in drifted.values() for op in ops})
            role_rows.append((role, f"{len(drifted)}/{len(hosts)}", "; ".join(operations) or "-"))
        lines = [
            *_table(("host", "status", "operations", "drifted", "roles drifted"), host_rows), "",
            *_table(("role", "hosts drifted", "operations drifted"), role_rows),
        ]
        details = [
            f"  {name}: {op.role} | {op.operation}: {'; '.join(op.commands)[:200]}"
            for name, host in self.hosts.items() for op in host.drifted
        ] + [
            f"  {name}: {op.role} | {op.operation}: ERROR {op.error}"
            for name, host in self.hosts.items() for op in host.errors
        ]
        if details:
            lines += ["", "pending changes:", *details]
        verdict = {
            EXIT_CLEAN: "no drift",
            EXIT_DRIFT: f"DRIFT on {len(self.drifted_hosts)} of {len(self.hosts)} host(s)",
            EXIT_ERROR: "ERROR: some hosts could not be audited",
        }[self.exit_code]
        return "\n".join([*lines, "", verdict])


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in (header, *rows)]


def summarise(
    results: list[OpResult], hosts: list[str], unreachable: dict[str, str] | None = None, strict: bool = False,
) -> AuditSummary:
    """Group operation results per host (in inventory order) and per role."""
    unreachable = unreachable or {}
    summaries = {name: HostSummary(name, unreachable=unreachable.get(name)) for name in hosts}
    roles: dict[str, dict[str, list[str]]] = {}
    for result in results:
        host = summaries.setdefault(result.host, HostSummary(result.host))
        host.operations += 1
        status = result.status(strict)
        role_hosts = roles.setdefault(result.role, {})
        drifted = role_hosts.setdefault(result.host, [])
        if status == "drift":
            host.drifted.append(result)
            drifted.append(result.operation)
        elif status == "error":
            host.errors.append(result)
        elif status == "refresh":
            host.pending_refresh += 1
    return AuditSummary(summaries, roles, strict)
