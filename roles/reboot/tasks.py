"""reboot: reboot the hosts whose roles asked for it, a batch at a time.

Reads the per-host state the roles write (``deepseek_infra.facts.reboot.RebootRequired``); a host
with no request is left alone. A container cannot be rebooted from inside (its "reboot"
would stop the container, and its kernel is the host's): it is reported and skipped, with
the state kept, so the request stays visible.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import deploy

from deepseek_infra.facts.host import hardware_part
from deepseek_infra.hardware import Virtualization
from deepseek_infra.facts.reboot import RebootRequired
from deepseek_infra.operations import reboot
from roles.reboot.defaults import RebootDefaults


def pending_summary(state: dict[str, list[str]]) -> str:
    return "; ".join(f"{role}: {', '.join(reasons)}" for role, reasons in state.items())


@deploy("reboot: reboot hosts that need it")
def reboot_if_required(config: RebootDefaults) -> bool:
    """Reboot this host when a role asked for it; True when a reboot was scheduled."""
    state = host.get_fact(RebootRequired)
    if not state:
        logger.info(f"{host.name}: no role asks for a reboot; not rebooting")
        return False
    container = hardware_part(host, Virtualization).container
    if container:
        logger.warning(
            f"{host.name}: reboot required ({pending_summary(state)}) but this host is a "
            f"{container} container: not rebooting it (a container shares the host's kernel); "
            "the request is kept. On a real host this deploy reboots it."
        )
        return False
    logger.info(f"{host.name}: rebooting ({pending_summary(state)}), {config.reboot_batch_size} host(s) at a time")
    reboot.rebooted(
        name=f"Reboot the host for: {', '.join(state)}, then clear their reboot requests",
        roles=list(state), delay=config.reboot_delay_s, reboot_timeout=config.reboot_timeout_s,
        _parallel=config.reboot_batch_size,
    )
    return True