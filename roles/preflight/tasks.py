"""preflight: read-only checks of each host against the configured model and engine.

Reads the batched hardware fact and the filesystem under the weights path, compares them
with the requirements (deepseek_infra/preflight.py), prints the table, optionally writes a JSON
report on the controller, and stops a failing host (or the whole run) before any role
changes anything. Runs unchanged with ``--dry``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError

from deepseek_infra.catalog import get_model
from deepseek_infra.facts.host import prepared_hardware
from deepseek_infra.facts.storage import PathSpace
from deepseek_infra.operations.node import preflight_gate
from deepseek_infra.preflight import PreflightReport, Requirements, evaluate, reports_to_json
from deepseek_infra.runcache import run_cache
from roles.tuning import tasks as tuning
from roles.tuning.defaults import TuningDefaults
from roles.deployment import DeploymentDefaults
from roles.preflight.defaults import PreflightDefaults
from roles.settings import replica_for


def requirements_from(config: PreflightDefaults, deployment: DeploymentDefaults) -> Requirements:
    return Requirements(
        min_gpu_memory_gib=config.preflight_min_gpu_memory_gib,
        min_compute_capability=config.preflight_min_compute_capability,
        min_cpu_cores=config.preflight_min_cpu_cores,
        min_memory_gib=config.preflight_min_memory_gib,
        kept_releases=config.preflight_kept_releases,
        min_network_gbps=config.preflight_min_network_gbps,
        min_ib_gbps_multinode=config.preflight_min_ib_gbps_multinode,
        nodes=deployment.deepseek_nodes,
        max_model_len=deployment.deepseek_max_model_len,
    )


def _write_report(config: PreflightDefaults, report: PreflightReport) -> None:
    # Every host's deploy adds its report; the file always holds all reports so far.
    reports: dict[str, PreflightReport] = run_cache(host.state, "preflight.reports")
    reports[host.name] = report
    if config.preflight_report:
        Path(config.preflight_report).write_text(reports_to_json(list(reports.values())))


@deploy("preflight: check")
def check(config: PreflightDefaults, deployment: DeploymentDefaults, tuning_config: TuningDefaults) -> bool:
    """Evaluate this host; True when it may be changed. Stops the host or the run otherwise."""
    report = evaluate(
        host.name,
        prepared_hardware(host),
        host.get_fact(PathSpace, path=config.preflight_weights_path),
        get_model(deployment.deepseek_model),
        deployment.deepseek_engine,
        requirements_from(config, deployment),
    )
    replica = replica_for(host)
    if replica is not None and len(replica.hosts) > 1:  # name the replica a failing host stops
        report = replace(report, replica=replica.describe())
    _write_report(config, report)
    logger.info(report.render_table())
    logger.info(tuning.pinning_summary(tuning_config, deployment))  # what the tuning role will write
    if report.passed:
        return True
    reasons = "; ".join(f"{c.name}: needed {c.needed}, found {c.found}" for c in report.failures)
    if report.replica:
        reasons += f"; {report.replica} cannot serve without it"
    if config.preflight_on_failure == "run":
        raise DeployError(f"{host.name}: preflight failed ({reasons}); no host was changed")
    preflight_gate(name="Ensure the host passed preflight", failures=reasons)
    return False