"""Network check between node pairs (pure logic): pairing, parsing, verdicts, textfile metrics.

``pairs`` picks who measures whom, ``parse_iperf3`` / ``parse_ib_write_bw`` read the tools'
output, ``textfile`` writes the node-exporter textfile the alert rule reads
(``deepseek_network_bandwidth_bytes_per_second{peer,transport}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Transport = Literal["tcp", "rdma"]
METRIC_BANDWIDTH = "deepseek_network_bandwidth_bytes_per_second"
METRIC_TIMESTAMP = "deepseek_network_check_timestamp_seconds"
METRIC_OK = "deepseek_network_check_ok"


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


@dataclass(frozen=True, slots=True)
class Measurement:
    client: str
    peer: str
    transport: Transport
    bytes_per_second: float | None  # None: the measurement did not run
    error: str | None = None

    def verdict(self, min_bytes_per_second: float) -> str:
        if self.bytes_per_second is None:
            return f"error: {self.error}"
        ok = self.bytes_per_second >= min_bytes_per_second
        return "ok" if ok else f"below {min_bytes_per_second / 1e9:g} GB/s"


def parse_iperf3(client: str, peer: str, output: str) -> Measurement:
    """``iperf3 -c PEER -J`` output -> bytes/s the receiver got (all streams together)."""
    try:
        document = json.loads(output)
    except json.JSONDecodeError:
        return Measurement(client, peer, "tcp", None, f"iperf3 printed no JSON: {output.strip()[:200]!r}")
    if document.get("error"):
        return Measurement(client, peer, "tcp", None, str(document["error"]))
    received = document.get("end", {}).get("sum_received", {}).get("bits_per_second")
    if received is None:
        return Measurement(client, peer, "tcp", None, "iperf3 JSON has no end.sum_received")
    return Measurement(client, peer, "tcp", float(received) / 8)


# ib_write_bw result line: #bytes #iterations BW peak[MB/sec] BW average[MB/sec] MsgRate[Mpps]
_IB_LINE = re.compile(r"^\s*(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$")


def parse_ib_write_bw(client: str, peer: str, output: str) -> Measurement:
    """``ib_write_bw PEER`` client output -> average bytes/s of the largest message size.

    perftest reports MB/sec as 2^20 bytes unless ``--report_gbits``; the unit line is read.
    """
    rows = [m for m in (_IB_LINE.match(line) for line in output.splitlines()) if m]
    if not rows:
        tail = " ".join(output.strip().splitlines()[-2:])[:200]
        return Measurement(client, peer, "rdma", None, f"no ib_write_bw result line: {tail!r}")
    average = float(rows[-1].group(4))
    if "Gb/sec" in output:
        return Measurement(client, peer, "rdma", average * 1e9 / 8)
    return Measurement(client, peer, "rdma", average * 2**20)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def textfile(measurements: Iterable[Measurement], timestamp: float) -> str:
    """node-exporter textfile (Prometheus text format) of one node's measurements."""
    measurements = sorted(measurements, key=lambda m: (m.transport, m.peer))
    lines = [
        f"# HELP {METRIC_BANDWIDTH} Bandwidth measured to a peer by deploy/netcheck.py.",
        f"# TYPE {METRIC_BANDWIDTH} gauge",
    ]
    for m in measurements:
        if m.bytes_per_second is not None:
            lines.append(f'{METRIC_BANDWIDTH}{{peer="{_escape(m.peer)}",transport="{m.transport}"}} {m.bytes_per_second:.6g}')
    lines += [f"# HELP {METRIC_OK} 1 when the measurement to the peer ran.", f"# TYPE {METRIC_OK} gauge"]
    for m in measurements:
        lines.append(f'{METRIC_OK}{{peer="{_escape(m.peer)}",transport="{m.transport}"}} {int(m.bytes_per_second is not None)}')
    lines += [f"# HELP {METRIC_TIMESTAMP} When deploy/netcheck.py last measured the peer.",
              f"# TYPE {METRIC_TIMESTAMP} gauge"]
    for m in measurements:
        lines.append(f'{METRIC_TIMESTAMP}{{peer="{_escape(m.peer)}",transport="{m.transport}"}} {timestamp:.0f}')
    return "\n".join(lines) + "\n"


def render_table(measurements: Iterable[Measurement], min_bytes_per_second: float) -> str:
    rows = [("client", "peer", "transport", "GB/s", "verdict")]
    for m in sorted(measurements, key=lambda m: (m.client, m.peer, m.transport)):
        rate = "-" if m.bytes_per_second is None else f"{m.bytes_per_second / 1e9:.2f}"
        rows.append((m.client, m.peer, m.transport, rate, m.verdict(min_bytes_per_second)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
