"""Memory facts: ``/proc/meminfo`` and hugepage pools (global and per NUMA node)."""

from __future__ import annotations

import re
from typing import TypedDict

from pyinfra.api import FactBase
from typing_extensions import override

MEMINFO_COMMAND = "cat /proc/meminfo"

# Globs stay literal when a directory is absent (no hugetlbfs, no NUMA sysfs); grep then
# complains on stderr and the fact simply reports fewer entries.
_HUGEPAGE_FILES = (
    "/sys/kernel/mm/hugepages/hugepages-*/nr_hugepages",
    "/sys/kernel/mm/hugepages/hugepages-*/free_hugepages",
    "/sys/devices/system/node/node*/hugepages/hugepages-*/nr_hugepages",
)
HUGEPAGES_COMMAND = f"grep -H . {' '.join(_HUGEPAGE_FILES)} 2>/dev/null || true"

_MEMINFO_LINE = re.compile(r"^([^:\s]+):\s+(\d+)(?:\s+kB)?\s*$")
_HUGEPAGE_PATH = re.compile(
    r"^/sys/(?:kernel/mm|devices/system/node/node(?P<node>\d+))"
    r"/hugepages/hugepages-(?P<size>\d+)kB/(?P<counter>nr|free)_hugepages$"
)


def parse_meminfo(lines: list[str]) -> dict[str, int | None]:
    """Parse ``/proc/meminfo`` (full, or a ``grep -i huge`` subset) into ints.

    Every meminfo key is kept under its own name, in kB, except the ``HugePages_*``
    counters which are page counts. Convenience keys are always present and are
    ``None`` when their source line is missing:

    >>> info = parse_meminfo(["MemTotal:  49158852 kB", "HugePages_Total:  16"])
    >>> info["MemTotal"], info["mem_total_mb"], info["hugepages_total"], info["hugepages_free"]
    (49158852, 48006, 16, None)
    """
    values: dict[str, int | None] = {}
    for line in lines:
        match = _MEMINFO_LINE.match(line.strip())
        if match:
            values[match.group(1)] = int(match.group(2))
    mem_total_kb = values.get("MemTotal")
    values["mem_total_mb"] = None if mem_total_kb is None else mem_total_kb // 1024
    values["hugepages_total"] = values.get("HugePages_Total")
    values["hugepages_free"] = values.get("HugePages_Free")
    values["hugepage_size_kb"] = values.get("Hugepagesize")
    return values


class HugepagePool(TypedDict):
    total: int
    free: int


class HugepagesInfo(TypedDict):
    sizes_kb: dict[int, HugepagePool]
    per_node: dict[int, dict[int, int]]


def empty_hugepages() -> HugepagesInfo:
    return {"sizes_kb": {}, "per_node": {}}


def parse_hugepages_sysfs(lines: list[str]) -> HugepagesInfo:
    """Parse ``grep -H . <hugepage sysfs files>`` output ("path:value" lines).

    >>> parse_hugepages_sysfs([
    ...     "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages:512",
    ...     "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages:500",
    ...     "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages:512",
    ... ])
    {'sizes_kb': {2048: {'total': 512, 'free': 500}}, 'per_node': {0: {2048: 512}}}
    """
    info = empty_hugepages()
    for line in lines:
        path, _, value = line.strip().partition(":")
        match = _HUGEPAGE_PATH.match(path)
        if not match or not value.strip().isdigit():
            continue
        size_kb, count = int(match["size"]), int(value)
        if match["node"] is not None:
            info["per_node"].setdefault(int(match["node"]), {})[size_kb] = count
        else:
            pool = info["sizes_kb"].setdefault(size_kb, {"total": 0, "free": 0})
            pool["total" if match["counter"] == "nr" else "free"] = count
    return info


class Meminfo(FactBase[dict[str, int | None]]):
    """``/proc/meminfo`` as ints (kB, hugepage counters as counts) plus convenience keys.

    .. code:: python

        {"MemTotal": 264069988, "HugePages_Total": 10, "Hugepagesize": 1048576, ...,
         "mem_total_mb": 257880, "hugepages_total": 10, "hugepages_free": 10,
         "hugepage_size_kb": 1048576}
    """

    default = dict

    @override
    def command(self) -> str:
        return MEMINFO_COMMAND

    @override
    def process(self, output: list[str]) -> dict[str, int | None]:
        return parse_meminfo(output)


class Hugepages(FactBase[HugepagesInfo]):
    """Hugepage pools per page size, and configured pages per NUMA node.

    .. code:: python

        {"sizes_kb": {2048: {"total": 0, "free": 0}, 1048576: {"total": 16, "free": 15}},
         "per_node": {0: {2048: 0, 1048576: 8}, 1: {2048: 0, 1048576: 8}}}
    """

    default = staticmethod(empty_hugepages)

    @override
    def command(self) -> str:
        return HUGEPAGES_COMMAND

    @override
    def process(self, output: list[str]) -> HugepagesInfo:
        return parse_hugepages_sysfs(output)
