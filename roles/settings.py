"""One place where inventory data meets the roles' defaults.

``settings_for(host)`` is the first call of every deploy file. On its first call in a
run it validates EVERY host of the inventory against every role's variables, so a bad
entry anywhere stops the run while pyinfra is still preparing operations, before any
command changes any host.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_type_hints

from pyinfra.api.exceptions import DeployError

from deepseek_infra.config import (
    HostDataError, RoleDefaults, pyinfra_data_keys, pyinfra_global_arguments, validate_host_data,
)
from deepseek_infra.hardware_refs import REFERENCE_KEYS, reference_problems
from deepseek_infra.replicas import Replica, ReplicaError, ReplicaMember, plan_replicas
from deepseek_infra.runcache import cached, run_cache
from roles.acceptance.defaults import AcceptanceDefaults
from roles.base.defaults import BaseDefaults
from roles.cuda.defaults import CudaDefaults
from roles.deployment import DeploymentDefaults
from roles.docker.defaults import DockerDefaults
from roles.exporters.defaults import ExportersDefaults
from roles.filebeat.defaults import FilebeatDefaults
from roles.gateway.defaults import GatewayDefaults
from roles.infiniband.defaults import InfinibandDefaults
from roles.kernel.defaults import KernelDefaults
from roles.kvm.defaults import KvmDefaults
from roles.monitoring.defaults import MonitoringDefaults
from roles.netcheck.defaults import NetcheckDefaults
from roles.nvidia_driver.defaults import NvidiaDriverDefaults
from roles.nvidia_repo.defaults import NvidiaRepoDefaults
from roles.preflight.defaults import PreflightDefaults
from roles.weights.defaults import WeightsDefaults
from roles.reboot.defaults import RebootDefaults
from roles.report.defaults import ReportDefaults
from roles.serve.defaults import ServeDefaults
from roles.tuning.defaults import TuningDefaults

#: The hosts that serve (GPUs, engine, gateway); without this group, every host of the inventory.
SERVING_GROUP = "gpu_nodes"

if TYPE_CHECKING:
    from pyinfra.api.host import Host
    from pyinfra.api.state import State

    from deepseek_infra.hardware import Hardware

@dataclass(frozen=True, slots=True)
class HostSettings:
    """The validated variables of one host, one attribute per role."""

    deployment: DeploymentDefaults
    preflight: PreflightDefaults
    base: BaseDefaults
    weights: WeightsDefaults
    nvidia_repo: NvidiaRepoDefaults
    nvidia_driver: NvidiaDriverDefaults
    cuda: CudaDefaults
    infiniband: InfinibandDefaults
    docker: DockerDefaults
    exporters: ExportersDefaults
    monitoring: MonitoringDefaults
    netcheck: NetcheckDefaults
    filebeat: FilebeatDefaults
    kernel: KernelDefaults
    tuning: TuningDefaults
    kvm: KvmDefaults
    reboot: RebootDefaults
    serve: ServeDefaults
    gateway: GatewayDefaults
    acceptance: AcceptanceDefaults
    report: ReportDefaults


#: attribute name -> role variables model, read from HostSettings so the two never drift
ROLE_FIELDS: dict[str, type[RoleDefaults]] = get_type_hints(HostSettings)
#: Every role's variables; a host-data key that none of them declares is an error.
ROLE_DEFAULTS: tuple[type[RoleDefaults], ...] = tuple(ROLE_FIELDS.values())


def served_grant_problems(deployment: DeploymentDefaults, gateway: GatewayDefaults) -> list[tuple[str, str]]:
    """Grants in gateway_users for a model this host's gateway does not route (deepseek_model
    and gateway_upstreams): a grant nobody can use, most often a misspelt model id. Checked by
    the gateway role while preparing, not in the validation pass: a read-only what-if such as
    ``deploy/preflight.py --data deepseek_model=...`` installs no gateway and is not refused."""
    served = sorted({deployment.deepseek_model, *gateway.gateway_upstreams})
    problems = []
    for user, grants in sorted(gateway.gateway_users.items()):
        for model in sorted(set(grants) - set(served)):
            close = difflib.get_close_matches(model, served, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            problems.append(("gateway_users", f"{user}: grant for {model!r}, which this host does not serve "
                             f"(it serves {', '.join(served)}){hint} Grant a served model, route {model!r} in "
                             "gateway_upstreams, or change deepseek_model"))
    return problems


def _same(a: Any, b: Any) -> bool:
    """Equal as settings: a list and a tuple of the same items are one value."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def group_conflicts(groups_data: Mapping[str, Mapping[str, Any]], explicit: set[str]) -> list[tuple[str, str]]:
    """``(key, message)`` for each key that two of a host's groups set to different values.

    ``groups_data``: group -> its data, in the host's group order (pyinfra merges them in
    that order: the group listed last wins, which reads nowhere in the inventory). Refused,
    not warned: which value a host serves with must not hang on the order groups are
    listed in. A key the host's own data (or ``--data``) sets is explicit and wins cleanly.
    """
    setters: dict[str, list[tuple[str, Any]]] = {}
    for group, data in groups_data.items():
        for key, value in data.items():
            setters.setdefault(key, []).append((group, value))
    problems = []
    for key, found in sorted(setters.items()):
        if key in explicit or all(_same(value, found[0][1]) for _, value in found):
            continue
        said = ", ".join(f"{group} sets {value!r}" for group, value in found)
        winner, value = found[-1]
        problems.append((key, f"the host's groups disagree ({said}); pyinfra would take {value!r} from {winner}, "
                              "the group listed last. Set it in one group only, or on the host itself "
                              "(host data wins over every group)"))
    return problems


def validate_inventory(state: State) -> dict[str, HostSettings]:
    """Validate every host's data; raise DeployError listing all problems."""
    connector_keys, global_arguments = pyinfra_data_keys(), pyinfra_global_arguments()
    inventory = state.inventory
    override = set(inventory.get_override_data())
    settings: dict[str, HostSettings] = {}
    problems: list[tuple[str, str, str]] = []
    for inventory_host in state.inventory:
        try:
            data = inventory_host.data.dict()
        except Exception as error:  # callable data that raises
            problems.append((inventory_host.name, "*", f"host data could not be read: {error}"))
            continue
        parsed, host_problems = validate_host_data(
            inventory_host.name, data, ROLE_DEFAULTS, connector_keys, global_arguments=global_arguments,
        )
        groups_data = {group: inventory.get_group_data(group) for group in inventory_host.groups}
        host_problems += [(inventory_host.name, key, message) for key, message in group_conflicts(
            groups_data, override | set(inventory.get_host_data(inventory_host.name)))]
        problems.extend(host_problems)
        if not host_problems:
            settings[inventory_host.name] = HostSettings(
                **{name: parsed[role] for name, role in ROLE_FIELDS.items()}
            )
    if problems:
        raise DeployError(str(HostDataError(problems)))
    try:
        replica_plan(state, settings)
    except ReplicaError as error:
        raise DeployError(f"inventory: {error}") from None
    return settings


def serving_hosts(state: State) -> list[str]:
    """The serving hosts' names in inventory order."""
    group = state.inventory.get_group(SERVING_GROUP, default=None)
    return [member.name for member in (group if group else state.inventory)]


def replica_plan(state: State, settings: dict[str, HostSettings]) -> dict[str, Replica]:
    """Serving host -> its replica (deepseek_infra/replicas.py), from the validated settings."""
    members = []
    for name in serving_hosts(state):
        host_settings = settings[name]
        deployment = host_settings.deployment
        members.append(ReplicaMember(name, deployment.deepseek_nodes, deployment.deepseek_replica,
                                     host_settings.serve.serve_node_rank, deployment.deepseek_model))
    return plan_replicas(members)


def settings_for(host: Host) -> HostSettings:
    """The validated settings of ``host``; validates the whole inventory once per run."""
    settings = cached(run_cache(host.state, "settings"), "inventory", lambda: validate_inventory(host.state))
    return settings[host.name]


def replica_for(host: Host) -> Replica | None:
    """The replica ``host`` serves in; None for a host that serves nothing (not a serving host)."""
    cache = run_cache(host.state, "settings")
    settings = cached(cache, "inventory", lambda: validate_inventory(host.state))
    plan = cached(cache, "replicas", lambda: replica_plan(host.state, settings))
    return plan.get(host.name)


def hardware_references(*role_settings: RoleDefaults) -> dict[str, object]:
    """The settings among ``role_settings`` that name hardware (deepseek_infra/hardware_refs.py), by key."""
    return {key: getattr(settings, key) for settings in role_settings for key in REFERENCE_KEYS
            if key in type(settings).model_fields}


def refuse(target: Host, problems: list[tuple[str, str]]) -> None:
    """DeployError naming ``target`` and each ``(setting, message)``; raised while preparing."""
    if problems:
        raise DeployError(str(HostDataError([(target.name, key, message) for key, message in problems])))


def refuse_missing_hardware(target: Host, hardware: Hardware, *role_settings: RoleDefaults) -> None:
    """DeployError naming the host and each setting that names hardware ``target`` lacks;
    called while preparing, so nothing has changed on any host yet."""
    refuse(target, reference_problems(hardware, hardware_references(*role_settings)))
