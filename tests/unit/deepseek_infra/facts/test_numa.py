"""deepseek_infra.facts.numa against the real captures in tests/fixtures/hw/numactl/ (see SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.exceptions import FactProcessError

from deepseek_infra.cpulist import parse_cpulist
from deepseek_infra.facts.numa import NumaHardware, parse_numactl_hardware

HW = Path(__file__).resolve().parents[3] / "fixtures" / "hw"


def capture(relative: str) -> list[str]:
    """Output lines as pyinfra hands them over: newline split off, trailing spaces kept."""
    return (HW / relative).read_bytes().decode().split("\n")


NUMACTL_CASES = [
    pytest.param(
        "asus-esc8000a-e12-rtx6000ada-x4.txt",
        {0: ("0-31", 193129, 186031), 1: ("32-63", 193477, 186364)},
        {0: {0: 10, 1: 32}, 1: {0: 32, 1: 10}},
        id="epyc-2-nodes",
    ),
    pytest.param(
        "puget-wrx90-tr7965wx-rtx6000ada-x2.txt",
        {0: ("0-23", 128295, 1724)},
        {0: {0: 10}},
        id="threadripper-1-node",
    ),
    pytest.param(
        "p5en48xl-h200x8.txt",
        {0: ("0-47,96-143", 1023918, 56650), 1: ("48-95,144-191", 1024023, 616110)},
        {0: {0: 10, 1: 21}, 1: {0: 21, 1: 10}},
        id="xeon-trailing-spaces",
    ),
]


@pytest.mark.parametrize(("name", "nodes", "distances"), NUMACTL_CASES)
def test_parse_numactl_matches_sources(name: str, nodes: dict, distances: dict) -> None:
    hardware = parse_numactl_hardware(capture(f"numactl/{name}"))
    assert hardware["nodes"] == {
        node: {"cpus": parse_cpulist(cpus), "memory_mb": size, "free_mb": free}
        for node, (cpus, size, free) in nodes.items()
    }
    assert hardware["distances"] == distances


def test_parse_numactl_memory_only_node_and_sparse_ids() -> None:
    lines = [
        "available: 2 nodes (0,2)\r",
        "node 0 cpus: 0 1 2 3\r",
        "node 0 size: 1000 MB\r",
        "node 0 free: 900 MB\r",
        "node 2 cpus:\r",
        "node 2 size: 96000 MB\r",
        "node 2 free: 95000 MB\r",
        "node distances:\r",
        "node     0    2 \r",
        "  0:   10   80 \r",
        "  2:   80   10 \r",
    ]
    assert parse_numactl_hardware(lines) == {
        "nodes": {
            0: {"cpus": [0, 1, 2, 3], "memory_mb": 1000, "free_mb": 900},
            2: {"cpus": [], "memory_mb": 96000, "free_mb": 95000},
        },
        "distances": {0: {0: 10, 2: 80}, 2: {0: 80, 2: 10}},
    }


def test_parse_numactl_rejects_short_distance_row() -> None:
    lines = ["node 0 cpus: 0", "node distances:", "node   0   1", "  0:  10"]
    with pytest.raises(ValueError, match="distance row 0: expected 2 values, found 1"):
        parse_numactl_hardware(lines)
    with pytest.raises(FactProcessError):
        NumaHardware().process(lines)


def test_parse_numactl_without_numa() -> None:
    assert parse_numactl_hardware([]) == NumaHardware.default()
    assert parse_numactl_hardware(["No NUMA available on this system"]) == {
        "nodes": {},
        "distances": {},
    }


def test_fact_process_is_the_parse_function() -> None:
    lines = capture("numactl/p5en48xl-h200x8.txt")
    assert NumaHardware().process(lines) == parse_numactl_hardware(lines)


def test_fact_command() -> None:
    assert NumaHardware().command() == "numactl --hardware"
    assert NumaHardware().requires_command() == "numactl"


def test_missing_numactl_gives_default(tmp_path: Path) -> None:
    """Through pyinfra's @local connector with a PATH that holds no numactl."""
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    connect_all(state)
    host = inventory.get_host("@local")
    value = host.get_fact(NumaHardware, _env={"PATH": f"{tmp_path}:/nonexistent"})
    assert value == {"nodes": {}, "distances": {}}
    assert not state.failed_hosts
