"""Operations for InfiniBand: ports checked against the expected state and rate."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import QuoteString, StringCommand, operation

from deepseek_infra.facts.host import hardware_part
from deepseek_infra.hardware import IbPorts
from deepseek_infra.infiniband import port_report


@operation(is_idempotent=True)
def ports_verified(expected_rate_gbps: float | None = None, link_layers: tuple[str, ...] = ("InfiniBand",),
                   cas: tuple[str, ...] = (), on_problem: str = "warn"):
    """
    Check every InfiniBand port ``ibstat`` shows: Active / LinkUp, at no less than a rate.

    + expected_rate_gbps: lowest acceptable rate (400 = NDR); None checks the state only
    + link_layers: link layers checked (``InfiniBand``; ``Ethernet`` adds RoCE ports)
    + cas: only these CAs; empty: every CA of a checked link layer
    + on_problem: ``warn`` logs each problem; ``fail`` fails the host with them

    Read when the operation runs (not while the deploy is prepared), so the ports are seen
    through the ``ibstat`` the same run installed. Changes nothing.

    **Example:**

    .. code:: python

        infiniband.ports_verified(expected_rate_gbps=400, on_problem="fail")
    """
    if not host.state.is_executing:
        host.noop("InfiniBand ports are checked when the deploy runs (after infiniband-diags is installed)")
        return
    report = port_report(hardware_part(host, IbPorts), expected_rate_gbps, link_layers=link_layers, cas=cas)
    if not report.problems:
        host.noop(f"InfiniBand: {report.summary()}")
        return
    message = f"{host.name}: InfiniBand ports: {report.summary()}"
    if on_problem == "fail":
        yield StringCommand("echo", QuoteString(message), ">&2", ";", "exit", "1")
        return
    logger.warning(message)
    host.noop("InfiniBand port problems reported as warnings (infiniband_on_port_problem=warn)")
