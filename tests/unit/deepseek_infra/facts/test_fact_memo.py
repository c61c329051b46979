"""remembered_fact / hardware / hardware_part / prepared_hardware: one round trip per host state and run.

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

from deepseek_infra.facts import system
from deepseek_infra.facts.host import (
    EXECUTE,
    PREPARE,
    HostHardware,
    hardware,
    hardware_part,
    host_changes,
    prepared_hardware,
    reading_valid,
    remembered_fact,
)
from deepseek_infra.hardware import Hardware, IbPorts, OsRelease, Virtualization
from deepseek_infra.runcache import run_cache
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
        if fact_class is HostHardware:  # the reading number goes into the hostname
            return Hardware.from_sections({"virtualization": {"container": "docker", "vm": None},
                                           "os_release": {"id": "debian"}, "hostname": f"reading-{len(self.asked)}"})
        if fact_class is system.Virtualization:
            return {"container": None, "vm": f"reading-{len(self.asked)}"}
        if fact_class.__name__ == "IbStat":
            return []
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
    first = hardware(host)
    assert hardware(host) is first
    assert remembered_fact(host, PciLocality) is remembered_fact(host, PciLocality)
    remembered_fact(host, PciLocality, path="/a")
    remembered_fact(host, PciLocality, path="/b")
    remembered_fact(host, PciLocality, path="/a")
    assert [name for name, _ in host.asked] == ["HostHardware", "PciLocality", "PciLocality", "PciLocality"]


def test_hosts_do_not_share_readings():
    state = FakeState()
    one, two = FakeHost("node-1", state), FakeHost("node-2", state)
    hardware(one)
    hardware(two)
    assert len(one.asked) == len(two.asked) == 1


def test_execute_reuses_the_prepare_reading_while_nothing_ran():
    host = FakeHost()
    reading = hardware(host)
    host.op("op1", 0)  # completed with no command: a no-op
    host.op("op2", None)
    host.execute("op2")
    assert hardware(host) is reading
    assert len(host.asked) == 1


def test_an_operation_that_ran_commands_invalidates_the_reading():
    host = FakeHost()
    reading = hardware(host)
    host.op("driver", 3)  # the driver install ran: GPU sections may differ now
    host.op("tuning", None)
    host.execute("tuning")
    fresh = hardware(host)
    assert fresh is not reading and fresh.hostname == "reading-2"
    # The next operation reuses tuning's reading while tuning changed nothing ...
    host.op("tuning", 0)
    host.op("node_facts", None)
    host.execute("node_facts")
    assert hardware(host) is fresh
    # ... and reads again once something executed after it.
    host.op("node_facts", 1)
    host.op("later", None)
    host.execute("later")
    assert hardware(host).hostname == "reading-3"


def test_the_operation_that_took_a_reading_never_gets_it_back():
    host = FakeHost()
    host.op("op1", None)
    host.execute("op1")
    first = hardware(host)
    # op1 may have yielded (and run) commands since it read: it must read again.
    assert hardware(host) is not first
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
    hardware(host)
    assert hardware_part(host, Virtualization) == Virtualization(container="docker", vm=None)
    assert hardware_part(host, OsRelease).id == "debian"
    assert [name for name, _ in host.asked] == ["HostHardware"]


def test_section_without_a_reading_asks_only_its_own_fact():
    host = FakeHost()
    section = hardware_part(host, Virtualization)
    assert section == Virtualization(container=None, vm="reading-1")  # typed from the small fact's dict
    assert hardware_part(host, Virtualization) == section
    assert [name for name, _ in host.asked] == [system.Virtualization.__name__]


def test_section_after_a_change_does_not_use_the_stale_reading():
    host = FakeHost()
    hardware(host)
    host.op("install", 1)
    host.op("check", None)
    host.execute("check")
    assert hardware_part(host, IbPorts) == ()
    assert [name for name, _ in host.asked] == ["HostHardware", "IbStat"]


def test_a_class_that_is_no_section_is_refused():
    with pytest.raises(KeyError):
        hardware_part(FakeHost(), Hardware)


def test_prepared_reading_outlives_changes_and_shares_the_memo():
    host = FakeHost()
    prepared = prepared_hardware(host)
    assert hardware(host) is prepared  # one reading during prepare, not one per cache
    host.op("driver", 3)
    host.op("node_facts", None)
    host.execute("node_facts")
    assert hardware(host) is not prepared  # the driver install changed the host ...
    assert prepared_hardware(host) is prepared  # ... but "before this run changed anything" stays
    assert [name for name, _ in host.asked] == ["HostHardware", "HostHardware"]
    assert list(run_cache(host.state, "facts.memo")) == [host.name]  # one home: the run cache


def test_prepared_reading_is_taken_once_when_a_role_runs_alone():
    host = FakeHost()
    first = prepared_hardware(host)
    assert prepared_hardware(host) is first and len(host.asked) == 1
