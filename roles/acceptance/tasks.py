"""acceptance: run the checks on the host, write /etc/deepseek/acceptance.json, fail on a failed check.

The commands run from a ``python.call`` (like the network check): each is thin, its output is
parsed by deepseek_infra/acceptance.py. A tool that is absent fails its check with the way to
get it, never a pass without a measurement.
"""

from __future__ import annotations

import shlex
from datetime import datetime, timezone
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import OperationError
from pyinfra.operations import apt, python

from deepseek_infra import acceptance as acc
from deepseek_infra import remote
from deepseek_infra.facts.host import prepared_hardware
from deepseek_infra.facts.infiniband import parse_ibstat
from deepseek_infra.hardware import IbPorts
from deepseek_node.acceptance import RECORD_PATH, AcceptanceRecord, Verdict
from roles.acceptance.defaults import AcceptanceDefaults


def _run(target, command: str, timeout_s: int) -> tuple[bool, str]:
    ok, output = remote.run(target, f"timeout {timeout_s} sh -c {shlex.quote(command)} 2>&1")
    return ok, output.stdout


def _present(target, path: str) -> bool:
    return remote.run(target, f"command -v {shlex.quote(path)} >/dev/null")[0]


def _dcgm(target, config: AcceptanceDefaults) -> Verdict:
    level = config.acceptance_dcgm_level
    if not _present(target, config.acceptance_dcgmi):
        return acc.missing_tool(f"dcgm_diag_r{level}", config.acceptance_dcgmi, 0, "failed tests",
                                "DCGM comes with the exporters role (exporters_dcgm_enabled)")
    ok, output = _run(target, f"{shlex.quote(config.acceptance_dcgmi)} diag -r {level}", config.acceptance_timeout_s)
    return acc.dcgm_verdict(level, output, ok)


def _allreduce(target, config: AcceptanceDefaults, fabric: acc.Fabric) -> Verdict:
    threshold = acc.allreduce_threshold(fabric, config.acceptance_nvlink_busbw_fraction,
                                        config.acceptance_pcie_busbw_fraction)
    if fabric.gpus < 2:
        return Verdict(name="allreduce_busbw", passed=True, measured=None, threshold=None, unit="GB/s",
                       detail=f"not measured: {fabric.gpus} GPU")
    if not _present(target, config.acceptance_all_reduce_perf):
        return acc.missing_tool("allreduce_busbw", config.acceptance_all_reduce_perf, threshold, "GB/s",
                                "build nccl-tests or ship it from the site mirror (acceptance_all_reduce_perf)")
    command = (f"{shlex.quote(config.acceptance_all_reduce_perf)} -b {config.acceptance_allreduce_min_bytes} "
               f"-e {config.acceptance_allreduce_max_bytes} -f 2 -g {fabric.gpus}")
    _, output = _run(target, command, config.acceptance_timeout_s)
    return acc.allreduce_verdict(output, threshold, fabric.basis)


def _ib(target, config: AcceptanceDefaults) -> list[Verdict]:
    _, listing = _run(target, "ibstat", 60)
    pairs = acc.hca_pairs(IbPorts.from_fact(parse_ibstat(listing.splitlines())))
    if not pairs:
        return []  # fewer than two active InfiniBand ports: nothing to pair (not a failure)
    if not _present(target, "ib_write_bw"):
        return [acc.missing_tool(pair.name, "ib_write_bw", pair.rate_gbps * config.acceptance_ib_fraction, "Gb/s",
                                 "install Debian's perftest") for pair in pairs]
    verdicts = []
    for pair in pairs:
        common = f"--report_gbits -D {config.acceptance_ib_duration_s} -p {config.acceptance_ib_port}"
        command = (f"ib_write_bw -d {shlex.quote(pair.server)} {common} >/dev/null 2>&1 & sleep 1; "
                   f"ib_write_bw -d {shlex.quote(pair.client)} {common} 127.0.0.1; rc=$?; wait; exit $rc")
        _, output = _run(target, command, config.acceptance_ib_duration_s + 60)
        verdicts.append(acc.ib_verdict(pair, output, config.acceptance_ib_fraction))
    return verdicts


def _measure(state, host, config: AcceptanceDefaults, fabric: acc.Fabric) -> None:
    verdicts: list[Verdict] = []
    if "dcgm" in config.acceptance_checks:
        verdicts.append(_dcgm(host, config))
    if "allreduce" in config.acceptance_checks:
        verdicts.append(_allreduce(host, config, fabric))
    if "ib_write_bw" in config.acceptance_checks:
        verdicts += _ib(host, config)
    record = AcceptanceRecord(
        host=host.name, checked_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), verdicts=tuple(verdicts),
        basis={"fabric": fabric.kind, "gpus": fabric.gpus, "nominal_busbw_gbps": fabric.nominal_gbps,
               "basis": fabric.basis, "checks": list(config.acceptance_checks)},
    )
    path = RECORD_PATH  # the gateway's /health reads it there
    remote.put(host, StringIO(record.to_json()), f"{path}.tmp")
    remote.run(host, f"chmod 0644 {shlex.quote(path)}.tmp && mv {shlex.quote(path)}.tmp {shlex.quote(path)}")
    logger.info(f"{host.name}: acceptance ({fabric.basis}):\n" + acc.render_table(verdicts))
    if not record.passed:
        raise OperationError(f"{host.name}: acceptance failed, node not admitted: {record.failure_message()} "
                             f"(record: {path})")


@deploy("acceptance: check")
def check(config: AcceptanceDefaults) -> None:
    """Measure this host, record every verdict, fail the host when a check fails."""
    hardware = prepared_hardware(host)
    fabric = acc.fabric_of([gpu.name for gpu in hardware.gpus], [gpu.links for gpu in hardware.topology.gpus],
                           hardware.has_nvswitch, config.acceptance_pcie_nominal_gbps)
    if "ib_write_bw" in config.acceptance_checks:  # a node without an HCA lists no port: no pair, no verdict
        apt.packages(name="Ensure perftest (ib_write_bw) and infiniband-diags (ibstat) are installed",
                     packages=["perftest", "infiniband-diags"], no_recommends=True)
    python.call(name=f"Run the acceptance checks ({', '.join(config.acceptance_checks)}) and write "
                     f"{RECORD_PATH}",
                function=_measure, config=config, fabric=fabric)
