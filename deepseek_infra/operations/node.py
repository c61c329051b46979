"""Operations about the node as a whole."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.operations import files

from deepseek_node import paths
from deepseek_infra.facts.host import hardware
from deepseek_infra.nodeinfo import render_node_facts


@operation()
def node_facts_file(
    path: str = paths.NODE_FACTS_FILE,
    user: str = "root",
    group: str = "root",
    mode: str = "0644",
):
    """
    Write the node facts file from the hardware the host presents when this operation runs.

    + path: destination of the JSON document
    + user: owner of the file
    + group: group of the file
    + mode: permissions of the file

    The hardware is read inside the operation, i.e. after the operations before it ran,
    so tools they installed (``numactl``, ``lspci``, the driver's ``nvidia-smi``) count on
    the first run already and a second run finds nothing to change.

    **Example:**

    .. code:: python

        node.node_facts_file(group="deepseek", mode="0640")
    """
    reading = hardware(host)  # before the first yield (remembered_fact's rule)
    content = render_node_facts(reading.hostname or host.name, reading)
    yield from files.put._inner(src=StringIO(content), dest=path, user=user, group=group, mode=mode)


@operation(is_idempotent=False)
def preflight_gate(failures: str = ""):
    """
    Fail this host (and only it) when preflight found a blocker; changes nothing.

    + failures: what failed, printed by the failing command; empty means pass (no command)
    """
    if failures:
        yield StringCommand("echo", QuoteString(f"preflight failed: {failures}"), ">&2", "&&", "exit", "1")
    else:
        host.noop("preflight passed")
