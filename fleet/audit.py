"""Drift audit: prepare a deploy against every host without executing it, report drift.

Drives pyinfra through its Python API the way ``pyinfra -y --dry`` does (same inventory
loader, same deploy-file loader from ``pyinfra_cli``), then asks each host's operations
for the commands they would run. Nothing is executed on any host: only facts are read.

    python deploy/audit.py inventories/prod.py                 # deploy/full.py by default
    python deploy/audit.py inventories/prod.py deploy/base.py --json
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Sequence

# pyinfra_cli patches the stdlib for gevent on import; it must come before other imports
# that use sockets or threads, exactly as in the pyinfra CLI.
import pyinfra_cli  # noqa: F401  isort: skip
import pyinfra
from pyinfra import logger
from pyinfra.api import Config, State
from pyinfra.api.command import PyinfraCommand, StringCommand
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.state import StateStage
from pyinfra.context import ctx_config, ctx_host, ctx_inventory, ctx_state
from pyinfra_cli.inventory import make_inventory
from pyinfra_cli.util import load_deploy_file, parse_cli_arg

from fleet.drift import AuditSummary, OpResult, split_name, summarise


def command_text(command: PyinfraCommand) -> str:
    """A command as the operator would read it, secrets masked."""
    if isinstance(command, StringCommand):
        return command.get_masked_value()
    return repr(command)


def cli_context() -> tuple[State, Config, str]:
    """A fresh state and config in pyinfra's context, as the CLI sets them up.

    Like `pyinfra -y`, operations are not probed while loading: a caller that evaluates
    each operation once reads every fact it needs once, not twice.
    """
    pyinfra.is_cli = True  # operation order from the call stack, like `pyinfra deploy.py`
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    state = State(check_for_changes=False)
    state.cwd = cwd
    ctx_state.set(state)
    config = Config()
    ctx_config.set(config)
    config.lock_current_state()
    return state, config, cwd


def prepare_state(
    inventory: str, deploy_files: Sequence[str], data: dict | None = None, limit: Iterable[str] = (),
) -> State:
    """Load inventory and deploy files into a state in the Prepare stage, as the CLI does."""
    state, config, cwd = cli_context()

    pyinfra_inventory = make_inventory(inventory, cwd=cwd, override_data=data or {})
    ctx_inventory.set(pyinfra_inventory)
    limit_hosts = None
    if limit:
        limit_hosts = [host for host in pyinfra_inventory if host.name in set(limit)]
        for pattern in limit:
            try:
                limit_hosts.extend(pyinfra_inventory.get_group(pattern))
            except Exception:  # not a group name
                pass
    state.init(pyinfra_inventory, config, initial_limit=limit_hosts)

    state.set_stage(StateStage.Connect)
    connect_all(state)
    state.set_stage(StateStage.Prepare)
    for number, filename in enumerate(deploy_files):
        config.lock_current_state()
        state.current_op_file_number = number
        load_deploy_file(state, filename)
        config.reset_locked_state()
    return state


def evaluate(state: State) -> list[OpResult]:
    """Every (host, operation) pair of a prepared state, with the commands it would run."""
    results: list[OpResult] = []
    for host in state.inventory:  # inventory order, not the activated set's
        if host not in state.activated_hosts or host in state.failed_hosts:
            continue
        for op_hash in state.get_op_order():
            if op_hash not in state.ops[host]:
                continue
            op_meta = state.op_meta[op_hash]
            role, operation = split_name(sorted(op_meta.names)[0])
            op_data = state.get_op_data_for_host(host, op_hash)
            conditional = bool(op_data.global_arguments.get("_if"))
            commands: list[str] = []
            error = None
            with ctx_state.use(state), ctx_host.use(host):
                try:
                    commands = [command_text(command) for command in op_data.command_generator()]
                except Exception as exc:  # a fact that failed, an operation that refused
                    error = f"{type(exc).__name__}: {exc}"
            results.append(OpResult(host.name, role, operation, tuple(commands), conditional, error))
    return results


def audit(
    inventory: str, deploy_files: Sequence[str], data: dict | None = None,
    limit: Iterable[str] = (), strict: bool = False,
) -> AuditSummary:
    state = prepare_state(inventory, deploy_files, data, limit)
    try:
        results = evaluate(state)
        hosts = [host.name for host in state.inventory if state.is_host_in_limit(host)]
        unreachable = {
            host.name: "failed to connect or prepare"
            for host in state.inventory
            if host.name in hosts and (host not in state.activated_hosts or host in state.failed_hosts)
        }
        return summarise(results, hosts, unreachable, strict)
    finally:
        state.set_stage(StateStage.Disconnect)
        disconnect_all(state)


def parse_data(pairs: Iterable[str]) -> dict:
    """``--data key=value`` pairs, values parsed like the pyinfra CLI does."""
    data = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--data {pair!r}: expected key=value")
        data[key] = parse_cli_arg(value)
    return data


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    os.environ.setdefault("PYINFRA_PROGRESS", "off")
