"""preflight: read-only checks of each host against the configured model and engine.

Reads the batched hardware fact, the filesystem under the weights path and, when later roles
assume them, the node's preconditions (an explicit ``serve_model_path`` holds a checkpoint,
the weights source answers: one more command, ``Preconditions``), compares them with the
requirements (deepseek_infra/preflight.py), prints the table, optionally writes a JSON
report on the controller, and stops a failing host (or the whole run) before any role
changes anything; the message ends with what to change. Runs unchanged with ``--dry``.

The host-RAM terms (deepseek_infra/host_memory.py) take the serve, weights and kernel roles'
settings: ``weights_encrypt`` (the decrypted tmpfs, sized from the release's manifest when the
controller has it), ``kernel_hugepages_*`` (the pool), ``serve_target_concurrency`` and the
engine's device (a CPU engine's weights and KV cache).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError

from deepseek_infra.catalog import get_model
from deepseek_infra.facts.host import prepared_hardware
from deepseek_infra.facts.preconditions import Preconditions, PreconditionsInfo
from deepseek_infra.facts.storage import PathSpace
from deepseek_infra.operations.node import preflight_gate
from deepseek_infra.preflight import PreflightReport, Requirements, evaluate, reports_to_json, url_endpoint
from deepseek_infra.runcache import run_cache
from deepseek_node.weights.plan import CURRENT_LINK, model_slug
from roles.tuning import tasks as tuning
from roles.tuning.defaults import TuningDefaults
from roles.deployment import DeploymentDefaults
from roles.kernel.defaults import KernelDefaults
from roles.preflight.defaults import PreflightDefaults
from roles.serve.defaults import ServeDefaults
from roles.serve.tasks import host_memory_inputs, manifest_tmpfs_bytes
from roles.settings import ROLE_FIELDS, hardware_references, replica_for, settings_for
from deepseek_infra.hardware_refs import reference_problems
from roles.weights.defaults import WeightsDefaults

_SOURCE_SETTING = {"http": "weights_mirror_url", "hf": "weights_hf_endpoint"}


def model_path_to_check(serve: ServeDefaults, weights: WeightsDefaults, deployment: DeploymentDefaults) -> str | None:
    """The explicit ``serve_model_path`` the engine will load, which must already hold a
    checkpoint; None when serving is off, the path is unset, or it is the release the weights
    role places in this very run (its ``current`` link or ``weights_revision``)."""
    path = serve.serve_model_path
    if path is None or not serve.serve_enabled:
        return None
    if weights.weights_source != "none" and weights.weights_action == "place":
        releases = f"{weights.weights_models_dir}/{model_slug(deployment.deepseek_model)}"
        if path.rstrip("/") in {f"{releases}/{CURRENT_LINK}", f"{releases}/{weights.weights_revision}"}:
            return None
    return path


def weights_endpoint_of(weights: WeightsDefaults) -> tuple[str, str] | None:
    """(setting, URL) the weights role downloads from on the node; None when it downloads nothing."""
    setting = _SOURCE_SETTING.get(weights.weights_source)
    url = getattr(weights, setting) if setting else None
    if not url or weights.weights_action != "place":
        return None
    return setting, url


def requirements_from(config: PreflightDefaults, deployment: DeploymentDefaults,
                      serve: ServeDefaults | None = None, weights: WeightsDefaults | None = None,
                      kernel: KernelDefaults | None = None, tmpfs_bytes: int | None = None) -> Requirements:
    """The requirements of this configuration; ``tmpfs_bytes``: ``tmpfs_size`` of the release's
    manifest when the controller has it (None: the catalog's checkpoint size)."""
    memory = host_memory_inputs(serve or ServeDefaults(), deployment, weights or WeightsDefaults(),
                                kernel or KernelDefaults(), tmpfs_bytes)
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
        target_concurrency=serve.serve_target_concurrency if serve else 1,
        host_memory=memory,
        model_path=model_path_to_check(serve, weights, deployment) if serve and weights else None,
        weights_endpoint=weights_endpoint_of(weights) if weights else None,
        release_path=(f"{weights.weights_models_dir}/{model_slug(deployment.deepseek_model)}/{weights.weights_revision}"
                      if weights and weights_endpoint_of(weights) else None),
    )


def failure_message(report: PreflightReport, whole_run: bool) -> str:
    """What failed, then what to change: "...; change: <fix>; <fix>"."""
    # An itemised check's detail is what to look up (which CPUs, each host-RAM term): it goes in too.
    reasons = "; ".join(f"{c.name}: needed {c.needed}, found {c.found}" + (f" [{c.detail}]" if c.itemised and c.detail else "")
                        for c in report.failures)
    if report.replica:
        reasons += f"; {report.replica} cannot serve without it"
    message = f"{report.host}: preflight failed ({reasons}); no host was changed" if whole_run else reasons
    return message + (f"; change: {'; '.join(report.fixes)}" if report.fixes else "")


def _preconditions(requirements: Requirements) -> PreconditionsInfo | None:
    # One command for everything later roles assume; none at all when nothing is assumed.
    endpoint = url_endpoint(requirements.weights_endpoint[1]) if requirements.weights_endpoint else None
    if not requirements.model_path and endpoint is None:
        return None
    return host.get_fact(Preconditions, model_path=requirements.model_path, release_path=requirements.release_path,
                         connect_host=endpoint[0] if endpoint else None, connect_port=endpoint[1] if endpoint else None)


def _write_report(config: PreflightDefaults, report: PreflightReport) -> None:
    # Every host's deploy adds its report; the file always holds all reports so far.
    reports: dict[str, PreflightReport] = run_cache(host.state, "preflight.reports")
    reports[host.name] = report
    if config.preflight_report:
        Path(config.preflight_report).write_text(reports_to_json(list(reports.values())))


@deploy("preflight: check")
def check(config: PreflightDefaults, deployment: DeploymentDefaults, tuning_config: TuningDefaults,
          serve: ServeDefaults, weights: WeightsDefaults) -> bool:
    """Evaluate this host; True when it may be changed. Stops the host or the run otherwise."""
    every_role = settings_for(host)  # hardware named by any role's settings (kernel, kvm, netcheck ...)
    requirements = requirements_from(config, deployment, serve, weights, every_role.kernel,
                                     manifest_tmpfs_bytes(weights, deployment.deepseek_model))
    hardware = prepared_hardware(host)
    references = reference_problems(hardware, hardware_references(*(getattr(every_role, name) for name in ROLE_FIELDS)))
    report = evaluate(
        host.name,
        hardware,
        host.get_fact(PathSpace, path=config.preflight_weights_path),
        get_model(deployment.deepseek_model),
        deployment.deepseek_engine,
        requirements,
        preconditions=_preconditions(requirements),
        hardware_references=references,
    )
    replica = replica_for(host)
    if replica is not None and len(replica.hosts) > 1:  # name the replica a failing host stops
        report = replace(report, replica=replica.describe())
    _write_report(config, report)
    logger.info(report.render_table())
    logger.info(tuning.pinning_summary(tuning_config, deployment))  # what the tuning role will write
    if report.passed:
        return True
    if config.preflight_on_failure == "run":
        raise DeployError(failure_message(report, whole_run=True))
    preflight_gate(name="Ensure the host passed preflight", failures=failure_message(report, whole_run=False))
    return False