"""kernel role: variable validation, and its planning against real host shapes."""

from __future__ import annotations

import subprocess

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.exceptions import DeployError

from deepseek_infra.bootparams import missing_from_running
from deepseek_infra.facts.kernel import parse_cmdline
from roles.kernel import plan
from roles.kernel.defaults import DEFAULT_SYSCTLS, KernelDefaults
from roles.kernel.facts import KERNEL_STATE_COMMAND, parse_kernel_state
from roles.settings import validate_inventory

HGX_MEM_KB = 2113226240  # lab/profiles/hgx-h100-8x memory_total_kb
HGX_NODES_MB = {0: 1031564, 1: 1032133}
WS_MEM_KB = 131374592  # workstation-rtx6000ada-2x
WS_NODES_MB = {0: 128295}

# (case, host data, field named, words in the message)
BAD = [
    ("share-above-1", {"kernel_hugepages_share": 1.5}, "kernel_hugepages_share", "less than or equal to 1"),
    ("share-zero", {"kernel_hugepages_share": 0}, "kernel_hugepages_share", "greater than 0"),
    ("count-negative", {"kernel_hugepages_count": -1}, "kernel_hugepages_count", "greater than or equal to 0"),
    ("count-and-share", {"kernel_hugepages_count": 8, "kernel_hugepages_share": 0.1}, "kernel_hugepages_share", "not both"),
    ("per-node-without-size", {"kernel_hugepages_per_node": True}, "kernel_hugepages_per_node", "kernel_hugepages_count"),
    ("page-size-unknown", {"kernel_hugepages_size": "4M"}, "kernel_hugepages_size", "'2M' or '1G'"),
    ("thp-unknown", {"kernel_thp_mode": "sometimes"}, "kernel_thp_mode", "'always', 'madvise' or 'never'"),
    ("governor-unknown", {"kernel_cpu_governor": "turbo"}, "kernel_cpu_governor", "performance"),
    ("isolate-cpu0", {"kernel_isolated_cpus": "0-7"}, "kernel_isolated_cpus", "boot CPU"),
    ("isolate-garbage", {"kernel_isolated_cpus": "all"}, "kernel_isolated_cpus", "not a cpulist"),
    ("isolate-backwards", {"kernel_isolated_cpus": "9-3"}, "kernel_isolated_cpus", "backwards"),
    ("cmdline-space", {"kernel_cmdline_extra": {"console": "tty0 ttyS0"}}, "kernel_cmdline_extra", "only [A-Za-z0-9"),
    ("cmdline-quote", {"kernel_cmdline_extra": {'a"b': None}}, "kernel_cmdline_extra", "only [A-Za-z0-9"),
    ("sysctl-bad-key", {"kernel_sysctls_extra": {"swappiness": 1}}, "kernel_sysctls_extra", "not a sysctl name"),
    ("sysctl-newline", {"kernel_sysctls_extra": {"vm.swappiness": "1\nkernel.x=1"}}, "kernel_sysctls_extra", "cannot hold"),
    ("sysctl-hugepages", {"kernel_sysctls": {"vm.nr_hugepages": 4}}, "kernel_sysctls", "kernel_hugepages_count"),
    ("memlock-tiny", {"kernel_memlock": 8}, "kernel_memlock", "at least 64"),
    ("memlock-word", {"kernel_memlock": "infinite"}, "kernel_memlock", "unlimited"),
    ("iommu-not-bool", {"kernel_iommu": "maybe"}, "kernel_iommu", "bool"),
    ("reboot-batch-zero", {"reboot_batch_size": 0}, "reboot_batch_size", "greater than or equal to 1"),
    ("reboot-timeout-short", {"reboot_timeout_s": 5}, "reboot_timeout_s", "greater than or equal to 60"),
]


@pytest.mark.parametrize(("data", "field", "words"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_values_are_refused_naming_host_and_field(data, field, words):
    state = State(Inventory(([("good", {}), ("bad", data)], {})), Config())
    with pytest.raises(DeployError) as raised:
        validate_inventory(state)
    lines = [line.strip() for line in str(raised.value).splitlines()[1:]]
    assert any(line.startswith(f"bad: {field}:") for line in lines), str(raised.value)
    assert not any(line.startswith("good") for line in lines)
    assert words.lower() in str(raised.value).lower()


def test_defaults_are_valid_and_documented():
    config = KernelDefaults()
    assert config.sysctls == {key: str(value) for key, value in sorted(DEFAULT_SYSCTLS.items())}
    assert not config.hugepages_requested
    assert KernelDefaults(kernel_sysctls_extra={"vm.swappiness": 10}).sysctls["vm.swappiness"] == "10"


# --- hugepages ---------------------------------------------------------------------------


def test_no_pool_requested_leaves_hugepages_alone():
    assert plan.hugepage_plan(KernelDefaults(), HGX_MEM_KB, HGX_NODES_MB) is None


def test_global_2m_pool_goes_to_sysctl():
    pool = plan.hugepage_plan(KernelDefaults(kernel_hugepages_count=512), WS_MEM_KB, WS_NODES_MB)
    assert pool.sysctl == {"vm.nr_hugepages": 512} and not pool.sysfs_paths and not pool.cmdline
    assert "vm.nr_hugepages = 512" in plan.render_sysctl_conf(KernelDefaults().sysctls, pool)


def test_per_node_2m_pool_goes_to_the_boot_unit():
    config = KernelDefaults(kernel_hugepages_count=512, kernel_hugepages_per_node=True)
    pool = plan.hugepage_plan(config, HGX_MEM_KB, HGX_NODES_MB)
    writes = plan.runtime_writes(config, pool)
    assert writes == {
        plan.THP_PATH: "madvise",
        "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages": "256",
        "/sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages": "256",
    }
    assert "vm.nr_hugepages" not in plan.render_sysctl_conf(config.sysctls, pool)


def test_1g_share_goes_on_the_command_line():
    config = KernelDefaults(kernel_hugepages_size="1G", kernel_hugepages_share=0.5, kernel_hugepages_per_node=True)
    pool = plan.hugepage_plan(config, HGX_MEM_KB, HGX_NODES_MB)
    params = plan.cmdline_params(plan.wanted_cmdline(config, "GenuineIntel", pool))
    assert ("default_hugepagesz", "1G") in params and ("hugepagesz", "1G") in params
    assert ("hugepages", f"0:{pool.pages_per_node[0]},1:{pool.pages_per_node[1]}") in params


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (KernelDefaults(kernel_hugepages_count=2_000_000), "kernel_hugepages_count"),
        (KernelDefaults(kernel_hugepages_share=1.0), "kernel_hugepages_share"),
        (KernelDefaults(kernel_hugepages_size="1G", kernel_hugepages_count=126), "kernel_hugepages_count"),
    ],
)
def test_impossible_pool_is_refused_naming_the_field(config, field):
    with pytest.raises(ValueError, match=rf"^{field}: .* do not fit"):
        plan.hugepage_plan(config, WS_MEM_KB, WS_NODES_MB)


def test_unknown_memtotal_is_refused():
    with pytest.raises(ValueError, match="^kernel_hugepages_count: MemTotal"):
        plan.hugepage_plan(KernelDefaults(kernel_hugepages_count=1), None, {})


# --- command line and reboot --------------------------------------------------------------


def test_iommu_per_vendor_and_isolated_cpus():
    intel = plan.wanted_cmdline(KernelDefaults(kernel_isolated_cpus="4-7,2"), "GenuineIntel", None)
    assert intel["intel_iommu"] == "on" and intel["iommu"] == "pt"
    assert intel["isolcpus"] == intel["nohz_full"] == intel["rcu_nocbs"] == "2,4-7"
    amd = plan.wanted_cmdline(KernelDefaults(), "AuthenticAMD", None)
    assert amd["amd_iommu"] == "on" and "intel_iommu" not in amd
    assert plan.wanted_cmdline(KernelDefaults(kernel_iommu=False), None, None) == {"transparent_hugepage": "madvise"}


def test_unknown_vendor_names_kernel_iommu():
    with pytest.raises(ValueError, match="^kernel_iommu: .*HygonGenuine"):
        plan.wanted_cmdline(KernelDefaults(), "HygonGenuine", None)


def test_reboot_reasons_follow_the_running_command_line():
    wanted = plan.wanted_cmdline(KernelDefaults(), "GenuineIntel", None)
    booted = parse_cmdline(["BOOT_IMAGE=/vmlinuz ro intel_iommu=on iommu=pt transparent_hugepage=madvise quiet"])["params"]
    assert plan.reboot_reasons(booted, wanted, nouveau_loaded=False, blacklist=True) == []
    stale = parse_cmdline(["BOOT_IMAGE=/vmlinuz ro iommu=off quiet"])["params"]
    reasons = plan.reboot_reasons(stale, wanted, nouveau_loaded=True, blacklist=True)
    assert reasons[:3] == [f"kernel command line lacks {m}" for m in missing_from_running(stale, wanted)]
    assert reasons[-1].startswith("nouveau is loaded")
    assert plan.reboot_reasons(booted, wanted, nouveau_loaded=True, blacklist=False) == []


def test_runtime_drift():
    config = KernelDefaults(kernel_hugepages_count=512, kernel_hugepages_per_node=True)
    pool = plan.hugepage_plan(config, HGX_MEM_KB, HGX_NODES_MB)
    settled = {0: {2048: 256}, 1: {2048: 256}}
    assert plan.runtime_drift(config, pool, "madvise", ["performance"], True, settled) == []
    drift = plan.runtime_drift(config, pool, "always", ["powersave", "performance"], True, {0: {2048: 256}})
    assert drift == [
        "THP is always, wanted madvise",
        "CPU governor is powersave/performance, wanted performance",
        "node 1 has 0 x 2M hugepages, wanted 256",
    ]
    assert plan.runtime_drift(config, None, "madvise", [], False, {}) == []  # no cpufreq: governor not judged


def test_kernel_state_parsing_and_command_on_this_machine():
    state = parse_kernel_state([
        "cpu_vendor=AuthenticAMD", "grub_default=1", "update_grub=/usr/sbin/update-grub", "update_initramfs=",
        "cpufreq=1", "governors=performance schedutil ", "thp=[always] madvise never", "nouveau_loaded=1",
        "node_mem_kb.0=1048576", "node_mem_kb.1=2097152",
    ])
    assert state == {
        "cpu_vendor": "AuthenticAMD", "grub": True, "update_grub": "/usr/sbin/update-grub", "update_initramfs": None,
        "cpufreq": True, "governors": ["performance", "schedutil"], "thp": "always", "nouveau_loaded": True,
        "node_memory_mb": {0: 1024, 1: 2048},
    }
    output = subprocess.run(["sh", "-c", KERNEL_STATE_COMMAND], capture_output=True, text=True, check=True).stdout
    here = parse_kernel_state(output.splitlines())
    assert here["node_memory_mb"], "sysfs lists at least node 0 on Linux"
    assert here["thp"] in (None, "always", "madvise", "never")
