"""tuning: place the inference engine on its GPUs' NUMA node(s) and HCAs.

Plans with ``deepseek_infra.pinning.plan_pinning`` (inputs: ``roles.tuning.plan``) and writes a
systemd drop-in for the engine unit (CPUAffinity, NUMAPolicy/NUMAMask, NCCL variables),
plus a boot unit that pins the GPU-local HCAs' IRQs to housekeeping CPUs. The engine unit
itself comes from the engine role; a drop-in for a unit not installed yet is harmless.
Planning happens when the operation runs (``roles.tuning.operations``), so a driver the
same run installed already counts.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from deepseek_infra.facts.host import prepared_hardware
from roles.deployment import DeploymentDefaults
from roles.settings import hardware_references, refuse_missing_hardware
from roles.tuning import plan as planning
from roles.tuning.defaults import TuningDefaults
from roles.tuning.operations import (
    IRQ_CONF,
    IRQ_SCRIPT,
    IRQ_UNIT,
    IRQ_UNIT_FILE,
    RECORD_FILE,
    engine_placement,
    host_plan,
)

__all__ = ["IRQ_CONF", "IRQ_SCRIPT", "IRQ_UNIT", "IRQ_UNIT_FILE", "RECORD_FILE", "pinning_summary", "place"]


def pinning_summary(config: TuningDefaults, deployment: DeploymentDefaults) -> str:
    """The plan's ``explain()`` for this host as it is now (preflight prints it; read-only)."""
    plan, source, _, gpus_note, note, _, _ = host_plan(config, deployment)
    return f"{host.name}: " + planning.summary(plan, source, gpus_note, note)


@deploy("tuning: place the engine")
def place(config: TuningDefaults, deployment: DeploymentDefaults) -> None:
    if any(hardware_references(config).values()):  # GPU indices, NCCL interfaces: refused while preparing
        refuse_missing_hardware(host, prepared_hardware(host), config)
    engine_placement(
        name=f"Ensure {planning.ENGINE_UNIT} is pinned to its GPUs' NUMA node(s) and HCAs",
        config=config, deployment=deployment,
    )