"""deepseek_infra.hugepages against the meminfo/cmdline captures in tests/fixtures/hw/proc/ (SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepseek_infra.facts.kernel import parse_cmdline
from deepseek_infra.facts.memory import parse_meminfo
from deepseek_infra.facts.numa import parse_numactl_hardware
from deepseek_infra.hugepages import default_reserve_mb, plan_hugepages

PROC = Path(__file__).resolve().parents[2] / "fixtures" / "hw" / "proc"


def meminfo(name: str) -> dict:
    return parse_meminfo((PROC / name).read_text().split("\n"))


K8S = meminfo("blog-k8s-master-256gb-1g-hugepages-meminfo.txt")  # MemTotal 264069988 kB
WORKSTATION = meminfo("sonar-testdata-workstation-16gb-meminfo.txt")  # MemTotal 16093776 kB


def test_default_reserve_is_8_gib_or_10_percent():
    assert default_reserve_mb(WORKSTATION["mem_total_mb"]) == 8192  # 10 % would be 1571 MB
    assert default_reserve_mb(K8S["mem_total_mb"]) == 25788  # 10 % of 257880 MB


def test_k8s_host_existing_1g_pool_is_reproduced():
    plan = plan_hugepages(K8S["MemTotal"], {0: K8S["mem_total_mb"]}, "1G", count=K8S["hugepages_total"])
    assert plan.page_size_kb == K8S["hugepage_size_kb"] == 1048576
    assert plan.total_mb * 1024 == K8S["Hugetlb"]  # 10 x 1 GiB = 10485760 kB
    assert plan.sysctl == {} and plan.sysfs_paths == {}  # 1G: command line only
    assert plan.cmdline == [("default_hugepagesz", "1G"), ("hugepagesz", "1G"), ("hugepages", "10")]


def test_k8s_host_limit_is_memtotal_minus_reserve():
    # 257880 MB - 25788 MB reserve = 232092 MB: 226 x 1 GiB fit, 227 do not.
    assert plan_hugepages(K8S["MemTotal"], {}, "1G", count=226).total_mb == 231424
    with pytest.raises(ValueError) as error:
        plan_hugepages(K8S["MemTotal"], {}, "1G", count=227)
    message = str(error.value)
    assert "232448 MB" in message and "257880 MB" in message and "25788 MB" in message


def test_workstation_share_of_ram_as_2m_sysctl():
    plan = plan_hugepages(WORKSTATION["MemTotal"], {0: 15716}, share=0.4)
    assert plan.total_pages == 16093776 * 4 // 10 // 2048 == 3143
    assert plan.sysctl == {"vm.nr_hugepages": 3143}
    assert plan.cmdline == [] and plan.pages_per_node == {}
    assert "3143 x 2M hugepages = 6286 MB" in plan.explain()


def test_workstation_half_of_ram_eats_into_the_8_gib_floor():
    # 3929 pages = 7858 MB > 15716 - 8192 MB
    with pytest.raises(ValueError, match="7858 MB.*15716 MB.*8192 MB"):
        plan_hugepages(WORKSTATION["MemTotal"], {0: 15716}, share=0.5)
    assert plan_hugepages(WORKSTATION["MemTotal"], {}, share=0.5, reserve_mb=4096).total_pages == 3929


def test_l2fwd_server_boot_parameters_are_reproduced():
    # That capture is `grep -i huge /proc/meminfo`: no MemTotal, so a 32 GiB host is assumed.
    huge = parse_meminfo((PROC / "l2fwd-nv-gpudirect-server-meminfo-grep-huge.txt").read_text().split("\n"))
    assert huge["mem_total_mb"] is None
    plan = plan_hugepages(32 * 1024 * 1024, {}, "1G", count=huge["hugepages_total"])
    booted = parse_cmdline((PROC / "l2fwd-nv-gpudirect-server-cmdline.txt").read_text().split("\n"))
    assert plan.cmdline == [(k, v) for k, v in booted["params"] if "hugepage" in k]
    assert plan.page_size_kb == huge["hugepage_size_kb"]


def test_per_node_2m_spreads_by_node_memory():
    # p5en numactl: node 0 1023918 MB, node 1 1024023 MB (no meminfo of that host exists).
    numa = parse_numactl_hardware(
        (PROC.parent / "numactl" / "p5en48xl-h200x8.txt").read_text().split("\n")
    )
    sizes = {node: values["memory_mb"] for node, values in numa["nodes"].items()}
    plan = plan_hugepages(sum(sizes.values()) * 1024, sizes, count=1001, per_node=True)
    assert plan.pages_per_node == {0: 500, 1: 501}  # 500.45 / 500.55
    assert plan.sysfs_paths == {
        "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages": 500,
        "/sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages": 501,
    }
    assert plan.sysctl == {} and plan.cmdline == []


def test_per_node_1g_uses_node_format_and_skips_memoryless_nodes():
    plan = plan_hugepages(400 * 1024**2, {0: 200_000, 1: 100_000, 2: 0}, "1G", count=30, per_node=True)
    assert plan.pages_per_node == {0: 20, 1: 10}
    assert plan.cmdline[-1] == ("hugepages", "0:20,1:10")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"count": 1, "share": 0.1}, "exactly one"),
        ({}, "exactly one"),
        ({"count": 1, "page_size": "4M"}, "page_size"),
        ({"share": 1.5}, "share"),
        ({"share": 0}, "share"),
        ({"count": -1}, "count"),
        ({"count": 1, "per_node": True}, "per_node"),
    ],
)
def test_bad_requests_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plan_hugepages(WORKSTATION["MemTotal"], {}, **kwargs)
