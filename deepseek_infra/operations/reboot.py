"""Operations on the per-host "reboot required" state (see ``deepseek_infra.facts.reboot``)."""

from __future__ import annotations

import re

from pyinfra import host
from pyinfra.api import OperationValueError, QuoteString, StringCommand, operation
from pyinfra.operations import files, server

from deepseek_infra.facts.reboot import REBOOT_REQUIRED_DIR, RebootRequired, render_state

_ROLE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@operation()
def reboot_required(role: str, reasons: list[str] | tuple[str, ...] = ()):
    """
    Record (or clear) that ``role`` needs this host rebooted, and why.

    + role: the role asking, e.g. ``kernel`` or ``nvidia-driver`` (names the state file)
    + reasons: one sentence each; empty removes the role's request

    Writes ``/var/lib/deepseek/state/reboot-required.d/<role>.json``. Nothing changes when
    the file already holds exactly these reasons (or is already absent for no reasons).

    **Example:**

    .. code:: python

        reboot.reboot_required(role="kernel", reasons=["kernel command line lacks iommu=pt"])
    """
    if not _ROLE.match(role):
        raise OperationValueError(f"{host.name}: role: expected [a-z0-9_-]+, found {role!r}")
    reasons = [str(reason) for reason in reasons]
    current = host.get_fact(RebootRequired).get(role)
    path = f"{REBOOT_REQUIRED_DIR}/{role}.json"
    if not reasons:
        if current is None:
            host.noop(f"{role} does not ask for a reboot")
            return
        yield from files.file._inner(path=path, present=False)
        return
    if current == reasons:
        host.noop(f"{role} already asks for a reboot: {'; '.join(reasons)}")
        return
    # A shell write, not files.put: the state lives on the data volume, which on a lab node
    # is a tmpfs mount that `docker cp` (the docker connector's upload) cannot reach.
    yield StringCommand("mkdir", "-p", "-m", "0755", QuoteString(REBOOT_REQUIRED_DIR))
    yield StringCommand(
        "umask", "022", "&&", "printf", "'%s'", QuoteString(render_state(role, reasons)),
        ">", QuoteString(f"{path}.tmp"), "&&", "mv", "-f", QuoteString(f"{path}.tmp"), QuoteString(path),
    )

@operation(is_idempotent=False)
def rebooted(roles: list[str] | tuple[str, ...], delay: int = 10, reboot_timeout: int = 900):
    """
    Reboot the host, wait until it answers again, then clear the state of ``roles``.

    + roles: the roles whose reboot request this reboot satisfies (their files are removed
      only after the host came back; a failed boot leaves them in place)
    + delay: seconds to wait before the first reconnection attempt
    + reboot_timeout: seconds to keep trying to reconnect before failing the host

    Pass ``_parallel=N`` to reboot at most N hosts at once (``deploy/reboot.py`` does).
    """
    for role in roles:
        if not _ROLE.match(role):
            raise OperationValueError(f"{host.name}: roles: expected [a-z0-9_-]+, found {role!r}")
    yield from server.reboot._inner(delay=delay, interval=2, reboot_timeout=reboot_timeout)
    if roles:
        yield StringCommand("rm", "-f", *(QuoteString(f"{REBOOT_REQUIRED_DIR}/{role}.json") for role in roles))
