"""remembered_fact / host_hardware / hardware_section: one round trip per host state and run.

The host and state are small stand-ins holding pyinfra's own OperationMeta and StateStage,
so the rule is exercised exactly as pyinfra records prepared and executed operations.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pyinfra.api.command import StringCommand
from pyinfra.api.operation import OperationMeta
from pyinfra.api.state import StateStage
from pyinfra.connectors.util import CommandOutput

from deepseek_infra.facts.host import (
    EXECUTE,
    PREPARE,
    HostHardware,
    hardware_section,
    host_changes,
    host_hardware,
    reading_valid,
    remembered_fact,
)
from deepseek_infra.facts.system import Virtualization
from roles.tuning.facts import PciLocality


class FakeState:
    def __init__(self):
        self.current_stage = StateStage.Prepare
        self.ops: dict = {}


class FakeHost:
    """Answers get_fact with a new value per call, so a reuse is visible."""

    def __init__(self, name="node-1", state=None):
        self.name = name
        self.state = state or FakeState()
        self.state.ops.setdefault(self, {})
        self.current_op_hash = None
        self.asked: list[tuple[str, dict]] = []

    def get_fact(self, fact_class, **kwargs):
        self.asked.append((fact_class.__name__, kwargs))
        if fact_class is HostHardware:
            return {"virtualization": {"container": "docker", "vm": None}, "os_release": {"id": "debian"},
                    "reading": len(self.asked)}
        return {"reading": len(self.asked), **kwargs}

    # pyinfra's bookkeeping of one operation on this host
    def op(self, op_hash: str, commands: int | None) -> None:
        """Add operation ``op_hash``; ``commands`` None: not run yet, else completed with that many."""
        meta = OperationMeta(op_hash, None)
        if commands is not None:
            meta.set_complete(True, [StringCommand("true")] * commands, CommandOutput([]))
        self.state.ops[self][op_hash] = SimpleNamespace(operation_meta=meta)

    def execute(self, op_hash: str) -> None:
        self.state.current_stage = StateStage.Execute
        self.current_op_hash = op_hash


def test_prepare_reads_once_per_host_and_arguments():
    host = FakeHost()
    first = host_hardware(host)
    assert host_hardware(host) is first
    assert remembered_fact(host, PciLocality) is remembered_fact(host, PciLocality)
    remembered_fact(host, PciLocality, path="/a")
    remembered_fact(host, PciLocality, path="/b")
    remembered_fact(host, PciLocality, path="/a")
    assert [name for name, _ in host.asked] == ["HostHardware", "PciLocality", "PciLocality", "PciLocality"]


def test_hosts_do_not_share_readings():
    state = FakeState()
    one, two = FakeHost("node-1", state), FakeHost("node-2", state)
    host_hardware(one)
    host_hardware(two)
    assert len(one.asked) == len(two.asked) == 1


def test_execute_reuses_the_prepare_reading_while_nothing_ran():
    host = FakeHost()
    reading = host_hardware(host)
    host.op("op1", 0)  # completed with no command: a no-op
    host.op("op2", None)
    host.execute("op2")
    assert host_hardware(host) is reading
    assert len(host.asked) == 1


def test_an_operation_that_ran_commands_invalidates_the_reading():
    host = FakeHost()
    reading = host_hardware(host)
    host.op("driver", 3)  # the driver install ran: GPU sections may differ now
    host.op("tuning", None)
    host.execute("tuning")
    fresh = host_hardware(host)
    assert fresh is not reading and fresh["reading"] == 2
    # The next operation reuses tuning's reading while tuning changed nothing ...
    host.op("tuning", 0)
    host.op("node_facts", None)
    host.execute("node_facts")
    assert host_hardware(host) is fresh
    # ... and reads again once something executed after it.
    host.op("node_facts", 1)
    host.op("later", None)
    host.execute("later")
    assert host_hardware(host)["reading"] == 3


def test_the_operation_that_took_a_reading_never_gets_it_back():
    host = FakeHost()
    host.op("op1", None)
    host.execute("op1")
    first = host_hardware(host)
    # op1 may have yielded (and run) commands since it read: it must read again.
    assert host_hardware(host) is not first
    assert len(host.asked) == 2


def test_prepare_never_sees_an_execute_reading():
    assert reading_valid((EXECUTE, 0), "op", (PREPARE, 0), None) is False
    assert reading_valid((PREPARE, 0), None, (PREPARE, 0), None) is True
    assert reading_valid((PREPARE, 0), None, (EXECUTE, 1), "op") is False


def test_host_changes_counts_completed_operations_that_ran_commands():
    host = FakeHost()
    host.op("a", 0)
    host.op("b", 2)
    host.op("c", None)
    host.op("d", 1)
    assert host_changes(host) == 2


def test_section_comes_from_a_valid_hardware_reading():
    host = FakeHost()
    host_hardware(host)
    assert hardware_section(host, "virtualization") == {"container": "docker", "vm": None}
    assert hardware_section(host, "os_release") == {"id": "debian"}
    assert [name for name, _ in host.asked] == ["HostHardware"]


def test_section_without_a_reading_asks_only_its_own_fact():
    host = FakeHost()
    section = hardware_section(host, "virtualization")
    assert hardware_section(host, "virtualization") is section
    assert [name for name, _ in host.asked] == [Virtualization.__name__]


def test_section_after_a_change_does_not_use_the_stale_reading():
    host = FakeHost()
    host_hardware(host)
    host.op("install", 1)
    host.op("check", None)
    host.execute("check")
    hardware_section(host, "ibstat")
    assert [name for name, _ in host.asked] == ["HostHardware", "IbStat"]


def test_unknown_section_is_refused():
    with pytest.raises(KeyError):
        hardware_section(FakeHost(), "no_such_section")
