"""acceptance: run the checks on the host, write /etc/deepseek/acceptance.json, fail on a failed check.

The commands run from a ``python.call`` (like the network check): each is thin, its output is
parsed by deepseek_infra/acceptance.py. A tool that is absent fails its check with the way to
get it, never a pass without a measurement.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import OperationError
from pyinfra.operations import apt, python

from deepseek_infra import acceptance as acc
from deepseek_infra import engine, nodewheel, remote
from deepseek_infra.facts.host import prepared_hardware
from deepseek_infra.facts.infiniband import parse_ibstat
from deepseek_infra.hardware import Hardware, IbPorts
from deepseek_infra.operations import venv
from deepseek_infra.replicas import Replica
from deepseek_node import paths
from deepseek_node.acceptance import RECORD_PATH, AcceptanceRecord, Verdict
from roles.acceptance.defaults import AcceptanceDefaults
from roles.settings import replica_for

TORCH_CHECKS = ("burnin", "replica_allreduce")
VENV = f"{paths.SOFTWARE_DIR}/acceptance/venv"  # the node wheel alone: its modules run on the engine's torch


@dataclass(frozen=True, slots=True)
class ReplicaPlace:
    """Where this host runs the cross-node all-reduce: its replica, rank and the head's address."""

    replica: Replica
    rank: int
    head_address: str | None
    nccl_env: dict[str, str]
    absent: tuple[str, ...] = ()  # hosts of the replica this run leaves out (--limit): nothing to measure with


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


def _torch_python(target, config: AcceptanceDefaults, name: str) -> tuple[str | None, Verdict | None]:
    """(the command prefix running a deepseek_node module on the engine's torch, or a failed verdict)."""
    python = config.acceptance_torch_python or f"{engine.VENV_DIR}/bin/python"
    if not remote.run(target, f"test -x {shlex.quote(python)}")[0]:
        return None, Verdict(name=name, passed=False, measured=None, threshold=None, unit="",
                             detail=f"no Python at {python}: deploy serve first (the engine's venv has PyTorch) "
                                    "or set acceptance_torch_python")
    site = f"$(echo {VENV}/lib/python3*/site-packages)"  # the node wheel's modules, the engine's torch
    return f'PYTHONPATH="{site}" {shlex.quote(python)}', None


def _json_line(output: str) -> dict:
    """The last JSON object line a node module printed ({"error": ...} when there is none)."""
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    return {"error": f"no result printed: {acc.output_tail(output)}"}


def _burnin(target, config: AcceptanceDefaults, gpus: int) -> list[Verdict]:
    prefix, missing = _torch_python(target, config, "burnin")
    if missing:
        return [missing]
    command = (f"{prefix} -m deepseek_node.burnin --device {config.acceptance_burnin_device} "
               f"--seconds {config.acceptance_burnin_seconds} --size-mib {config.acceptance_burnin_size_mib}")
    _, output = _run(target, command, config.acceptance_timeout_s)
    floors = acc.BurninFloors(config.acceptance_burnin_memory_fraction, config.acceptance_burnin_matmul_fraction,
                              config.acceptance_burnin_min_memory_gbps, config.acceptance_burnin_min_tflops)
    return acc.burnin_verdicts(_json_line(output), floors, gpus)


def _replica_allreduce(target, config: AcceptanceDefaults, place: ReplicaPlace, hardware: Hardware) -> list[Verdict]:
    replica = place.replica.describe()
    if config.acceptance_replica_network_gbps is not None:
        network, basis = config.acceptance_replica_network_gbps, "acceptance_replica_network_gbps"
    else:
        ports = hardware.ib_ports or hardware.ib_sysfs_ports
        network, basis = acc.replica_network_gbps(ports, dict(hardware.network), config.acceptance_replica_backend)
    threshold = None if network is None else round(network * config.acceptance_replica_busbw_fraction, 3)
    basis = f"{config.acceptance_replica_busbw_fraction:g} x {basis}" if network is not None else basis
    if not place.head_address:
        return [Verdict(name="replica_allreduce_busbw", passed=False, measured=None, threshold=threshold, unit="GB/s",
                        detail=f"{replica}: no head address (serve_cluster_address of {place.replica.head})")]
    prefix, missing = _torch_python(target, config, "replica_allreduce_busbw")
    if missing:
        return [missing]
    gpu = config.acceptance_replica_backend == "nccl"
    per_node = max(len(hardware.gpus), 1) if gpu else 1
    env = " ".join(f"{key}={shlex.quote(value)}" for key, value in sorted(place.nccl_env.items()))
    command = (f"OMP_NUM_THREADS=1 {env} {prefix} -m torch.distributed.run --nnodes {len(place.replica.hosts)} "
               f"--node-rank {place.rank} --nproc-per-node {per_node} --master-addr {shlex.quote(place.head_address)} "
               f"--master-port {config.acceptance_replica_port} -m deepseek_node.replica_allreduce "
               f"--backend {config.acceptance_replica_backend} --min-bytes {config.acceptance_allreduce_min_bytes} "
               f"--max-bytes {config.acceptance_replica_max_bytes} --timeout-s {min(config.acceptance_timeout_s, 600)}")
    _, output = _run(target, command, min(config.acceptance_timeout_s, 900))  # bounds torchrun's rendezvous too
    return [acc.replica_allreduce_verdict(_json_line(output), threshold, basis, replica)]


def _measure(state, host, config: AcceptanceDefaults, fabric: acc.Fabric, hardware: Hardware,
             place: ReplicaPlace | None) -> None:
    verdicts: list[Verdict] = []
    if "dcgm" in config.acceptance_checks:
        verdicts.append(_dcgm(host, config))
    if "allreduce" in config.acceptance_checks:
        verdicts.append(_allreduce(host, config, fabric))
    if "ib_write_bw" in config.acceptance_checks:
        verdicts += _ib(host, config)
    if "burnin" in config.acceptance_checks:
        verdicts += _burnin(host, config, len(hardware.gpus))
    not_run: dict[str, str] = {}
    if "replica_allreduce" in config.acceptance_checks and place is not None:
        if place.absent:  # torchrun would wait for them: say so instead
            not_run["replica_allreduce"] = (f"{place.replica.describe()}: {', '.join(place.absent)} not in this run; "
                                            "run acceptance on every host of the replica together")
            logger.warning(f"{host.name}: acceptance: replica_allreduce not measured: {not_run['replica_allreduce']}")
        else:
            verdicts += _replica_allreduce(host, config, place, hardware)
    record = AcceptanceRecord(
        host=host.name, checked_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), verdicts=tuple(verdicts),
        basis={"fabric": fabric.kind, "gpus": fabric.gpus, "nominal_busbw_gbps": fabric.nominal_gbps,
               "basis": fabric.basis, "checks": list(config.acceptance_checks), **({"not_run": not_run} if not_run else {})},
    )
    path = RECORD_PATH  # the gateway's /health reads it there
    remote.put(host, StringIO(record.to_json()), f"{path}.tmp")
    remote.run(host, f"chmod 0644 {shlex.quote(path)}.tmp && mv {shlex.quote(path)}.tmp {shlex.quote(path)}")
    logger.info(f"{host.name}: acceptance ({fabric.basis}):\n" + acc.render_table(verdicts))
    if not record.passed:
        raise OperationError(f"{host.name}: acceptance failed, node not admitted: {record.failure_message()} "
                             f"(record: {path})")


def replica_place(head_address: str | None, nccl_env: dict[str, str]) -> ReplicaPlace | None:
    """This host's place in a multi-node replica; None when it serves alone (nothing to cross)."""
    replica = replica_for(host)
    if replica is None or len(replica.hosts) < 2:
        return None
    head = host.inventory.get_host(replica.head)
    absent = tuple(name for name in replica.hosts if not host.state.is_host_in_limit(host.inventory.get_host(name)))
    return ReplicaPlace(replica, replica.rank(host.name), head_address or head.data.get("serve_cluster_address"),
                        {k: v for k, v in nccl_env.items() if k.startswith(("NCCL_", "GLOO_", "UCX_"))}, absent)


@deploy("acceptance: check")
def check(config: AcceptanceDefaults, place: ReplicaPlace | None = None) -> None:
    """Measure this host, record every verdict, fail the host when a check fails.

    + place: this host's replica (``replica_place``) for the all-reduce across its nodes
    """
    hardware = prepared_hardware(host)
    fabric = acc.fabric_of([gpu.name for gpu in hardware.gpus], [gpu.links for gpu in hardware.topology.gpus],
                           hardware.has_nvswitch, config.acceptance_pcie_nominal_gbps)
    if "ib_write_bw" in config.acceptance_checks:  # a node without an HCA lists no port: no pair, no verdict
        apt.packages(name="Ensure perftest (ib_write_bw) and infiniband-diags (ibstat) are installed",
                     packages=["perftest", "infiniband-diags"], no_recommends=True)
    if set(TORCH_CHECKS) & set(config.acceptance_checks):
        venv.pinned_venv(
            name=f"Ensure {VENV} holds the node wheel (burn-in and all-reduce modules, run on the engine's torch)",
            path=VENV, requirements=[nodewheel.load_project().requirement()], wheelhouse=venv.dist_dir(VENV),
            wheels=[nodewheel.wheel_for_run(host.state)],  # --no-index: the wheel only
        )
    python.call(name=f"Run the acceptance checks ({', '.join(config.acceptance_checks)}) and write "
                     f"{RECORD_PATH}",
                function=_measure, config=config, fabric=fabric, hardware=hardware, place=place)
