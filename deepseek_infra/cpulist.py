"""Linux cpulist syntax ("0-47,96-143") to and from lists of CPU numbers.

Shared by every parser that reads CPU affinity (nvidia-smi topo, lscpu, numactl, sysfs)
and by the pinning planners that write it back (systemd CPUAffinity=, isolcpus=).
"""

from __future__ import annotations

from collections.abc import Iterable

_EMPTY = {"", "n/a", "[n/a]", "none", "-"}


def parse_cpulist(text: str) -> list[int]:
    """Expand a cpulist into sorted CPU numbers.

    Accepts commas or whitespace between items, ranges ``a-b`` and strided ranges
    ``a-b:step`` (kernel syntax). Empty or ``N/A``-like text gives ``[]``.

    >>> parse_cpulist("0-3,8,10-14:2")
    [0, 1, 2, 3, 8, 10, 12, 14]
    """
    text = text.strip()
    if text.lower() in _EMPTY:
        return []
    cpus: set[int] = set()
    for item in text.replace(" ", ",").split(","):
        item = item.strip()
        if not item:
            continue
        step = 1
        if ":" in item:
            item, step_text = item.split(":", 1)
            step = int(step_text)
        if "-" in item:
            first, last = (int(part) for part in item.split("-", 1))
            if last < first:
                raise ValueError(f"cpulist range {item!r} runs backwards")
            cpus.update(range(first, last + 1, step))
        else:
            cpus.add(int(item))
    return sorted(cpus)


def format_cpulist(cpus: Iterable[int]) -> str:
    """Compress CPU numbers into the shortest cpulist ("0-3,8").

    >>> format_cpulist([3, 0, 1, 2, 8])
    '0-3,8'
    """
    ordered = sorted(set(cpus))
    ranges: list[str] = []
    start = prev = None
    for cpu in ordered:
        if start is None:
            start = prev = cpu
        elif cpu == prev + 1:
            prev = cpu
        else:
            ranges.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = prev = cpu
    if start is not None:
        ranges.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ",".join(ranges)
