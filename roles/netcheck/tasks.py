"""netcheck: measure bandwidth between node pairs and export it for the alert rule.

iperf3 over TCP between every pair (ring or all, data), and ib_write_bw over InfiniBand
where both ends have an RDMA device (skipped with a warning otherwise). Each client writes
its results as node-exporter textfile metrics (deepseek_network_bandwidth_bytes_per_second
{peer,transport}); the controller prints one table per client against the threshold
monitoring_network_min_bytes_per_s and can write a JSON report of every pair. This is a
measurement, not state: every run measures again.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import asdict
from io import StringIO
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, python, server

from deepseek_infra import remote
from deepseek_infra.monitoring import host_label
from deepseek_infra.runcache import cached, run_cache
from deepseek_infra.netcheck import (
    Measurement,
    pairs,
    parse_ib_write_bw,
    parse_iperf3,
    render_table,
    textfile,
)
from roles.exporters.defaults import ExportersDefaults
from roles.monitoring.defaults import MonitoringDefaults
from deepseek_infra.facts.host import prepared_hardware
from roles.netcheck.defaults import NetcheckDefaults
from roles.settings import refuse_missing_hardware

SERVER_UNIT = "deepseek-netcheck-iperf3"
IB_UNIT = "deepseek-netcheck-ib-write-bw"
TEXTFILE = "deepseek-netcheck.prom"
IB_DEVICES = "ls /sys/class/infiniband 2>/dev/null || true"


def _address(member, exporters: ExportersDefaults) -> str:
    return exporters.exporters_scrape_address or member.data.get("ssh_hostname") or host_label(member.name)


def _run(target, command: str) -> tuple[bool, str]:
    ok, output = remote.run(target, command)  # with the host's sudo settings, as an operation would
    return ok, output.stdout


def _ib_device(target, configured: str | None) -> str | None:
    _, listing = _run(target, IB_DEVICES)
    devices = listing.split()
    if configured:
        return configured if configured in devices else None
    return devices[0] if devices else None


def _measure(state, host, peers, config: NetcheckDefaults, min_bps: float, textfile_dir: str) -> None:
    client = host_label(host.name)
    results: list[Measurement] = []
    for peer_name, peer_host, address in peers:
        command = (f"iperf3 -c {shlex.quote(address)} -p {config.netcheck_port} -t {config.netcheck_duration_s} "
                   f"-P {config.netcheck_streams} -J")
        _, output = _run(host, command)
        results.append(parse_iperf3(client, peer_name, output))
        if not config.netcheck_ib:
            continue
        mine, theirs = _ib_device(host, config.netcheck_ib_device), _ib_device(peer_host, config.netcheck_ib_device)
        if not (mine and theirs):
            logger.warning(f"{host.name}: netcheck: RDMA to {peer_name} skipped: no InfiniBand device "
                           f"({'here' if not mine else 'on ' + peer_name} under /sys/class/infiniband)")
            continue
        _run(peer_host, f"systemctl stop {IB_UNIT} 2>/dev/null; systemctl reset-failed {IB_UNIT} 2>/dev/null; "
                        f"systemd-run --unit {IB_UNIT} --property RuntimeMaxSec=120 "
                        f"ib_write_bw -d {shlex.quote(theirs)} --report_gbits -D 5 && sleep 1")
        _, output = _run(host, f"ib_write_bw -d {shlex.quote(mine)} --report_gbits -D 5 {shlex.quote(address)} 2>&1")
        results.append(parse_ib_write_bw(client, peer_name, output))
    metrics = textfile(results, time.time())
    remote.put(host, StringIO(metrics), f"{textfile_dir}/{TEXTFILE}.tmp")
    # node-exporter runs unprivileged: the file must be world-readable before it appears
    _run(host, f"chmod 0644 {textfile_dir}/{TEXTFILE}.tmp && mv {textfile_dir}/{TEXTFILE}.tmp {textfile_dir}/{TEXTFILE}")
    logger.info(f"{host.name}: netcheck (threshold {min_bps / 1e9:g} GB/s):\n" + render_table(results, min_bps))
    report: list[dict] = cached(run_cache(state, "netcheck.report"), "measurements", list)
    report.extend(asdict(m) | {"threshold_bytes_per_second": min_bps, "verdict": m.verdict(min_bps)} for m in results)
    if config.netcheck_report:
        Path(config.netcheck_report).write_text(json.dumps(report, indent=2) + "\n")


@deploy("netcheck: measure")
def check(config: NetcheckDefaults, monitoring: MonitoringDefaults, exporters: ExportersDefaults,
          members: dict[str, tuple[object, str]]) -> None:
    """Measure from this host to its peers; ``members``: host label -> (inventory host, address)."""
    me = host_label(host.name)
    peers = [(server_name, members[server_name][0], members[server_name][1])
             for client, server_name in pairs(list(members), config.netcheck_mode) if client == me]
    if len(members) < 2:
        raise DeployError(f"{host.name}: netcheck needs at least 2 hosts in the run, found {len(members)}")
    if config.netcheck_ib and config.netcheck_ib_device:
        refuse_missing_hardware(host, prepared_hardware(host), config)
    apt.packages(
        name="Ensure iperf3 (and perftest for ib_write_bw) is installed",
        packages=["iperf3", *(["perftest"] if config.netcheck_ib and _has_ib() else [])],
        no_recommends=True,
    )
    files.directory(name=f"Ensure {exporters.exporters_textfile_dir} exists",
                    path=exporters.exporters_textfile_dir, mode="0755")
    server.shell(
        name=f"Start a temporary iperf3 server on port {config.netcheck_port}",
        commands=[(f"systemctl stop {SERVER_UNIT} 2>/dev/null; systemctl reset-failed {SERVER_UNIT} 2>/dev/null; "
                   f"systemd-run --unit {SERVER_UNIT} --property RuntimeMaxSec=900 "
                   f"iperf3 -s -p {config.netcheck_port} && sleep 1")],
    )
    python.call(
        name="Measure bandwidth to the peers (iperf3; ib_write_bw over InfiniBand)",
        function=_measure, peers=peers, config=config, min_bps=monitoring.monitoring_network_min_bytes_per_s,
        textfile_dir=exporters.exporters_textfile_dir, _serial=True,
    )
    server.shell(name="Stop the temporary iperf3 server",
                 commands=[f"systemctl stop {SERVER_UNIT} 2>/dev/null || true"])


def _has_ib() -> bool:
    return bool((host.get_fact(Command, command=IB_DEVICES) or "").strip())