"""Network check between node pairs (pure logic): pairing, parsing, verdicts, textfile metrics.

``pairs`` picks who measures whom; the parsers of the tools' output and ``textfile`` (the
node-exporter textfile the alert rule reads, ``deepseek_network_bandwidth_bytes_per_second
{peer,transport}``) live in the node package (``deepseek_node.netcheck``), which the
netcheck timer runs on the nodes: one implementation for the controller's run and the timer's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from deepseek_node.netcheck import (  # noqa: F401 (re-exported: the controller's run uses them)
    METRIC_BANDWIDTH,
    METRIC_OK,
    METRIC_TIMESTAMP,
    Measurement,
    Transport,
    parse_ib_write_bw,
    parse_iperf3,
    textfile,
)


def pairs(names: Sequence[str], mode: Literal["ring", "all"] = "ring") -> list[tuple[str, str]]:
    """(client, server) pairs: each node to the next (ring) or to every other node (all).

    >>> pairs(["a", "b", "c"])
    [('a', 'b'), ('b', 'c'), ('c', 'a')]
    >>> pairs(["a", "b"], "all")
    [('a', 'b'), ('b', 'a')]
    """
    ordered = sorted(set(names))
    if len(ordered) < 2:
        return []
    if mode == "all":
        return [(a, b) for a in ordered for b in ordered if a != b]
    return [(a, ordered[(i + 1) % len(ordered)]) for i, a in enumerate(ordered)]


def render_table(measurements: Iterable[Measurement], min_bytes_per_second: float) -> str:
    rows = [("client", "peer", "transport", "GB/s", "verdict")]
    for m in sorted(measurements, key=lambda m: (m.client, m.peer, m.transport)):
        rate = "-" if m.bytes_per_second is None else f"{m.bytes_per_second / 1e9:.2f}"
        rows.append((m.client, m.peer, m.transport, rate, m.verdict(min_bytes_per_second)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
