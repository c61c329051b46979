"""Per-host "reboot required" state: which roles need a reboot, and why.

A role that changed something only a reboot applies (kernel command line, a blacklisted
module still loaded, a new driver) records it with ``deepseek_infra.operations.reboot
.reboot_required``: one JSON file per role under ``REBOOT_REQUIRED_DIR``. ``deploy/reboot.py``
and rolling upgrades read them through ``RebootRequired`` and reboot only those hosts.
"""

from __future__ import annotations

import json
import re
from typing import Final

from pyinfra.api import FactBase
from typing_extensions import override

from deepseek_node import paths

REBOOT_REQUIRED_DIR: Final = f"{paths.STATE_DIR}/reboot-required.d"
_MARKER = "@@reboot-required"
# Each file is printed after a marker line naming it; a missing directory prints nothing.
REBOOT_REQUIRED_COMMAND: Final = (
    f"for f in {REBOOT_REQUIRED_DIR}/*.json; do [ -f \"$f\" ] || continue; "
    f"printf '{_MARKER} %s\\n' \"$f\"; cat \"$f\"; echo; done; true"
)
_MARKER_LINE = re.compile(rf"^{_MARKER} .*/(?P<role>[^/]+)\.json$")


def render_state(role: str, reasons: list[str]) -> str:
    """The file content for ``role``: stable (sorted keys, no timestamp) so equal reasons mean no change."""
    return json.dumps({"role": role, "reasons": list(reasons)}, indent=2, sort_keys=True) + "\n"


def parse_reboot_required(lines: list[str]) -> dict[str, list[str]]:
    """``{role: [reasons]}`` from the marker-separated files; an unreadable file keeps its role.

    >>> parse_reboot_required(["@@reboot-required /x/kernel.json", '{"role": "kernel", "reasons": ["a"]}'])
    {'kernel': ['a']}
    """
    chunks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if match := _MARKER_LINE.match(line.strip()):
            current = chunks.setdefault(match["role"], [])
        elif current is not None:
            current.append(line)
    state: dict[str, list[str]] = {}
    for role, body in chunks.items():
        try:
            reasons = json.loads("\n".join(body)).get("reasons")
        except (ValueError, AttributeError):
            reasons = None
        if not isinstance(reasons, list) or not reasons:
            # A corrupt or empty file still says "this role asked for a reboot".
            reasons = [f"{REBOOT_REQUIRED_DIR}/{role}.json is unreadable"] if reasons is None else reasons
        state[role] = [str(reason) for reason in reasons] or [f"{role} asked for a reboot"]
    return dict(sorted(state.items()))


class RebootRequired(FactBase[dict[str, list[str]]]):
    """Roles that asked for a reboot of this host, with their reasons; ``{}`` when none.

    .. code:: python

        {"kernel": ["kernel command line lacks iommu=pt", "nouveau is loaded"],
         "nvidia-driver": ["driver 570.158.01 installed, 565.57.01 loaded"]}
    """

    default = dict

    @override
    def command(self) -> str:
        return REBOOT_REQUIRED_COMMAND

    @override
    def process(self, output: list[str]) -> dict[str, list[str]]:
        return parse_reboot_required(output)
