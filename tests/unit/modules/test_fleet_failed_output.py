"""What the rolling upgrade's report says of a host whose operation failed: a real pyinfra
run on the local host (@local connector), one operation succeeding and one failing."""

from __future__ import annotations

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operation import add_op
from pyinfra.api.operations import run_ops
from pyinfra.operations import server

from modules.fleet.upgrade import failed_output

JOURNAL = "; ".join(f"echo 'journal line {n}' >&2" for n in range(1, 21))


@pytest.fixture
def local_state():
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    connect_all(state)
    yield state, inventory.get_host("@local")
    disconnect_all(state)


def test_names_the_failed_operation_the_host_line_and_the_last_lines(local_state):
    state, host = local_state
    add_op(state, server.shell, name="Report facts", commands=["echo fine"])
    add_op(state, server.shell, name="Start the engine",
           commands=[f"echo '@local: deepseek-engine.service did not start' >&2; {JOURNAL}; exit 3"])
    with pytest.raises(PyinfraError):  # the only host failed: "No hosts remaining!"
        run_ops(state)
    text = failed_output(state, host, lines=5)
    assert text is not None
    heading, *shown = text.splitlines()
    assert heading == "@local: operation `Start the engine` failed:"
    # The line naming the host first, then the last five lines (the journal's tail).
    assert shown == ["@local: deepseek-engine.service did not start",
                     *(f"journal line {n}" for n in range(16, 21))]


def test_nothing_to_say_of_a_host_whose_operations_all_succeeded(local_state):
    state, host = local_state
    add_op(state, server.shell, name="Report facts", commands=["echo fine >&2"])
    run_ops(state)
    assert failed_output(state, host) is None
