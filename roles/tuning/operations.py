"""The tuning role's operation: plan from the topology the host presents *when it runs*.

Planning inside the operation (not while the deploy is prepared) means a driver installed
earlier in the same run already counts: its ``nvidia-smi topo -m`` replaces the sysfs
view, so the first run writes the final plan and a second run changes nothing.
"""

from __future__ import annotations

import json
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import StringCommand, operation
from pyinfra.operations import files, systemd

from deepseek_node import paths
from deepseek_infra.cpulist import format_cpulist
from deepseek_infra.facts import host as host_facts
from deepseek_infra.facts.host import remembered_fact
from roles import template_path
from roles.deployment import DeploymentDefaults
from roles.tuning import plan as planning
from roles.tuning.defaults import TuningDefaults
from roles.tuning.facts import PciLocality

RECORD_FILE = f"{paths.CONFIG_DIR}/pinning.json"  # the plan applied (operators and verify read it)
IRQ_CONF = f"{paths.CONFIG_DIR}/hca-irq-affinity.conf"
IRQ_SCRIPT = f"{paths.SOFTWARE_DIR}/bin/deepseek-hca-irq-affinity"
IRQ_UNIT = "deepseek-hca-irq-affinity.service"
IRQ_UNIT_FILE = f"/etc/systemd/system/{IRQ_UNIT}"
IRQ_WANTS_LINK = f"/etc/systemd/system/multi-user.target.wants/{IRQ_UNIT}"
IRQBALANCE_CONFIG = "/etc/default/irqbalance"


def host_plan(config: TuningDefaults, deployment: DeploymentDefaults):
    """``(plan or None, source, topology, gpus note, note, hardware, locality)`` from the
    host's facts now (read before the operation yields anything: see ``remembered_fact``)."""
    hardware = host_facts.hardware(host)
    locality = remembered_fact(host, PciLocality)
    indices, gpus_note = planning.engine_gpus(
        hardware, deployment.deepseek_model, deployment.deepseek_engine, deployment.deepseek_nodes,
        deployment.deepseek_max_model_len, config.tuning_gpu_indices,
    )
    plan, source, topology, note = planning.choose_plan(
        hardware, locality, indices, config.tuning_housekeeping_cpus_per_node,
    )
    return plan, source, topology, gpus_note, note, hardware, locality


def _tracked(commands, changed: list[bool]):
    for command in commands:
        changed.append(True)
        yield command


@operation()
def engine_placement(config: TuningDefaults, deployment: DeploymentDefaults):
    """
    Pin the engine unit to its GPUs' NUMA node(s) and HCAs; pin those HCAs' IRQs at boot.

    + config: the tuning role's variables
    + deployment: model and engine (the serving plan picks the GPUs)

    Writes the ``deepseek-engine.service`` drop-in, the HCA IRQ config, script and unit,
    and ``/etc/deepseek/pinning.json``; reloads systemd only when a unit file changed. A
    host whose GPU locality is unknown gets only the record, saying why.
    """
    plan, source, topology, gpus_note, note, hardware, locality = host_plan(config, deployment)
    logger.info(f"{host.name}: " + planning.summary(plan, source, gpus_note, note))
    if plan is None:
        logger.warning(f"{host.name}: tuning: {note}")
        record = {"planned": False, "source": source, "reason": note}
        yield from files.put._inner(src=StringIO(json.dumps(record, indent=2) + "\n"), dest=RECORD_FILE, mode="0644")
        return
    container = hardware.virtualization.container
    env = planning.engine_environment(plan, config.tuning_nccl_env)
    units: list[bool] = []
    dropin = planning.render_dropin(plan, source, env, hardware.online)
    for unit in planning.pinned_units(deployment.deepseek_engine, deployment.deepseek_nodes):
        yield from files.directory._inner(path=f"/etc/systemd/system/{unit}.d", mode="0755")
        yield from _tracked(files.put._inner(src=StringIO(dropin), dest=planning.dropin_path(unit), mode="0644"), units)
    if reason := planning.unschedulable(plan, hardware.online):
        logger.warning(f"{host.name}: tuning: {reason}")
    irq_cpus = planning.hca_irq_cpus(plan, topology, hardware.numa) if config.tuning_hca_irq_affinity else {}
    irq: list[bool] = []
    if irq_cpus:
        yield from _tracked(files.put._inner(src=StringIO(planning.render_irq_conf(irq_cpus)), dest=IRQ_CONF, mode="0644"), irq)
        yield from files.directory._inner(path=f"{paths.SOFTWARE_DIR}/bin", mode="0755")
        yield from _tracked(files.template._inner(
            src=template_path("roles.tuning", IRQ_SCRIPT), dest=IRQ_SCRIPT, mode="0755", conf=IRQ_CONF), irq)
        yield from _tracked(files.template._inner(
            src=template_path("roles.tuning", IRQ_UNIT_FILE), dest=IRQ_UNIT_FILE, mode="0644",
            script=IRQ_SCRIPT, conf=IRQ_CONF), units)
        if locality["irqbalance_config"]:  # read before the yields above, none of which touch it
            yield from files.line._inner(
                path=IRQBALANCE_CONFIG, line="^#?IRQBALANCE_BANNED_CPULIST=.*",
                replace=f"IRQBALANCE_BANNED_CPULIST={plan.cpu_affinity}",
            )
    else:
        for path in (IRQ_CONF, IRQ_SCRIPT, IRQ_WANTS_LINK, IRQ_UNIT_FILE):
            yield from _tracked(files.file._inner(path=path, present=False), units)
    if units:
        yield StringCommand("systemctl", "daemon-reload")
    if irq_cpus:
        if container:
            logger.warning(f"{host.name}: {container} container: HCA IRQ affinity written for boot, not applied")
        yield from systemd.service._inner(
            service=IRQ_UNIT, enabled=True, running=None if container else True,
            restarted=bool(irq or units) and not container,
        )
    record = {
        "planned": True, "source": source, "gpus_reason": gpus_note, "gpus": list(plan.gpus),
        "numa_nodes": list(plan.numa_nodes), "cpu_affinity": plan.cpu_affinity,
        "housekeeping_cpus": format_cpulist(plan.housekeeping_cpus), "numa_policy": plan.numa_policy,
        "numa_mask": plan.numa_mask, "environment": env, "hca_irq_cpus": irq_cpus,
        "housekeeping_cpus_per_node": config.tuning_housekeeping_cpus_per_node, "warnings": list(plan.warnings),
        # Each rank's place, which the serve role hands to an engine that binds per rank
        # (its /etc/deepseek/engine.json says whether it did); empty: unit-wide only.
        "rank_numa_nodes": list(plan.rank_numa_nodes), "rank_cpus": list(plan.rank_cpus),
        "per_rank_placement": config.tuning_per_rank_placement,
    }
    yield from files.put._inner(
        src=StringIO(json.dumps(record, indent=2, sort_keys=True) + "\n"), dest=RECORD_FILE, mode="0644",
    )
