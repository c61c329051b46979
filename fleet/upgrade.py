"""Rolling upgrade driver: runs the plan of ``fleet/rollout.py`` through pyinfra's API.

A batch is whole replicas (fleet/rollout.py): every host of a replica is drained, applied,
gated and re-admitted in the same runs, a host failing a step fails its replica's other hosts
with it, and a rollback puts all of them back. Load-balancer hooks run for replica heads
(the hosts with a gateway). Per batch, each step is one pyinfra run limited to the batch's hosts (the inventory and
deploy files loaded exactly as the CLI does, via ``pyinfra_cli``): drain the gateway
(``deepseek-gateway drain --wait N``; an optional load-balancer hook runs on the
controller first), apply the selected deploy files with the upgrade's data overrides,
``deploy/reboot.py`` (reboots a host a role marked reboot-required; containers are
reported, not rebooted), the health gates of ``deploy/health.py``, then re-admit
(``drain --resume``). A host that fails a step is not re-admitted; once more hosts failed
than ``max_fail`` allows, the rollout stops, the failed hosts are rolled back (the deploy
files again with the inventory's own data, i.e. the previous release and engine settings,
plus ``rollback_data``), gated again and re-admitted; hosts never started stay untouched.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyinfra_cli  # noqa: F401  isort: skip  (gevent patch first, as in the pyinfra CLI)
import pyinfra
from pyinfra.api import State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operation import add_op
from pyinfra.api.operations import run_ops
from pyinfra.api.state import StateStage
from pyinfra.context import ctx_host, ctx_inventory, ctx_state
from pyinfra.facts.server import Command
from pyinfra.operations import server
from pyinfra_cli.inventory import make_inventory
from pyinfra_cli.util import load_deploy_file

from fleet.audit import cli_context
from fleet.rollout import RolloutError, RolloutState
from deepseek_node.paths import MODELS_DIR
from deepseek_infra.replicas import ReplicaError
from roles.settings import replica_plan, validate_inventory

GATEWAY_CLI = "deepseek-gateway"
# What "before" and "after" record per host: every model's current weights release.
RELEASES_PROBE = (f"for link in {MODELS_DIR}/*/current; do [ -L \"$link\" ] && "
                  f"echo \"$(basename \"$(dirname \"$link\")\")=$(readlink \"$link\")\"; done; true")


DRIVER_DEPLOYS = ("full.py", "nvidia_driver.py", "cuda.py")  # deploy files that can change the GPU stack


@dataclass
class UpgradeSpec:
    inventory: str
    deploy_files: list[str]
    data: dict = field(default_factory=dict)  # the upgrade's overrides (every host)
    host_data: dict[str, dict] = field(default_factory=dict)  # per-host overrides (host -> data)
    rollback_data: dict = field(default_factory=dict)  # overrides of the rollback run
    drain_wait_s: float = 30
    lb_drain: str | None = None  # controller command, {host} substituted, before draining
    lb_admit: str | None = None  # controller command, {host} substituted, after re-admitting
    limit: list[str] = field(default_factory=list)
    acceptance: str = "auto"  # run deploy/acceptance.py after the reboot: auto (driver changes), always, never

    def runs_acceptance(self) -> bool:
        """Whether the batch runs the acceptance gate: ``auto`` when the deploy files can change
        the driver (deploy/full.py, deploy/nvidia_driver.py, deploy/cuda.py)."""
        if self.acceptance != "auto":
            return self.acceptance == "always"
        return any(Path(name).name in DRIVER_DEPLOYS for name in self.deploy_files)


def _state(spec: UpgradeSpec, hosts: Iterable[str], data: dict, host_data: dict[str, dict]) -> State:
    state, config, cwd = cli_context()
    inventory = make_inventory(spec.inventory, cwd=cwd, override_data=data)
    ctx_inventory.set(inventory)
    wanted = set(hosts)
    for host in inventory:
        for key, value in host_data.get(host.name, {}).items():
            setattr(host.data, key, value)
    state.init(inventory, config, initial_limit=[host for host in inventory if host.name in wanted])
    state.set_stage(StateStage.Connect)
    connect_all(state)
    state.set_stage(StateStage.Prepare)
    return state


def validate(spec: UpgradeSpec) -> None:
    """Refuse bad host data (upgrade and rollback) for the whole inventory before any change."""
    for data, host_data in ((spec.data, spec.host_data), (spec.rollback_data, {})):
        state, _config, cwd = cli_context()
        inventory = make_inventory(spec.inventory, cwd=cwd, override_data=data)
        ctx_inventory.set(inventory)
        for host in inventory:
            for key, value in host_data.get(host.name, {}).items():
                setattr(host.data, key, value)
        state.init(inventory, _config)
        validate_inventory(state)  # raises DeployError naming host and field


def inventory_hosts(spec: UpgradeSpec) -> list[str]:
    """The inventory's host names in order (``limit``: only these hosts or groups)."""
    cwd = cli_context()[2]
    inventory = make_inventory(spec.inventory, cwd=cwd)
    names = [host.name for host in inventory]
    if not spec.limit:
        return names
    chosen: set[str] = set(spec.limit) & set(names)
    for pattern in spec.limit:
        chosen |= {host.name for host in inventory.get_group(pattern, default=[])}
    return [name for name in names if name in chosen]


def inventory_units(spec: UpgradeSpec, hosts: list[str]) -> list[tuple[str, list[str]]]:
    """The rollout's replicas as (name, hosts head first), in the order of ``hosts``; a host
    that serves nothing (not in gpu_nodes) is a unit of its own. A ``limit`` that takes only
    part of a replica is refused: a replica is upgraded as one."""
    state, config, cwd = cli_context()
    inventory = make_inventory(spec.inventory, cwd=cwd, override_data=spec.data)
    ctx_inventory.set(inventory)
    state.init(inventory, config)
    try:
        plan = replica_plan(state, validate_inventory(state))
    except ReplicaError as error:
        raise RolloutError(f"inventory: {error}") from None
    units: dict[str, list[str]] = {}
    for host in hosts:
        replica = plan.get(host)
        if replica is None:
            units[host] = [host]
            continue
        missing = [member for member in replica.hosts if member not in hosts]
        if missing:
            raise RolloutError(f"limit: {replica.describe()} is upgraded as one, and this rollout leaves out "
                               f"{', '.join(missing)}: limit to all its hosts or none")
        units.setdefault(replica.name, list(replica.hosts))
    return list(units.items())


def run_step(spec: UpgradeSpec, hosts: list[str], deploy_files: Iterable[str] = (),
             data: dict | None = None, host_data: dict[str, dict] | None = None,
             ops: Callable[[State], None] | None = None) -> dict[str, str | None]:
    """One pyinfra run on ``hosts``: deploy files and/or extra ops; host -> None or why it failed."""
    state = _state(spec, hosts, data or {}, host_data or {})
    try:
        in_run = [host for host in state.inventory if host.name in hosts]
        errors: dict[str, str | None] = {host.name: None for host in in_run}
        for host in state.inventory:
            if host.name in hosts and host not in state.activated_hosts:
                errors[host.name] = "could not connect"
        try:
            config = state.config
            for number, filename in enumerate(deploy_files):
                config.lock_current_state()
                state.current_op_file_number = number
                load_deploy_file(state, filename)
                config.reset_locked_state()
            if ops is not None:
                ops(state)
            run_ops(state)
        except Exception as error:  # noqa: BLE001  every host failed, or a deploy file raised while loading
            why = f"{type(error).__name__}: {error}"
            if isinstance(error, PyinfraError):  # "No hosts remaining!": each host's own failure is logged above
                why = f"an operation failed (see the pyinfra output above; {error})"
            for host in state.inventory:
                if host.name in errors and not errors[host.name]:
                    errors[host.name] = failed_output(state, host) or None
            return {name: found or why or type(error).__name__ for name, found in errors.items()}
        for host in state.failed_hosts:
            if host.name in errors:
                errors[host.name] = errors[host.name] or failed_output(state, host) or "an operation failed (see the log above)"
        return errors
    finally:
        state.set_stage(StateStage.Disconnect)
        disconnect_all(state)


def failed_output(state: State, host, lines: int = 12) -> str | None:
    """The operation that failed on ``host`` and the last lines it wrote to stderr (e.g. the
    serve role's report of the engine unit's journal), for the rollout report."""
    for op_hash, op_data in state.ops.get(host, {}).items():
        meta = op_data.operation_meta
        if not meta.is_complete() or meta.did_succeed(_raise_if_not_complete=False):
            continue
        name = ", ".join(state.op_meta[op_hash].names) if op_hash in state.op_meta else op_hash
        try:
            stderr = [line for line in meta.stderr_lines if line.strip()]
        except AssertionError:  # completed without output recorded
            stderr = []
        # The lines naming the host (the role's own summary), then the last ones (the journal's).
        named = [line for line in stderr[:-lines] if host.name in line][:3]
        shown = named + stderr[-lines:]
        return f"{host.name}: operation `{name}` failed" + (":\n" + "\n".join(shown) if shown else "")
    return None


def probe_releases(spec: UpgradeSpec, hosts: list[str]) -> dict[str, dict]:
    """Each host's current weights release per model slug (read-only)."""
    state = _state(spec, hosts, {}, {})
    try:
        found: dict[str, dict] = {}
        for host in state.inventory:
            if host.name not in hosts or host not in state.activated_hosts:
                continue
            with ctx_state.use(state), ctx_host.use(host):
                output = host.get_fact(Command, RELEASES_PROBE) or ""
            found[host.name] = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
        return found
    finally:
        state.set_stage(StateStage.Disconnect)
        disconnect_all(state)


def gateway_op(action: str, wait_s: float) -> Callable[[State], None]:
    """Drain (``drain``) or re-admit (``resume``) the node's gateway, where it runs one."""
    argv = f"{GATEWAY_CLI} drain --wait {wait_s:g}" if action == "drain" else f"{GATEWAY_CLI} drain --resume"
    command = (f"if systemctl is-active --quiet deepseek-gateway; then {argv}; "
               f"else echo 'no gateway runs here: nothing to {action}'; fi")

    def ops(state: State) -> None:
        pyinfra.is_cli = False  # add_op is the API way; deploy files need CLI mode (set again per step)
        try:
            hosts = [host for host in state.inventory.get_active_hosts() if state.is_host_in_limit(host)]
            add_op(state, server.shell, name=f"Gateway: {action}", commands=[command], host=hosts)
        finally:
            pyinfra.is_cli = True

    return ops


def _hook(template: str | None, hosts: list[str], log) -> dict[str, str | None]:
    errors: dict[str, str | None] = {name: None for name in hosts}
    if not template:
        return errors
    for name in hosts:
        command = template.replace("{host}", shlex.quote(name))
        result = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            errors[name] = f"load-balancer hook `{command}` exited {result.returncode}: {result.stderr.strip()[-500:]}"
        log(f"  {name}: hook `{command}` -> {result.returncode}")
    return errors


def _batch(spec: UpgradeSpec, rollout: RolloutState, hosts: list[str], data: dict,
           host_data: dict[str, dict], save: Callable[[], None], log, status: str) -> list[str]:
    """Drain, apply, reboot, gate, re-admit ``hosts``; returns the hosts that failed."""
    failed: dict[str, tuple[str, str]] = {}
    live = list(hosts)
    seconds: dict[str, dict[str, float]] = {host: {} for host in hosts}

    def step(name: str, errors: dict[str, str | None]) -> None:
        nonlocal live
        for host, error in errors.items():
            if error and host in live:
                failed[host] = (name, error)
                log(f"  {host}: {name} FAILED: {error}")
        for host in list(failed):  # a replica fails as one: its other hosts stop here too
            replica = rollout.replica_of(host)
            for sibling in rollout.hosts_of(replica):
                if sibling in live and sibling not in failed:
                    failed[sibling] = (name, f"replica {replica}: {host} failed {name}")
                    log(f"  {sibling}: {name} FAILED with its replica {replica}")
        live = [host for host in live if host not in failed]
        for host in live:
            log(f"  {host}: {name} ok")

    def heads() -> list[str]:  # the load balancer knows replica heads (gateways) only
        return [host for host in live if rollout.hosts_of(rollout.replica_of(host))[0] == host]

    for name, run in (
        ("lb-drain", lambda: _hook(spec.lb_drain, heads(), log)),
        ("drain", lambda: run_step(spec, live, ops=gateway_op("drain", spec.drain_wait_s))),
        ("apply", lambda: run_step(spec, live, spec.deploy_files, data, host_data)),
        ("reboot", lambda: run_step(spec, live, ["deploy/reboot.py"], data, host_data)),
        # burn-in after a driver change, before the node takes traffic again (a failed node's
        # gateway /health answers 503 from here on)
        *([("acceptance", lambda: run_step(spec, live, ["deploy/acceptance.py"], data, host_data))]
          if spec.runs_acceptance() else []),
        ("health", lambda: run_step(spec, live, ["deploy/health.py"], data, host_data)),
        ("resume", lambda: run_step(spec, live, ops=gateway_op("resume", 0))),
        ("lb-admit", lambda: _hook(spec.lb_admit, heads(), log)),
    ):
        if not live:
            break
        started = time.monotonic()
        errors = run()
        for host in live:
            seconds[host][name] = round(time.monotonic() - started, 1)
        step(name, errors)
    for host in hosts:
        if host in failed:
            rollout.record(host, "failed", *failed[host])
        else:
            rollout.record(host, status)
        if status == "upgraded":  # a rollback keeps the timings of the upgrade that failed
            rollout.hosts[host].seconds = seconds[host]
    save()
    return list(failed)


def rollback(spec: UpgradeSpec, rollout: RolloutState, save: Callable[[], None], log) -> None:
    """Put the failed hosts (every host of a failed replica) back on what they ran: the
    inventory's own data plus rollback_data."""
    hosts = rollout.rollback_candidates()
    if not hosts:
        return
    log(f"rollback: {', '.join(hosts)} (deploy files with the inventory's data"
        f"{', ' + str(spec.rollback_data) if spec.rollback_data else ''})")
    steps = {host: (rollout.hosts[host].step, rollout.hosts[host].error) for host in hosts}
    still = _batch(spec, rollout, hosts, dict(spec.rollback_data), {}, save, log, status="rolled_back")
    after = probe_releases(spec, hosts)
    for host in hosts:
        outcome = rollout.hosts[host]
        outcome.step, outcome.error = steps[host]  # keep why the upgrade failed
        outcome.after = after.get(host, {})
        if host in still:
            outcome.status, outcome.rollback = "rollback_failed", "rollback failed; the host stays drained"
        else:
            outcome.rollback = "rolled back, healthy, re-admitted"
    save()


def execute(spec: UpgradeSpec, rollout: RolloutState, state_path: Path | None, log=print) -> RolloutState:
    """Run the remaining batches of ``rollout``; stop and roll back once over the failure budget."""
    def save() -> None:
        if state_path is not None:
            rollout.save(state_path)

    save()
    total = len(rollout.batches)
    for number, hosts in rollout.remaining_batches():
        if rollout.over_budget():
            break
        label = "canary" if number == 0 and rollout.canary else "batch"
        log(f"{label} {number + 1}/{total}: {', '.join(hosts)}")
        before = probe_releases(spec, hosts)
        for host in hosts:
            rollout.hosts[host].before = before.get(host, {})
        save()
        _batch(spec, rollout, hosts, spec.data, spec.host_data, save, log, status="upgraded")
        after = probe_releases(spec, hosts)
        for host in hosts:
            rollout.hosts[host].after = after.get(host, {})
        save()
        log(f"{label} {number + 1}/{total}: {len(rollout.failures())} failed so far (max_fail {rollout.max_fail})")
        if rollout.over_budget():
            break
    rollout.finish()
    if rollout.stopped:
        log(rollout.stopped)
    rollback(spec, rollout, save, log)
    rollout.finish()
    save()
    return rollout
