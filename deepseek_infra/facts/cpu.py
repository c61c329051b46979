"""CPU discovery from ``lscpu``: model, topology, NUMA layout and flags.

``parse_lscpu`` is pure so a batched fact can feed it the output of ``LSCPU_COMMAND``.
"""

from __future__ import annotations

import re
from typing import TypedDict

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError
from typing_extensions import override

from deepseek_infra.cpulist import parse_cpulist
from deepseek_infra.text import clean_line

# lscpu translates its keys; the C locale keeps them parseable.
LSCPU_COMMAND = "LC_ALL=C lscpu"

_KEY_VALUE = re.compile(r"^(\s*)([^:]+?):[ \t]*(.*)$")
_NUMA_NODE_KEY = re.compile(r"^NUMA node(\d+) CPU\(s\)$")


class CpuInfoDict(TypedDict, total=False):
    architecture: str | None
    model_name: str | None
    cpus: int | None
    sockets: int | None
    cores_per_socket: int | None
    threads_per_core: int | None
    numa_nodes: dict[int, list[int]]
    flags: list[str]
    hypervisor_vendor: str | None
    virtualization_type: str | None


def _lscpu_values(lines: list[str]) -> dict[str, str]:
    """Map each key to its value, first occurrence wins, wrapped values rejoined.

    A terminal wraps long values (Flags) at its width, even mid-word, and indents the rest
    to the value column. A line indented to at least that column continues the value and is
    appended without a separator; sub-keys of the tree format are indented less.
    """
    values: dict[str, str] = {}
    key = None
    value_column = 0
    for raw in lines:
        line = clean_line(raw)
        indent = len(line) - len(line.lstrip())
        if key is not None and line.strip() and indent >= value_column:
            values[key] += line[value_column:]
            continue
        match = _KEY_VALUE.match(line)
        if not match:
            key = None
            continue
        key = match.group(2).strip()
        value_column = match.start(3)
        if key in values or not match.group(3).strip():
            # Section header ("NUMA:") or a repeated key: nothing may continue it.
            values.setdefault(key, "")
            key = None
            continue
        values[key] = match.group(3)
    return {name: value.strip() for name, value in values.items()}


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def parse_lscpu(lines: list[str]) -> CpuInfoDict:
    """Parse ``lscpu`` in the flat (util-linux < 2.38) or the tree layout.

    Values that lscpu does not report are None (``sockets`` is None for "-" on some Arm
    systems). Returns ``{}`` when neither "Architecture" nor "CPU(s)" is reported.

    Sample return value::

        {"architecture": "x86_64", "model_name": "Intel(R) Xeon(R) Platinum 8488C",
         "cpus": 192, "sockets": 2, "cores_per_socket": 48, "threads_per_core": 2,
         "numa_nodes": {0: [0, ..., 47, 96, ..., 143], 1: [48, ..., 95, 144, ..., 191]},
         "flags": ["fpu", "vme", ...], "hypervisor_vendor": "KVM",
         "virtualization_type": "full"}
    """
    values = _lscpu_values(lines)
    if "Architecture" not in values and "CPU(s)" not in values:
        return {}
    numa_nodes = {
        int(match.group(1)): parse_cpulist(value)
        for key, value in values.items()
        if (match := _NUMA_NODE_KEY.match(key))
    }
    return {
        "architecture": values.get("Architecture") or None,
        "model_name": values.get("Model name") or None,
        "cpus": _int_or_none(values.get("CPU(s)")),
        "sockets": _int_or_none(values.get("Socket(s)")),
        "cores_per_socket": _int_or_none(values.get("Core(s) per socket")),
        "threads_per_core": _int_or_none(values.get("Thread(s) per core")),
        "numa_nodes": dict(sorted(numa_nodes.items())),
        "flags": values.get("Flags", "").split(),
        "hypervisor_vendor": values.get("Hypervisor vendor") or None,
        "virtualization_type": values.get("Virtualization type") or None,
    }


class CpuInfo(FactBase[CpuInfoDict]):
    """CPU model, socket/core/thread counts, NUMA CPU lists and flags; see ``parse_lscpu``.

    .. code:: python

        {"architecture": "x86_64", "model_name": "AMD EPYC 9374F 32-Core Processor",
         "cpus": 64, "sockets": 2, "cores_per_socket": 32, "threads_per_core": 1,
         "numa_nodes": {0: [0, 1, ..., 31], 1: [32, ..., 63]}, "flags": ["fpu", ...],
         "hypervisor_vendor": None, "virtualization_type": None}
    """

    default = dict

    @override
    def requires_command(self) -> str:
        return "lscpu"

    @override
    def command(self) -> str:
        return LSCPU_COMMAND

    @override
    def process(self, output: list[str]) -> CpuInfoDict:
        try:
            return parse_lscpu(output)
        except ValueError as error:  # fail this host with the reason, not the whole run
            raise FactProcessError(str(error)) from error


ONLINE_COMMAND = (
    "cat /sys/devices/system/cpu/online 2>/dev/null || echo; "
    "cat /sys/devices/system/node/online 2>/dev/null || echo"
)


def parse_online(lines: list[str]) -> dict[str, list[int]]:
    """The CPUs and NUMA nodes the kernel runs: line 1 CPUs, line 2 nodes (cpulists).

    >>> parse_online(["0-3", "0"])
    {'cpus': [0, 1, 2, 3], 'nodes': [0]}
    """
    cleaned = [clean_line(line).strip() for line in lines] + ["", ""]
    return {"cpus": parse_cpulist(cleaned[0]), "nodes": parse_cpulist(cleaned[1])}


class OnlineCpus(FactBase[dict[str, list[int]]]):
    """CPUs and NUMA nodes the kernel actually schedules on (sysfs), whatever a tool reports.

    Pinning must name only these: systemd refuses to start a unit whose CPUAffinity or
    NUMAMask names a CPU or node that is offline or absent.

    .. code:: python

        {"cpus": [0, 1, ..., 191], "nodes": [0, 1]}
    """

    default = dict

    @override
    def command(self) -> str:
        return ONLINE_COMMAND

    @override
    def process(self, output: list[str]) -> dict[str, list[int]]:
        return parse_online(output)
