"""``HostHardware``: every hardware fact a role needs, gathered in one round trip.

Roles read it through ``hardware(host)`` (the typed ``deepseek_infra.hardware.Hardware``),
or one section alone through ``hardware_part(host, Virtualization)``.

The command chains the commands of the single facts (never retyped here), each run as a
section that prints ``@@section <name> rc=<exit code>`` followed by its output; a section
whose tool is missing reports rc 127 and no output. ``process()`` hands each section to the
``process()`` of the fact it came from, so batched and single facts parse identically.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Any, TypeVar

from pyinfra.api import FactBase, StringCommand
from pyinfra.api.exceptions import FactProcessError
from pyinfra.api.state import StateStage
from pyinfra.facts.server import Hostname
from typing_extensions import override

from deepseek_infra.facts.cpu import CpuInfo, OnlineCpus
from deepseek_infra.facts.gpu import GpuInventory, GpuTopology
from deepseek_infra.facts.infiniband import IbStat, IbSysfsPorts
from deepseek_infra.facts.kernel import KernelCmdline, KernelRelease
from deepseek_infra.facts.memory import Hugepages, Meminfo
from deepseek_infra.facts.network import NetworkInterfaces
from deepseek_infra.facts.numa import NumaHardware
from deepseek_infra.facts.pci import NvidiaPciDevices
from deepseek_infra.facts.storage import BlockDevices
from deepseek_infra.facts.system import OsRelease, Virtualization
from deepseek_infra.hardware import PART_SECTION, Hardware, build_part
from deepseek_infra.runcache import run_cache

if TYPE_CHECKING:
    from pyinfra.api.host import Host

# Section name -> the fact whose command, required tool, parser and default it uses.
HARDWARE_SECTIONS: dict[str, type[FactBase]] = {
    "hostname": Hostname,
    "nvidia_pci": NvidiaPciDevices,
    "gpu_topology": GpuTopology,
    "gpu_inventory": GpuInventory,
    "cpu": CpuInfo,
    "online": OnlineCpus,
    "numa": NumaHardware,
    "ibstat": IbStat,
    "ib_sysfs": IbSysfsPorts,
    "meminfo": Meminfo,
    "hugepages": Hugepages,
    "cmdline": KernelCmdline,
    "kernel_release": KernelRelease,
    "block_devices": BlockDevices,
    "network": NetworkInterfaces,
    "virtualization": Virtualization,
    "os_release": OsRelease,
}
# Key of the result that says why a section fell back to its default.
UNAVAILABLE_KEY = "unavailable"
SECTION_MARKER = "@@section"
MISSING_TOOL_RC = 127  # what a shell returns for "command not found"

_MARKER_LINE = re.compile(rf"^{SECTION_MARKER} (?P<name>\S+) rc=(?P<rc>\d+)$")


def _command_text(command: str | StringCommand) -> str:
    return command.get_raw_value() if isinstance(command, StringCommand) else command


def section_script(name: str, fact: FactBase) -> str:
    """Shell code that runs ``fact``'s command and prints it as section ``name``.

    Output is captured first so the marker can carry the exit code; stderr is dropped
    because only stdout is parsed, and a missing tool is detected the way pyinfra does
    it for a single fact (``command -v``).
    """
    run = f"out=$( ( {_command_text(fact.command())} ) 2>/dev/null ); rc=$?"
    tool = fact.requires_command()
    if tool:
        run = (
            f"if command -v {shlex.quote(tool)} >/dev/null 2>&1; then {run}; "
            f"else out=''; rc={MISSING_TOOL_RC}; fi"
        )
    return (
        f"{run}; printf '{SECTION_MARKER} %s rc=%s\\n' {shlex.quote(name)} \"$rc\"; "
        "[ -z \"$out\" ] || printf '%s\\n' \"$out\""
    )


def split_sections(lines: list[str]) -> dict[str, tuple[int, list[str]]]:
    """Map section name to ``(exit code, output lines)``; lines before any marker are ignored.

    >>> split_sections(["@@section kernel_release rc=0", "6.1.0-28-amd64", "@@section cpu rc=127"])
    {'kernel_release': (0, ['6.1.0-28-amd64']), 'cpu': (127, [])}
    """
    sections: dict[str, tuple[int, list[str]]] = {}
    current: list[str] | None = None
    for line in lines:
        marker = _MARKER_LINE.match(line.rstrip("\r\n"))
        if marker:
            current = []
            sections[marker["name"]] = (int(marker["rc"]), current)
        elif current is not None:
            current.append(line)
    return sections


def parse_host_hardware(lines: list[str]) -> dict[str, Any]:
    """Dispatch each section to its fact's parser; unusable sections get the fact's default.

    The reason a section fell back is kept under ``"unavailable"``, so a role can tell
    "nvidia-smi is not installed yet" apart from "no GPUs found".
    """
    sections = split_sections(lines)
    result: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    for name, fact_class in HARDWARE_SECTIONS.items():
        fact = fact_class()
        result[name] = fact.default()
        if name not in sections:
            unavailable[name] = "section missing from output"
            continue
        exit_code, section_lines = sections[name]
        if exit_code == MISSING_TOOL_RC:
            unavailable[name] = f"{fact.requires_command() or 'command'} not found"
        elif exit_code != 0:
            unavailable[name] = f"exited with {exit_code}"
        elif section_lines:
            # Same rule as pyinfra for a single fact: no output means the default.
            try:
                result[name] = fact.process(section_lines)
            except (FactProcessError, ValueError) as error:
                unavailable[name] = f"unparseable output: {error}"
    result[UNAVAILABLE_KEY] = unavailable
    return result


class HostHardware(FactBase[Hardware]):
    """All hardware facts in one command, as one typed ``Hardware`` reading.

    ``process()`` parses each section with its fact's parser (``parse_host_hardware``,
    sections by name as below) and builds the typed reading from them once:

    .. code:: python

        {"nvidia_pci": [{"slot": "0000:18:00.0", "device_id": "2330", ...}],
         "gpu_topology": {"gpus": [...], "nics": [...]},
         "gpu_inventory": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", ...}],
         "cpu": {...}, "numa": {...}, "ibstat": [{"ca": "mlx5_0", ...}],
         "meminfo": {"MemTotal": 2113645124, ..., "mem_total_mb": 2064106},
         "hugepages": {"sizes_kb": {2048: {"total": 0, "free": 0}}, "per_node": {...}},
         "cmdline": {"raw": "...", "params": [...]}, "kernel_release": "6.8.0-48-generic",
         "block_devices": [...], "network": {"ib0": {...}}, "virtualization":
         {"container": None, "vm": None}, "os_release": {"id": "ubuntu", ...},
         "unavailable": {"ibstat": "ibstat not found"}}
    """

    @override
    @staticmethod
    def default() -> Hardware:
        return Hardware.from_sections(parse_host_hardware([]))

    @override
    def command(self) -> str:
        return "; ".join(
            section_script(name, fact_class()) for name, fact_class in HARDWARE_SECTIONS.items()
        )

    @override
    def process(self, output: list[str]) -> Hardware:
        return Hardware.from_sections(parse_host_hardware(output))


# --- one reading per host state and run ----------------------------------------------------
#
# pyinfra 3 caches no fact: every ``host.get_fact(...)`` is a round trip. Deploy bodies run
# while pyinfra *prepares* (nothing has executed yet, so every reading is the same);
# operation bodies run while it *executes*, where an earlier operation may have changed the
# host (the driver install adds the GPU sections). ``remembered_fact`` keeps the last
# reading per host, fact and arguments, and hands it out again only while the host cannot
# have changed since: during prepare always; during execute while no operation on that
# host has run a command since the reading was taken, and never to the operation that took
# it (it may have run commands after reading). So an operation must read a remembered
# fact before it yields its first command; later reads in the same operation are its own.
# The readings live in the run cache "facts.memo" (deepseek_infra/runcache.py), per host.

MEMO_CACHE = "facts.memo"
PREPARE, EXECUTE = "prepare", "execute"
_PREPARED = ("prepared", "HostHardware")  # memo key of the reading taken before any change
P = TypeVar("P")


def host_changes(target: Host) -> int:
    """Operations on ``target`` that have completed this run and ran at least one command
    (the host's state generation: only executed commands change a host)."""
    ops = target.state.ops.get(target, {})
    return sum(1 for data in ops.values() if data.operation_meta.is_complete() and data.operation_meta.executed)


def _now(target: Host) -> tuple[str, int]:
    if target.state.current_stage < StateStage.Execute:
        return (PREPARE, 0)
    return (EXECUTE, host_changes(target))


def reading_valid(taken: tuple[str, int], taken_in_op: str | None, now: tuple[str, int], current_op: str | None) -> bool:
    """May a reading taken at ``taken`` (phase, changes) by operation ``taken_in_op`` be
    reused at ``now`` by ``current_op``?

    >>> reading_valid((PREPARE, 0), None, (EXECUTE, 0), "op2")   # nothing has executed yet
    True
    >>> reading_valid((EXECUTE, 3), "op1", (EXECUTE, 4), "op2")  # an operation changed the host since
    False
    """
    if now[0] == PREPARE:
        return taken[0] == PREPARE
    if taken[1] != now[1]:
        return False
    return taken_in_op is None or taken_in_op != current_op


def _memo(target: Host) -> dict:
    return run_cache(target.state, MEMO_CACHE).setdefault(target.name, {})


def _key(fact_class: type[FactBase], kwargs: dict[str, Any]) -> tuple:
    return (fact_class.__module__, fact_class.__name__, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))


def _valid(target: Host, key: tuple) -> tuple[bool, Any]:
    entry = _memo(target).get(key)
    if entry is None:
        return False, None
    taken, taken_in_op, value = entry
    return reading_valid(taken, taken_in_op, _now(target), target.current_op_hash), value


def remembered_fact(target: Host, fact_class: type[FactBase], **kwargs: Any) -> Any:
    """``target.get_fact(fact_class, **kwargs)``, reused while the host cannot have changed."""
    key = _key(fact_class, kwargs)
    valid, value = _valid(target, key)
    if not valid:
        value = target.get_fact(fact_class, **kwargs)
        now = _now(target)
        _memo(target)[key] = (now, target.current_op_hash if now[0] == EXECUTE else None, value)
    return value


def hardware(target: Host) -> Hardware:
    """The typed hardware reading of ``target``: one round trip per host state and run."""
    return remembered_fact(target, HostHardware)


def prepared_hardware(target: Host) -> Hardware:
    """The reading of ``target`` as it was before this run changed anything.

    The first reading of the run, kept for the run in the same memo: preflight judges it,
    and roles that only need what no role changes (``virtualization``) take it instead of
    a round trip. Read now when this run has none yet (a role run alone).
    """
    memo = _memo(target)
    if _PREPARED not in memo:
        memo[_PREPARED] = hardware(target)
    return memo[_PREPARED]


def hardware_part(target: Host, kind: type[P]) -> P:
    """One section of the reading, by its class: ``hardware_part(host, Virtualization)``.

    Taken from a still-valid ``hardware`` reading when this run has one (no round trip);
    otherwise the section's own small fact is asked (remembered the same way), so a role
    run alone never pays for the whole hardware script to learn one section.
    """
    valid, reading = _valid(target, _key(HostHardware, {}))
    if valid:
        return reading.part(kind)
    return build_part(kind, remembered_fact(target, HARDWARE_SECTIONS[PART_SECTION[kind]]))
