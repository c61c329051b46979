"""Network check, node side: measure the peers, write the textfile metric, on a timer.

    deepseek-netcheck --config /etc/deepseek/netcheck.json

The config (written by the netcheck role) names this node, its peers and the tools'
settings. Each peer is measured with ``iperf3 -c`` against the peer's persistent iperf3
server (``deepseek-netcheck-server.service``) and, where both ends have InfiniBand, with
``ib_write_bw`` against the peer's looping RDMA server (a peer whose RDMA server does not
answer on perftest's port is left out of the RDMA leg: it has no InfiniBand). The results go to node-exporter's
textfile collector (``deepseek_network_bandwidth_bytes_per_second{peer,transport}``, read by
the NetworkBandwidthLow alert) in one atomic rename. The controller's ``deploy/netcheck.py``
parses with the same functions (``deepseek_infra.netcheck`` re-exports them).

Standard library only; runs on the Python hosts ship (3.10+).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

Transport = Literal["tcp", "rdma"]
METRIC_BANDWIDTH = "deepseek_network_bandwidth_bytes_per_second"
METRIC_TIMESTAMP = "deepseek_network_check_timestamp_seconds"
METRIC_OK = "deepseek_network_check_ok"
BUSY = "the server is busy"  # iperf3's error while another client is measuring
PERFTEST_PORT = 18515  # ib_write_bw's out-of-band TCP port (its -p default)


@dataclass(frozen=True)
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


# perftest's table: "#bytes #iterations BW peak[UNIT] BW average[UNIT] MsgRate[Mpps]", UNIT
# Gb/sec with --report_gbits, else MB/sec (2^20 bytes); the unit is read from the header.
_IB_HEADER = re.compile(r"#bytes\s+#iterations\s+BW peak\[(\S+?)\]\s+BW average\[(\S+?)\]")
_IB_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)(?:\s+([\d.]+))?\s*$")


def ib_write_bw_gbps(output: str) -> float | None:
    """``ib_write_bw`` client output -> average Gb/s of the largest message size (None: no result row).
    The network check and the acceptance gate both read it."""
    unit = None
    rows = []
    for line in output.splitlines():
        header = _IB_HEADER.search(line)
        if header:
            unit = header.group(2)
            continue
        row = _IB_ROW.match(line)
        if row and unit:
            rows.append((int(row.group(1)), float(row.group(4))))
    if not rows:
        return None
    average = max(rows)[1]
    return average if unit == "Gb/sec" else average * 2**20 * 8 / 1e9  # MB/sec: 2^20 bytes


def parse_ib_write_bw(client: str, peer: str, output: str) -> Measurement:
    """``ib_write_bw PEER`` client output -> average bytes/s of the largest message size."""
    gbps = ib_write_bw_gbps(output)
    if gbps is None:
        tail = " ".join(output.strip().splitlines()[-2:])[:200]
        return Measurement(client, peer, "rdma", None, f"no ib_write_bw result line: {tail!r}")
    return Measurement(client, peer, "rdma", gbps * 1e9 / 8)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def textfile(measurements: Iterable[Measurement], timestamp: float) -> str:
    """node-exporter textfile (Prometheus text format) of one node's measurements."""
    measurements = sorted(measurements, key=lambda m: (m.transport, m.peer))
    lines = [
        f"# HELP {METRIC_BANDWIDTH} Bandwidth measured to a peer by the network check.",
        f"# TYPE {METRIC_BANDWIDTH} gauge",
    ]
    for m in measurements:
        if m.bytes_per_second is not None:
            lines.append(f'{METRIC_BANDWIDTH}{{peer="{_escape(m.peer)}",transport="{m.transport}"}} {m.bytes_per_second:.6g}')
    lines += [f"# HELP {METRIC_OK} 1 when the measurement to the peer ran.", f"# TYPE {METRIC_OK} gauge"]
    for m in measurements:
        lines.append(f'{METRIC_OK}{{peer="{_escape(m.peer)}",transport="{m.transport}"}} {int(m.bytes_per_second is not None)}')
    lines += [f"# HELP {METRIC_TIMESTAMP} When the network check last measured the peer.",
              f"# TYPE {METRIC_TIMESTAMP} gauge"]
    for m in measurements:
        lines.append(f'{METRIC_TIMESTAMP}{{peer="{_escape(m.peer)}",transport="{m.transport}"}} {timestamp:.0f}')
    return "\n".join(lines) + "\n"


# --- the timer's run --------------------------------------------------------------------------

@dataclass(frozen=True)
class Peer:
    name: str
    address: str


@dataclass(frozen=True)
class Config:
    """/etc/deepseek/netcheck.json, as the netcheck role writes it."""

    client: str
    peers: tuple[Peer, ...]
    textfile: str  # e.g. /var/lib/prometheus/node-exporter/deepseek-netcheck.prom
    port: int = 5201
    duration_s: int = 10
    streams: int = 4
    rdma_device: str | None = None  # this node's RDMA device; None: no RDMA leg
    busy_retries: int = 6  # another client on the peer's server: wait and try again
    threshold_bytes_per_second: float | None = None  # for the printed verdicts only

    @classmethod
    def from_json(cls, text: str) -> Config:
        data = json.loads(text)
        try:
            peers = tuple(Peer(**peer) for peer in data.pop("peers"))
            return cls(peers=peers, **data)
        except (KeyError, TypeError) as error:
            raise ValueError(f"netcheck config: {error}") from None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


Runner = Callable[[Sequence[str]], str]
Probe = Callable[[str], bool]


def rdma_server_answers(address: str, attempts: int = 3) -> bool:
    """Whether the peer's ib_write_bw server takes connections (it restarts between clients)."""
    for attempt in range(attempts):
        try:
            with socket.create_connection((address, PERFTEST_PORT), timeout=2):
                return True
        except OSError:
            if attempt + 1 < attempts:
                time.sleep(1)
    return False


def _run(argv: Sequence[str]) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=600)
    return result.stdout + (result.stderr if result.returncode else "")


def iperf3_argv(config: Config, peer: Peer) -> list[str]:
    return ["iperf3", "-c", peer.address, "-p", str(config.port), "-t", str(config.duration_s),
            "-P", str(config.streams), "-J"]


def rdma_argv(config: Config, peer: Peer) -> list[str]:
    return ["ib_write_bw", "-d", str(config.rdma_device), "--report_gbits", "-D", "5", peer.address]


def measure(config: Config, run: Runner = _run, sleep: Callable[[float], None] = time.sleep,
            rdma_peer: Probe = rdma_server_answers) -> list[Measurement]:
    """Every peer over TCP (retrying while its server is busy), and over RDMA where both ends can."""
    results = []
    for peer in config.peers:
        for attempt in range(config.busy_retries + 1):
            measured = parse_iperf3(config.client, peer.name, run(iperf3_argv(config, peer)))
            if measured.error is None or BUSY not in measured.error or attempt == config.busy_retries:
                break
            sleep(random.uniform(1, 1 + config.duration_s))
        results.append(measured)
        if config.rdma_device and rdma_peer(peer.address):
            results.append(parse_ib_write_bw(config.client, peer.name, run(rdma_argv(config, peer))))
    return results


def write_textfile(path: str, text: str) -> None:
    """Atomically: node-exporter never reads half a file. 0644: it runs unprivileged."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deepseek-netcheck", description="Measure this node's peers (iperf3, ib_write_bw).")
    parser.add_argument("--config", default="/etc/deepseek/netcheck.json")
    options = parser.parse_args(argv)
    try:
        with open(options.config, encoding="utf-8") as handle:
            config = Config.from_json(handle.read())
    except (OSError, ValueError) as error:
        print(f"deepseek-netcheck: {options.config}: {error}", file=sys.stderr)
        return 2
    results = measure(config)
    write_textfile(config.textfile, textfile(results, time.time()))
    for m in results:
        verdict = m.verdict(config.threshold_bytes_per_second) if config.threshold_bytes_per_second else None
        print(json.dumps({**asdict(m), "verdict": verdict}), flush=True)  # one journal line per pair
    failed = [m for m in results if m.bytes_per_second is None]
    return 1 if failed else 0  # a measurement that did not run fails the unit (NetworkCheckFailed too)


if __name__ == "__main__":
    sys.exit(main())
