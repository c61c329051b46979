"""The acceptance record of a node (``/etc/deepseek/acceptance.json``): each check's verdict.

``deploy/acceptance.py`` (roles/acceptance) measures the node and writes the record; the
gateway on the node reads it, and its ``/health`` answers 503 while the node is not accepted,
so the load balancer and the upgrade's health gate keep the node out. Stdlib only: this
module runs on the node.

Example record::

    {"schema": 1, "host": "gpu-1", "checked_at": "2025-01-01T00:00:00Z", "passed": false,
     "basis": {"fabric": "nvswitch", "gpus": 8, "nominal_busbw_gbps": 450.0},
     "verdicts": [{"name": "allreduce_busbw", "passed": false, "measured": 310.5,
                   "threshold": 360.0, "unit": "GB/s", "detail": "..."}]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RECORD_PATH = "/etc/deepseek/acceptance.json"
SCHEMA = 1


class RecordError(ValueError):
    """The record is unreadable or malformed; the message names the file and the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """One check: what was measured against which threshold (``measured`` None: no figure)."""

    name: str
    passed: bool
    measured: float | None
    threshold: float | None
    unit: str
    detail: str = ""

    def summary(self) -> str:
        """``allreduce_busbw: measured 310.50 GB/s, threshold 360.00 GB/s (detail)``."""
        measured = "no figure" if self.measured is None else f"measured {self.measured:.2f} {self.unit}"
        threshold = "" if self.threshold is None else f", threshold {self.threshold:.2f} {self.unit}"
        return f"{self.name}: {measured}{threshold}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class AcceptanceRecord:
    host: str
    checked_at: str  # ISO 8601, UTC
    verdicts: tuple[Verdict, ...]
    basis: Mapping[str, Any] = field(default_factory=dict)  # the hardware the thresholds came from

    @property
    def passed(self) -> bool:
        """Every check passed (a record without checks accepts nothing)."""
        return bool(self.verdicts) and all(v.passed for v in self.verdicts)

    @property
    def failures(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if not v.passed)

    def failure_message(self) -> str:
        return "; ".join(v.summary() for v in self.failures) or ("no checks ran" if not self.verdicts else "")

    def to_json(self) -> str:
        document = {"schema": SCHEMA, "host": self.host, "checked_at": self.checked_at, "passed": self.passed,
                    "basis": dict(self.basis), "verdicts": [asdict(v) for v in self.verdicts]}
        return json.dumps(document, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "acceptance record") -> AcceptanceRecord:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise RecordError(f"{where}: not JSON: {error}") from None
        if not isinstance(document, dict) or document.get("schema") != SCHEMA:
            raise RecordError(f"{where}: schema: expected {SCHEMA}, found "
                              f"{document.get('schema') if isinstance(document, dict) else document!r}")
        verdicts = []
        for index, item in enumerate(document.get("verdicts") or ()):
            try:
                verdicts.append(Verdict(**{key: item[key] for key in ("name", "passed", "measured", "threshold", "unit")},
                                        detail=str(item.get("detail", ""))))
            except (KeyError, TypeError) as error:
                raise RecordError(f"{where}: verdicts[{index}]: missing or bad field {error}") from None
        return cls(host=str(document.get("host", "")), checked_at=str(document.get("checked_at", "")),
                   verdicts=tuple(verdicts), basis=dict(document.get("basis") or {}))


def read_record(path: str | Path = RECORD_PATH) -> AcceptanceRecord | None:
    """The record at ``path``; None when there is none (acceptance never ran on this node)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise RecordError(f"{path}: cannot read: {error.strerror}") from None
    return AcceptanceRecord.from_json(text, str(path))


def admission(path: str | Path | None, required: bool = False) -> tuple[bool, str]:
    """(admitted, reason) for the gateway's /health: a failed record, a malformed one, or
    (when ``required``) a missing one keeps the node out; no path means not gated."""
    if path is None:
        return True, "acceptance not gated"
    try:
        record = read_record(path)
    except RecordError as error:
        return False, f"acceptance record unreadable: {error}"
    if record is None:
        return (False, f"{path}: no acceptance record (acceptance_required)") if required else (True, "acceptance not run")
    if not record.passed:
        return False, f"acceptance failed: {record.failure_message()}"
    return True, f"accepted at {record.checked_at}"
