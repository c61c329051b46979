"""deepseek_infra.facts.infiniband against the real captures in tests/fixtures/hw/ib/ (see SOURCES.md)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all

from deepseek_infra.facts.infiniband import (
    IbDev2Netdev,
    IbStat,
    IbvDevinfo,
    parse_ibdev2netdev,
    parse_ibstat,
    parse_ibv_devinfo,
)

HW = Path(__file__).resolve().parents[3] / "fixtures" / "hw"


def capture(relative: str) -> list[str]:
    """Output lines as pyinfra hands them over: newline split off, tabs kept."""
    return (HW / relative).read_bytes().decode().split("\n")


# --- ibstat -------------------------------------------------------------------------------

IB_NDR = {"ca_type": "MT4129", "firmware": "28.39.1002", "port": 1, "state": "Active",
          "physical_state": "LinkUp", "rate_gbps": 400, "link_layer": "InfiniBand"}
ETH_UP = {"ca_type": "MT4125", "firmware": "22.38.1002", "port": 1, "state": "Active",
          "physical_state": "LinkUp", "rate_gbps": 100, "link_layer": "Ethernet"}
ETH_DOWN = {**ETH_UP, "state": "Down", "physical_state": "Disabled", "rate_gbps": 40}


def test_parse_ibstat_matches_sources() -> None:
    ports = parse_ibstat(capture("ib/gpud-h100-node-ibstat-12ca-some-down.txt"))
    expected = {f"mlx5_{n}": IB_NDR for n in (0, 3, 4, 5, 6, 9, 10, 11)}
    expected |= {"mlx5_1": ETH_UP} | {f"mlx5_{n}": ETH_DOWN for n in (2, 7, 8)}
    # Output order is the file's (lexicographic) order; the last CA has no final newline.
    assert [port["ca"] for port in ports] == [
        "mlx5_0", "mlx5_1", "mlx5_10", "mlx5_11", *(f"mlx5_{n}" for n in range(2, 10))
    ]
    assert {port["ca"]: {k: v for k, v in port.items() if k != "ca"} for port in ports} == expected


def test_parse_ibstat_dual_port_adapter() -> None:
    lines = [
        "CA 'mlx4_0'",
        "  CA type: MT4099",
        "  Number of ports: 2",
        "  Firmware version: 2.42.5000",
        "  Port 1:",
        "    State: Active",
        "    Physical state: LinkUp",
        "    Rate: 56",
        "    Link layer: InfiniBand",
        "  Port 2:",
        "    State: Down",
        "    Physical state: Polling",
        "    Rate: 2.5",
        "    Link layer: InfiniBand",
    ]
    ports = parse_ibstat(lines)
    assert [(p["ca"], p["port"], p["state"], p["rate_gbps"]) for p in ports] == [
        ("mlx4_0", 1, "Active", 56),
        ("mlx4_0", 2, "Down", 2.5),
    ]
    assert {p["firmware"] for p in ports} == {"2.42.5000"}


def test_parse_ibstat_empty() -> None:
    assert parse_ibstat([]) == IbStat.default() == []


# --- ibv_devinfo --------------------------------------------------------------------------


def test_parse_ibv_devinfo_single_hca_tabs() -> None:
    (hca,) = parse_ibv_devinfo(capture("ib/slurmv4-aihub0001-ibv_devinfo-mlx5_0.txt"))
    assert hca == {
        "hca_id": "mlx5_0",
        "transport": "InfiniBand",
        "fw_ver": "28.43.2026",
        "node_guid": "a088:c203:0063:5a20",
        "sys_image_guid": "a088:c203:0063:5a20",
        "vendor_id": "0x02c9",
        "vendor_part_id": 4129,
        "hw_ver": "0x0",
        "board_id": "MT_0000000838",
        "phys_port_cnt": 1,
        "ports": [
            {"port": 1, "state": "PORT_ACTIVE", "max_mtu": 4096, "active_mtu": 4096, "sm_lid": 0,
             "port_lid": 0, "port_lmc": "0x00", "link_layer": "Ethernet"}
        ],
    }


def test_parse_ibv_devinfo_four_hcas_spaces() -> None:
    hcas = parse_ibv_devinfo(capture("ib/asus-esc8000a-e12-ibv_devinfo.txt"))
    assert [(h["hca_id"], h["fw_ver"]) for h in hcas] == [
        ("mlx5_0", "28.41.1000"),
        ("mlx5_1", "28.41.1000"),
        ("mlx5_2", "28.43.2566"),
        ("mlx5_3", "28.43.2566"),
    ]
    assert {(h["vendor_part_id"], h["board_id"], h["phys_port_cnt"]) for h in hcas} == {
        (4129, "MT_0000000834", 1)
    }
    assert [[(p["port"], p["state"], p["link_layer"]) for p in h["ports"]] for h in hcas] == [
        [(1, "PORT_DOWN", "Ethernet")]
    ] * 4


def test_parse_ibv_devinfo_no_devices() -> None:
    assert parse_ibv_devinfo(["No IB devices found"]) == IbvDevinfo.default() == []


# --- ibdev2netdev -------------------------------------------------------------------------


def test_parse_ibdev2netdev_matches_sources() -> None:
    devices = parse_ibdev2netdev(capture("ib/slurmv4-aihub0007-ibdev2netdev.txt"))
    up = {0: "enp25s0np0", 1: "enp41s0np0", 2: "enp59s0np0", 3: "bond0", 5: "enp92s0np0",
          6: "enp155s0np0", 7: "enp170s0np0", 8: "enp187s0np0", 9: "bond0", 11: "enp218s0np0"}
    down = {4: "enp83s0f1np1", 10: "enp210s0f1np1"}
    expected = {f"mlx5_{n}": {"port": 1, "netdev": netdev, "up": True} for n, netdev in up.items()}
    expected |= {f"mlx5_{n}": {"port": 1, "netdev": nd, "up": False} for n, nd in down.items()}
    assert devices == expected


def test_parse_ibdev2netdev_verbose_and_crlf() -> None:
    lines = [
        "0000:19:00.0 mlx5_0 (MT4129 - MCX75310AAS-NEAT) ConnectX-7 fw 28.39.1002 port 1 (ACTIVE)"
        " ==> ibp25s0 (Up)\r",
        "0000:2a:00.0 mlx5_1 (MT4129 - MCX75310AAS-NEAT) ConnectX-7 fw 28.39.1002 port 1 (DOWN )"
        " ==> ibp42s0 (Down)\r",
    ]
    assert parse_ibdev2netdev(lines) == {
        "mlx5_0": {"port": 1, "netdev": "ibp25s0", "up": True},
        "mlx5_1": {"port": 1, "netdev": "ibp42s0", "up": False},
    }


# --- facts --------------------------------------------------------------------------------

FACT_CASES = [
    (IbStat, parse_ibstat, "ib/gpud-h100-node-ibstat-12ca-some-down.txt", "ibstat"),
    (IbvDevinfo, parse_ibv_devinfo, "ib/asus-esc8000a-e12-ibv_devinfo.txt", "ibv_devinfo"),
    (IbDev2Netdev, parse_ibdev2netdev, "ib/slurmv4-aihub0007-ibdev2netdev.txt", "ibdev2netdev"),
]


@pytest.mark.parametrize(("fact", "parse", "fixture", "binary"), FACT_CASES)
def test_fact_process_is_the_parse_function(fact, parse, fixture: str, binary: str) -> None:
    lines = capture(fixture)
    assert fact().process(lines) == parse(lines)
    assert fact().command() == binary
    assert fact().requires_command() == binary


def _local_fact(fact, path: str):
    """Collect ``fact`` from this machine through pyinfra's @local connector with ``PATH``."""
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    connect_all(state)
    return inventory.get_host("@local").get_fact(fact, _env={"PATH": path}), state.failed_hosts


@pytest.mark.parametrize(("fact", "parse", "fixture", "binary"), FACT_CASES)
def test_fact_through_pyinfra_with_a_fake_tool(fact, parse, fixture, binary, tmp_path) -> None:
    script = tmp_path / binary
    script.write_text(f'#!/bin/sh\n[ "$#" = 0 ] || exit 2\ncat "{HW / fixture}"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    value, failed = _local_fact(fact, f"{tmp_path}:/usr/bin:/bin")
    assert not failed
    assert value == parse(capture(fixture))
    assert value  # the capture is not empty, so neither is the fact


@pytest.mark.parametrize("fact", [IbStat, IbvDevinfo, IbDev2Netdev])
def test_missing_tool_gives_default(fact, tmp_path: Path) -> None:
    value, failed = _local_fact(fact, f"{tmp_path}:/nonexistent")
    assert value == fact.default()
    assert not failed
