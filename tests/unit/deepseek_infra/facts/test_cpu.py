"""deepseek_infra.facts.cpu against the real captures in tests/fixtures/hw/lscpu/ (see SOURCES.md)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all

from deepseek_infra.cpulist import parse_cpulist
from deepseek_infra.facts.cpu import CpuInfo, parse_lscpu

HW = Path(__file__).resolve().parents[3] / "fixtures" / "hw"


def capture(relative: str) -> list[str]:
    """Output lines as pyinfra hands them over: newline split off, "\\r" and spaces kept."""
    return (HW / relative).read_bytes().decode().split("\n")


LSCPU_CASES = [
    pytest.param(
        "asus-esc8000a-e12-epyc9374f.txt",
        {"architecture": "x86_64", "model_name": "AMD EPYC 9374F 32-Core Processor", "cpus": 64,
         "sockets": 2, "cores_per_socket": 32, "threads_per_core": 1,
         "hypervisor_vendor": None, "virtualization_type": None},
        {0: "0-31", 1: "32-63"},
        # Flags wrapped mid-word at the terminal edge: "a|md_lbr_v2", "cmp_l|egacy", "hw_ps|tate".
        {"amd_lbr_v2", "cmp_legacy", "hw_pstate", "clflushopt", "clwb", "fsrm", "debug_swap",
         "avx512f", "rep_good"},
        {"a", "md_lbr_v2", "cmp_l", "egacy", "hw_ps", "tate", "f", "srm", "clflushoptclwb"},
        161,
        id="epyc-tree-wrapped-flags",
    ),
    pytest.param(
        "p5en48xl-h200x8-xeon8488c-kvm.txt",
        {"architecture": "x86_64", "model_name": "Intel(R) Xeon(R) Platinum 8488C", "cpus": 192,
         "sockets": 2, "cores_per_socket": 48, "threads_per_core": 2,
         "hypervisor_vendor": "KVM", "virtualization_type": "full"},
        {0: "0-47,96-143", 1: "48-95,144-191"},
        # "rep_goo|d", "rds|eed"; "avx512_fp16 |amx_tile" breaks after a trailing space.
        {"rep_good", "rdseed", "xsave", "ospke", "avx512_fp16", "amx_tile", "arch_capabilities",
         "hypervisor", "amx_bf16"},
        {"rep_goo", "d", "rds", "eed", "avx512_fp16amx_tile"},
        120,
        id="xeon-kvm-padded-headers",
    ),
]


@pytest.mark.parametrize(("name", "scalars", "numa", "has_flags", "no_flags", "flag_count"),
                         LSCPU_CASES)
def test_parse_lscpu_matches_sources(
    name: str, scalars: dict, numa: dict, has_flags: set, no_flags: set, flag_count: int
) -> None:
    info = parse_lscpu(capture(f"lscpu/{name}"))
    assert {key: info[key] for key in scalars} == scalars
    assert info["numa_nodes"] == {node: parse_cpulist(cpus) for node, cpus in numa.items()}
    flags = set(info["flags"])
    assert has_flags <= flags
    assert not no_flags & flags
    assert len(info["flags"]) == flag_count


def test_parse_lscpu_flat_layout() -> None:
    """util-linux < 2.38 prints one flat ``key: value`` list and Flags on one line."""
    lines = [
        "Architecture:        aarch64",
        "Byte Order:          Little Endian",
        "CPU(s):              72",
        "On-line CPU(s) list: 0-71",
        "Thread(s) per core:  1",
        "Core(s) per socket:  72",
        "Socket(s):           1",
        "NUMA node(s):        9",
        "Vendor ID:           ARM",
        "Model name:          Neoverse-V2",
        "NUMA node0 CPU(s):   0-71",
        "NUMA node1 CPU(s):   ",
        "Flags:               fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics  ",
    ]
    assert parse_lscpu(lines) == {
        "architecture": "aarch64",
        "model_name": "Neoverse-V2",
        "cpus": 72,
        "sockets": 1,
        "cores_per_socket": 72,
        "threads_per_core": 1,
        # A memory-only node (Grace Hopper HBM) has no CPUs.
        "numa_nodes": {0: list(range(72)), 1: []},
        "flags": ["fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics"],
        "hypervisor_vendor": None,
        "virtualization_type": None,
    }


def test_parse_lscpu_unknown_socket_count_and_crlf() -> None:
    lines = ["Architecture:  aarch64\r", "CPU(s):        4\r", "  Socket(s):   -\r"]
    info = parse_lscpu(lines)
    assert info["cpus"] == 4
    assert info["sockets"] is None
    assert info["architecture"] == "aarch64"


def test_parse_lscpu_empty() -> None:
    assert parse_lscpu([]) == CpuInfo.default() == {}
    assert parse_lscpu(["", "lscpu: failed to determine number of CPUs"]) == {}


def test_fact_process_is_the_parse_function() -> None:
    lines = capture("lscpu/p5en48xl-h200x8-xeon8488c-kvm.txt")
    assert CpuInfo().process(lines) == parse_lscpu(lines)


def test_fact_command() -> None:
    assert CpuInfo().command() == "LC_ALL=C lscpu"
    assert CpuInfo().requires_command() == "lscpu"


def _local_fact(fact, path: str):
    """Collect ``fact`` from this machine through pyinfra's @local connector with ``PATH``."""
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    connect_all(state)
    return inventory.get_host("@local").get_fact(fact, _env={"PATH": path}), state.failed_hosts


def test_fact_through_pyinfra_with_a_fake_lscpu(tmp_path: Path) -> None:
    """The fake lscpu answers only in the C locale, so this checks command() too."""
    script = tmp_path / "lscpu"
    script.write_text(
        '#!/bin/sh\n[ "$LC_ALL" = C ] || exit 3\n'
        f'cat "{HW}/lscpu/asus-esc8000a-e12-epyc9374f.txt"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    info, failed = _local_fact(CpuInfo, f"{tmp_path}:/usr/bin:/bin")
    assert not failed
    assert info["model_name"] == "AMD EPYC 9374F 32-Core Processor"
    assert info["numa_nodes"][1] == list(range(32, 64))


def test_missing_lscpu_gives_default(tmp_path: Path) -> None:
    value, failed = _local_fact(CpuInfo, f"{tmp_path}:/nonexistent")
    assert value == {}
    assert not failed
