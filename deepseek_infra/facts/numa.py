"""NUMA layout from ``numactl --hardware``: CPUs and memory per node, and the distance matrix.

``parse_numactl_hardware`` is pure so a batched fact can feed it the output of
``NUMACTL_HARDWARE_COMMAND``.
"""

from __future__ import annotations

import re
from typing import TypedDict

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError
from typing_extensions import override

from deepseek_infra.cpulist import parse_cpulist
from deepseek_infra.text import clean_line

NUMACTL_HARDWARE_COMMAND = "numactl --hardware"

_NODE_LINE = re.compile(r"^node (\d+) (cpus|size|free):\s*(.*?)\s*$")
_DISTANCE_ROW = re.compile(r"^\s*(\d+):((?:\s+\d+)+)\s*$")


class NumaNode(TypedDict):
    cpus: list[int]
    memory_mb: int | None
    free_mb: int | None


class NumaHardwareDict(TypedDict):
    nodes: dict[int, NumaNode]
    distances: dict[int, dict[int, int]]


def _megabytes(text: str) -> int | None:
    """Whole megabytes from "193129 MB"; None if the unit is missing."""
    match = re.match(r"^(\d+)\s*MB$", text)
    return int(match.group(1)) if match else None


def parse_numactl_hardware(lines: list[str]) -> NumaHardwareDict:
    """Parse ``numactl --hardware`` (``-H``).

    Memory-only nodes (CXL, Grace Hopper GPU memory) get an empty ``cpus`` list. The
    distance matrix is keyed by the node numbers in its header row, which need not be
    contiguous. "No NUMA available" output gives empty ``nodes`` and ``distances``.

    Sample return value::

        {"nodes": {0: {"cpus": [0, ..., 31], "memory_mb": 193129, "free_mb": 186031},
                   1: {"cpus": [32, ..., 63], "memory_mb": 193477, "free_mb": 186364}},
         "distances": {0: {0: 10, 1: 32}, 1: {0: 32, 1: 10}}}
    """
    nodes: dict[int, NumaNode] = {}
    distances: dict[int, dict[int, int]] = {}
    columns: list[int] = []
    for raw in lines:
        line = clean_line(raw)
        if match := _NODE_LINE.match(line):
            node = nodes.setdefault(
                int(match.group(1)), {"cpus": [], "memory_mb": None, "free_mb": None}
            )
            field, value = match.group(2), match.group(3)
            if field == "cpus":
                node["cpus"] = parse_cpulist(value)
            else:
                node["memory_mb" if field == "size" else "free_mb"] = _megabytes(value)
        elif line.startswith("node ") and not columns and re.fullmatch(r"node(\s+\d+)+\s*", line):
            columns = [int(number) for number in line.split()[1:]]
        elif columns and (match := _DISTANCE_ROW.match(line)):
            row = [int(number) for number in match.group(2).split()]
            if len(row) != len(columns):
                raise ValueError(
                    f"numactl: distance row {match.group(1)}: expected {len(columns)} values, "
                    f"found {len(row)}"
                )
            distances[int(match.group(1))] = dict(zip(columns, row))
    return {"nodes": dict(sorted(nodes.items())), "distances": distances}


class NumaHardware(FactBase[NumaHardwareDict]):
    """NUMA nodes with their CPUs and memory, and node distances; see ``parse_numactl_hardware``.

    .. code:: python

        {"nodes": {0: {"cpus": [0, 1, ..., 23], "memory_mb": 128295, "free_mb": 1724}},
         "distances": {0: {0: 10}}}
    """

    @override
    @staticmethod
    def default() -> NumaHardwareDict:
        return {"nodes": {}, "distances": {}}

    @override
    def requires_command(self) -> str:
        return "numactl"

    @override
    def command(self) -> str:
        return NUMACTL_HARDWARE_COMMAND

    @override
    def process(self, output: list[str]) -> NumaHardwareDict:
        try:
            return parse_numactl_hardware(output)
        except ValueError as error:  # fail this host with the reason, not the whole run
            raise FactProcessError(str(error)) from error
