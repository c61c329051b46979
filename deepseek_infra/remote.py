"""Commands and uploads from Python code (``python.call`` functions, the controller's own
checks) with the host's privilege settings.

pyinfra applies ``_sudo``, ``_sudo_user``, ``_sudo_password``, ``_su_user``, ``_doas`` ...
(host data, ``--sudo``, deploy arguments) to the commands of operations only: a bare
``host.run_shell_command`` or ``host.put_file`` runs as the SSH user. These helpers pass the
same privilege arguments pyinfra would give an operation, so a non-root deploy user with
sudo works here too.
"""

from __future__ import annotations

from typing import IO, Any

from pyinfra.api.arguments import auth_argument_meta, pop_global_arguments
from pyinfra.api.host import Host

#: the privilege and user-escalation arguments (pyinfra's own list), plus the shell they use
PRIVILEGE_ARGUMENTS: tuple[str, ...] = (*auth_argument_meta, "_shell_executable")


def privilege_arguments(target: Host) -> dict[str, Any]:
    """The privilege arguments an operation on ``target`` would run with, as pyinfra resolves
    them: the current deploy's arguments, then host data, then the config (``--sudo``)."""
    arguments, _ = pop_global_arguments(target.state, target, {})
    return {key: arguments[key] for key in PRIVILEGE_ARGUMENTS if key in arguments}  # type: ignore[literal-required]


def run(target: Host, command: str) -> tuple[bool, Any]:
    """``target.run_shell_command`` with the host's privilege arguments: (ok, CommandOutput)."""
    return target.run_shell_command(command=command, **privilege_arguments(target))


def put(target: Host, src: IO, dest: str) -> bool:
    """``target.put_file`` with the host's privilege arguments (a root-owned destination works
    for a sudo user: pyinfra uploads to a temporary file and moves it with sudo)."""
    return target.put_file(src, dest, **privilege_arguments(target))
