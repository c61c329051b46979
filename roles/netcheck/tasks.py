"""netcheck: measure bandwidth between node pairs and export it for the alert rule.

iperf3 over TCP between every pair (ring or all, data), and ib_write_bw over InfiniBand
where both ends have an RDMA device (skipped with a warning otherwise). Each client writes
its results as node-exporter textfile metrics (deepseek_network_bandwidth_bytes_per_second
{peer,transport}); the controller prints one table per client against the threshold
monitoring_network_min_bytes_per_s and can write a JSON report of every pair. The
measurement is not state: every run measures again.

With ``netcheck_timer`` (the default) the same measurement also runs on the nodes: each gets
a persistent iperf3 server (and a looping ib_write_bw server with InfiniBand), the node
package's ``deepseek-netcheck`` with its peers in /etc/deepseek/netcheck.json, and a timer
that runs it, so the figure the alert reads stays fresh between deploys.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import asdict
from io import StringIO
from pathlib import Path

import jinja2

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.files import File
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, python, server, systemd

from deepseek_infra import nodewheel, remote
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
from deepseek_infra.operations import sync, venv, weights as batch
from deepseek_node import paths
from deepseek_node.netcheck import Config as NodeConfig, Peer
from roles import template_path
from roles.exporters.defaults import ExportersDefaults
from roles.monitoring.defaults import MonitoringDefaults
from deepseek_infra.facts.host import prepared_hardware
from roles.netcheck.defaults import NetcheckDefaults
from roles.settings import refuse_missing_hardware

SERVER_UNIT = "deepseek-netcheck-iperf3"  # the run's temporary server (no timer)
IB_UNIT = "deepseek-netcheck-ib-write-bw"
TEXTFILE = "deepseek-netcheck.prom"
IB_DEVICES = "ls /sys/class/infiniband 2>/dev/null || true"
# The timer's units: persistent servers, the measuring service and its timer.
PERSISTENT_SERVER = "deepseek-netcheck-server.service"
RDMA_SERVER = "deepseek-netcheck-rdma-server.service"
TIMER_SERVICE, TIMER = "deepseek-netcheck.service", "deepseek-netcheck.timer"
TIMER_UNITS = (PERSISTENT_SERVER, RDMA_SERVER, TIMER_SERVICE, TIMER)
UNIT_DIR = "/etc/systemd/system"
VENV = f"{paths.SOFTWARE_DIR}/netcheck/venv"  # the node wheel alone (standard library)
TOOL = f"{VENV}/bin/deepseek-netcheck"
CONFIG_FILE = f"{paths.CONFIG_DIR}/netcheck.json"


def _address(member, exporters: ExportersDefaults) -> str:
    return exporters.exporters_scrape_address or member.data.get("ssh_hostname") or host_label(member.name)


def _run(target, command: str) -> tuple[bool, str]:
    ok, output = remote.run(target, command)  # with the host's sudo settings, as an operation would
    return ok, output.stdout


def pick_ib_device(listing: str, configured: str | None) -> str | None:
    """The RDMA device to use from an ``ls /sys/class/infiniband`` listing: the configured
    one if present, else the first; None without one."""
    devices = listing.split()
    if configured:
        return configured if configured in devices else None
    return devices[0] if devices else None


def _ib_device(target, configured: str | None) -> str | None:
    return pick_ib_device(_run(target, IB_DEVICES)[1], configured)


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
    if config.netcheck_timer:
        timer(config, node_config(config, monitoring, exporters, me, peers, ib_device=_ib_device_here(config)))
    else:
        _remove_timer()
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
    if not config.netcheck_timer:
        server.shell(name="Stop the temporary iperf3 server",
                     commands=[f"systemctl stop {SERVER_UNIT} 2>/dev/null || true"])


def node_config(config: NetcheckDefaults, monitoring: MonitoringDefaults, exporters: ExportersDefaults,
                client: str, peers, ib_device: str | None) -> NodeConfig:
    """/etc/deepseek/netcheck.json: what the node measures on its own, the run's pairs."""
    return NodeConfig(
        client=client, peers=tuple(Peer(name, address) for name, _, address in peers),
        textfile=f"{exporters.exporters_textfile_dir}/{TEXTFILE}", port=config.netcheck_port,
        duration_s=config.netcheck_duration_s, streams=config.netcheck_streams,
        rdma_device=ib_device if config.netcheck_ib else None, busy_retries=config.netcheck_busy_retries,
        threshold_bytes_per_second=monitoring.monitoring_network_min_bytes_per_s,
    )


def unit_files(config: NetcheckDefaults, node: NodeConfig) -> dict[str, bytes]:
    """The timer's unit files (name -> content); the RDMA server only where there is a device."""
    environment = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    # the longest a run can take: every peer measured after every busy retry, plus RDMA legs
    timeout_s = len(node.peers) * ((node.duration_s + 5) * (node.busy_retries + 1) * 2 + 30) + 60
    values = dict(port=node.port, rdma_device=node.rdma_device, tool=TOOL, config_file=CONFIG_FILE,
                  timeout_s=timeout_s, on_calendar=config.netcheck_timer, spread_s=config.netcheck_timer_spread_s)
    units = TIMER_UNITS if node.rdma_device else tuple(u for u in TIMER_UNITS if u != RDMA_SERVER)
    return {unit: environment.from_string(Path(template_path(__package__, f"{UNIT_DIR}/{unit}")).read_text())
            .render(**values).encode() for unit in units}


@deploy("netcheck: timer")
def timer(config: NetcheckDefaults, node: NodeConfig) -> None:
    apt.packages(name="Ensure python3-venv is installed (the network check's venv)", packages=["python3-venv"],
                 no_recommends=True)
    venv.pinned_venv(
        name=f"Ensure {VENV} holds the network check {Path(TOOL).name}", path=VENV,
        requirements=[nodewheel.load_project().requirement()], wheelhouse=venv.dist_dir(VENV),
        wheels=[nodewheel.wheel_for_run(host.state)],  # --no-index: the wheel only
    )
    sync.file_synced(name=f"Ensure {CONFIG_FILE} lists the peers to measure", src=StringIO(node.to_json()),
                     dest=CONFIG_FILE, mode="0644")
    units = unit_files(config, node)
    written = batch.files_batch(name="Ensure the network check's servers, service and timer are current",
                                directory=UNIT_DIR, files=units)
    server.shell(name=f"Check the timer's OnCalendar={config.netcheck_timer} (systemd-analyze)",
                 commands=[f"systemd-analyze calendar {shlex.quote(config.netcheck_timer or '')} >/dev/null"],
                 _if=written.did_change)
    servers = [PERSISTENT_SERVER, *([RDMA_SERVER] if RDMA_SERVER in units else [])]
    started = [systemd.service(name=f"Ensure {unit} is enabled and running", service=unit, enabled=True,
                               running=True, restarted=written.changed, daemon_reload=index == 0 and written.will_change)
               for index, unit in enumerate([*servers, TIMER])]
    if RDMA_SERVER not in units and host.get_fact(File, path=f"{UNIT_DIR}/{RDMA_SERVER}"):
        _remove([RDMA_SERVER])
    # a (re)started server answers before the first measurement (the controller's, in this run)
    server.shell(
        name=f"Wait for the iperf3 server on port {config.netcheck_port}",
        commands=[f"for i in $(seq 60); do (exec 3<>/dev/tcp/127.0.0.1/{config.netcheck_port}) 2>/dev/null && exit 0; "
                  f"sleep 0.5; done; echo 'iperf3 server not listening on {config.netcheck_port}' >&2; exit 1"],
        _shell_executable="bash", _if=lambda: any(op.did_change() for op in started),
    )


def _remove(units) -> None:
    server.shell(name=f"Remove {', '.join(units)}",
                 commands=[f"systemctl disable --now {' '.join(units)} 2>/dev/null || true",
                           f"rm -f {' '.join(f'{UNIT_DIR}/{u}' for u in units)}", "systemctl daemon-reload"])


def _remove_timer() -> None:
    """netcheck_timer turned off: the timer and its servers go (their port is the run's server's)."""
    present = [u for u in TIMER_UNITS if host.get_fact(File, path=f"{UNIT_DIR}/{u}")]
    if present:
        _remove(present)


def _ib_device_here(config: NetcheckDefaults) -> str | None:
    return pick_ib_device(host.get_fact(Command, command=IB_DEVICES) or "", config.netcheck_ib_device)


def _has_ib() -> bool:
    return bool((host.get_fact(Command, command=IB_DEVICES) or "").strip())