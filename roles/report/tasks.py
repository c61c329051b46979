"""report: the capacity and cost report of the serving hosts; reads facts, changes no host.

``replica_inputs`` groups the serving hosts into their replicas (roles/settings.py
``replica_for``), takes each host's GPUs from a hardware reading and each replica's serving
settings and prices from its head host; ``report_once`` does that for the run's hosts with
the hardware fact the preflight judges (``prepared_hardware``), prints the table and writes
the files once per run (the first host's deploy does it for all).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pyinfra import logger
from pyinfra.api.exceptions import DeployError

from deepseek_infra.cost_report import (
    CostReport, NodeGpus, ReplicaInput, build_report, render_table, write_report,
)
from deepseek_infra.facts.host import prepared_hardware
from deepseek_infra.monitoring import host_label
from deepseek_infra.runcache import run_cache
from roles.serve.tasks import uses_gpus
from roles.settings import replica_for, serving_hosts, settings_for

if TYPE_CHECKING:
    from pyinfra.api.host import Host
    from pyinfra.api.state import State

    from deepseek_infra.hardware import Hardware


def replica_units(state: State, hosts: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(replica name, all its hosts head first) for each replica with a host among ``hosts``
    (serving hosts only), in the order of their first host in the inventory."""
    wanted = set(hosts)
    units: dict[str, tuple[str, ...]] = {}
    for name in serving_hosts(state):
        if name not in wanted:
            continue
        replica = replica_for(state.inventory.get_host(name))
        key, members = (replica.name, replica.hosts) if replica else (name, (name,))
        units.setdefault(key, members)
    return list(units.items())


def replica_inputs(state: State, hosts: Sequence[str], read: Callable[[Host], Hardware]) -> list[ReplicaInput]:
    """One report input per replica of ``hosts``: every host of it read with ``read``, the
    serving settings (model, engine, context, concurrency) and prices of its head."""
    inputs = []
    for name, members in replica_units(state, hosts):
        head = state.inventory.get_host(members[0])
        settings = settings_for(head)
        engine = settings.deployment.deepseek_engine
        inputs.append(ReplicaInput(
            # host labels (gpu-a01, not @ssh/gpu-a01), as on the dashboards and alerts
            name=host_label(name), model=settings.deployment.deepseek_model, engine=engine,
            nodes=tuple(NodeGpus.from_hardware(host_label(member), read(state.inventory.get_host(member)))
                        for member in members),
            costs=settings.report.costs(), max_model_len=settings.deployment.deepseek_max_model_len,
            gpu_memory_utilization=settings.serve.serve_gpu_memory_utilization,
            concurrency=settings.serve.serve_target_concurrency, use_gpus=uses_gpus(settings.serve, engine),
        ))
    return inputs


def fleet_report(state: State, hosts: Sequence[str], read: Callable[[Host], Hardware], writer: Host) -> CostReport:
    """The report of ``hosts``' replicas, in the currency and horizon of ``writer``'s settings;
    DeployError when the replicas' heads price in different currencies."""
    config = settings_for(writer).report
    units = replica_units(state, hosts)
    if not units:
        raise DeployError(f"report: no serving host among {', '.join(hosts) or 'the run'} (group gpu_nodes)")
    currencies = {members[0]: settings_for(state.inventory.get_host(members[0])).report.report_currency
                  for _, members in units}
    if len(set(currencies.values()) | {config.report_currency}) > 1:
        found = ", ".join(f"{host} {currency}" for host, currency in currencies.items())
        raise DeployError(f"report_currency: the replicas' head hosts price in different currencies ({found}); "
                          "nothing is converted: set one report_currency for the fleet")
    return build_report(replica_inputs(state, hosts, read), currency=config.report_currency,
                        months=config.report_months)


def report_once(target: Host) -> CostReport | None:
    """On the run's first host: the report of every activated serving host, printed and, with
    ``report_output_dir``, written (report.txt, report.json, report.html); None on the others."""
    done = run_cache(target.state, "report.written")
    if done:
        return None
    done[target.name] = True
    hosts = [member.name for member in target.state.inventory.iter_activated_hosts()]
    report = fleet_report(target.state, hosts, prepared_hardware, target)
    logger.info(render_table(report))
    config = settings_for(target).report
    if config.report_output_dir:
        written = write_report(report, Path(config.report_output_dir))
        logger.info(f"report: wrote {', '.join(str(path) for path in written.values())}; no host changed")
    return report
