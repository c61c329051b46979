"""Meminfo on every real capture (expected values from tests/fixtures/hw/SOURCES.md)."""

from pathlib import Path

import pytest

from deepseek_infra.facts.memory import (
    HUGEPAGES_COMMAND,
    Hugepages,
    Meminfo,
    parse_hugepages_sysfs,
    parse_meminfo,
)

PROC = Path(__file__).parents[3] / "fixtures" / "hw" / "proc"

# file -> subset of expected keys; None = the line is absent from the capture.
MEMINFO_EXPECTED = {
    "tool_man-sys7048gr-4x2080ti-meminfo.txt": {
        "MemTotal": 49158852, "AnonHugePages": 4149248, "HugePages_Total": 0,
        "HugePages_Free": 0, "Hugepagesize": 2048, "Hugetlb": 0, "DirectMap1G": 18874368,
        "mem_total_mb": 48006, "hugepages_total": 0, "hugepages_free": 0,
        "hugepage_size_kb": 2048,
    },
    "sonar-testdata-workstation-16gb-meminfo.txt": {
        "MemTotal": 16093776, "ShmemHugePages": 890880, "HugePages_Total": 0,
        "Hugepagesize": 2048, "Zswap": 0, "SecPageTables": 0,
        "mem_total_mb": 15716, "hugepages_total": 0, "hugepage_size_kb": 2048,
    },
    "blog-k8s-master-256gb-1g-hugepages-meminfo.txt": {
        "MemTotal": 264069988, "HugePages_Total": 10, "HugePages_Free": 10,
        "HugePages_Rsvd": 0, "HugePages_Surp": 0, "Hugepagesize": 1048576,
        "Hugetlb": 10485760, "DirectMap1G": 252706816, "VmallocTotal": 34359738367,
        "mem_total_mb": 257880, "hugepages_total": 10, "hugepages_free": 10,
        "hugepage_size_kb": 1048576,
    },
    "l2fwd-nv-gpudirect-server-meminfo-grep-huge.txt": {
        "HugePages_Total": 16, "HugePages_Free": 15, "Hugepagesize": 1048576,
        "Hugetlb": 16777216, "MemTotal": None,
        "mem_total_mb": None, "hugepages_total": 16, "hugepages_free": 15,
        "hugepage_size_kb": 1048576,
    },
}
# Lines in each capture, so a parser that drops keys is caught.
MEMINFO_KEY_COUNTS = {
    "tool_man-sys7048gr-4x2080ti-meminfo.txt": 51,
    "sonar-testdata-workstation-16gb-meminfo.txt": 54,
    "blog-k8s-master-256gb-1g-hugepages-meminfo.txt": 53,
    "l2fwd-nv-gpudirect-server-meminfo-grep-huge.txt": 8,
}
CONVENIENCE_KEYS = {"mem_total_mb", "hugepages_total", "hugepages_free", "hugepage_size_kb"}


def test_every_meminfo_capture_has_expectations():
    captures = {path.name for path in PROC.glob("*meminfo*")}
    assert captures == set(MEMINFO_EXPECTED), "new capture in proc/: add its expected values"


@pytest.mark.parametrize("name", sorted(MEMINFO_EXPECTED))
def test_parse_meminfo_capture(name):
    parsed = parse_meminfo((PROC / name).read_text().splitlines())
    for key, expected in MEMINFO_EXPECTED[name].items():
        assert parsed.get(key) == expected, f"{name}: {key}: expected {expected!r}, found {parsed.get(key)!r}"
    assert len(set(parsed) - CONVENIENCE_KEYS) == MEMINFO_KEY_COUNTS[name]


def test_parse_meminfo_keeps_parenthesised_keys_and_skips_noise():
    parsed = parse_meminfo(["Active(anon):    4592252 kB", "garbage line", "", "Foo: bar kB"])
    assert parsed["Active(anon)"] == 4592252
    assert "Foo" not in parsed and "garbage line" not in parsed


def test_meminfo_fact_wiring():
    fact = Meminfo()
    assert fact.command() == "cat /proc/meminfo"
    assert fact.default() == {}
    assert fact.process(["MemTotal: 2048 kB"])["mem_total_mb"] == 2


# Two NUMA nodes with 1 GiB pages split 8/8 and 2 MiB pages unused, as grep -H prints them.
HUGEPAGES_SYSFS = [
    "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages:16",
    "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages:0",
    "/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages:15",
    "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages:0",
    "/sys/devices/system/node/node0/hugepages/hugepages-1048576kB/nr_hugepages:8",
    "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages:0",
    "/sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages:8",
    "/sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages:0",
]


def test_parse_hugepages_sysfs_sizes_and_nodes():
    assert parse_hugepages_sysfs(HUGEPAGES_SYSFS) == {
        "sizes_kb": {1048576: {"total": 16, "free": 15}, 2048: {"total": 0, "free": 0}},
        "per_node": {0: {1048576: 8, 2048: 0}, 1: {1048576: 8, 2048: 0}},
    }


def test_parse_hugepages_sysfs_without_numa_sysfs_or_hugetlb():
    only_global = HUGEPAGES_SYSFS[:4]
    assert parse_hugepages_sysfs(only_global)["per_node"] == {}
    assert parse_hugepages_sysfs([]) == {"sizes_kb": {}, "per_node": {}}
    assert Hugepages().default() == {"sizes_kb": {}, "per_node": {}}


def test_parse_hugepages_sysfs_ignores_unrelated_lines():
    lines = ["grep: /sys/kernel/mm/hugepages/hugepages-*/nr_hugepages: No such file or directory",
             "/sys/kernel/mm/hugepages/hugepages-2048kB/surplus_hugepages:3"]
    assert parse_hugepages_sysfs(lines) == {"sizes_kb": {}, "per_node": {}}


def test_hugepages_command_reads_all_three_sources_and_never_fails():
    assert Hugepages().command() == HUGEPAGES_COMMAND
    for path in ("hugepages-*/nr_hugepages", "hugepages-*/free_hugepages", "node*/hugepages/"):
        assert path in HUGEPAGES_COMMAND
    assert HUGEPAGES_COMMAND.endswith("|| true")
