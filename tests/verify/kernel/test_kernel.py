"""The kernel role's persistent files, reboot request and (on real hosts) runtime state.

Expected values are recomputed here with the role's own planners from the settings the
role recorded (/etc/deepseek/kernel.json, validated again as KernelDefaults) and from
what the host presents now (/proc/meminfo, numactl, /proc/cpuinfo, /proc/cmdline).
"""

from __future__ import annotations

import json

import pytest

from deepseek_infra.bootparams import GRUB_DROPIN_PATH, render_grub_dropin
from deepseek_infra.facts.kernel import parse_cmdline
from deepseek_infra.facts.numa import parse_numactl_hardware
from deepseek_infra.facts.reboot import (
    REBOOT_REQUIRED_COMMAND,
    REBOOT_REQUIRED_DIR,
    parse_reboot_required,
)
from roles.kernel.tasks import (
    MEMLOCK_FILE,
    NOUVEAU_FILE,
    RECORD_FILE,
    SYSCTL_FILE,
    UNIT,
    UNIT_FILE,
    plan,
)
from roles.kernel.defaults import KernelDefaults
from roles.kernel.facts import KERNEL_STATE_COMMAND, parse_kernel_state


def _name(host) -> str:
    return host.backend.hostname


@pytest.fixture(scope="module")
def record(host) -> dict:
    record_file = host.file(RECORD_FILE)
    if not record_file.exists:
        pytest.fail(f"{_name(host)}: {RECORD_FILE}: expected the kernel role's record, found none (deploy/kernel.py not run?)")
    return json.loads(record_file.content_string)


@pytest.fixture(scope="module")
def settings(record) -> KernelDefaults:
    return KernelDefaults(**record["settings"])


@pytest.fixture(scope="module")
def state(host) -> dict:
    return parse_kernel_state(host.check_output(KERNEL_STATE_COMMAND).splitlines())


@pytest.fixture(scope="module")
def pool(host, settings, state):
    mem_total_kb = int(host.check_output("awk '/^MemTotal:/ {print $2}' /proc/meminfo"))
    numa = host.run("numactl --hardware")
    nodes = parse_numactl_hardware(numa.stdout.splitlines())["nodes"] if numa.rc == 0 else {}
    numa_mb = {node: info["memory_mb"] for node, info in nodes.items()} or state["node_memory_mb"]
    return plan.hugepage_plan(settings, mem_total_kb, numa_mb)


@pytest.fixture(scope="module")
def wanted(settings, state, pool) -> dict:
    return plan.wanted_cmdline(settings, state["cpu_vendor"], pool)


def test_record_matches_a_fresh_plan(host, record, pool, wanted):
    where = f"{_name(host)}: {RECORD_FILE}"
    params = [f"{k}={v}" if v is not None else k for k, v in plan.cmdline_params(wanted)]
    assert record["cmdline"] == params, f"{where}: cmdline: expected {params}, found {record['cmdline']}"
    found = record["hugepages"]
    expected = None if pool is None else (pool.page_size, pool.total_pages, {str(n): p for n, p in pool.pages_per_node.items()})
    got = None if found is None else (found["page_size"], found["total_pages"], found["pages_per_node"])
    assert got == expected, f"{where}: hugepages: expected {expected}, found {got}"


def test_grub_dropin(host, wanted):
    expected = render_grub_dropin(plan.cmdline_params(wanted))
    dropin = host.file(GRUB_DROPIN_PATH)
    assert dropin.exists, f"{_name(host)}: {GRUB_DROPIN_PATH}: expected the kernel parameters drop-in, found none"
    assert dropin.content_string == expected, (
        f"{_name(host)}: {GRUB_DROPIN_PATH}: expected {expected!r}, found {dropin.content_string!r}"
    )


def test_grub_config_carries_the_parameters(host, wanted, state):
    if not state["grub"] or not state["update_grub"]:
        pytest.skip(f"{_name(host)}: no GRUB on this host (/etc/default/grub or update-grub missing); the role reported the parameters to add")
    grub_cfg = host.file("/boot/grub/grub.cfg")
    for key, value in plan.cmdline_params(wanted):
        word = key if value is None else f"{key}={value}"
        assert grub_cfg.contains(word), f"{_name(host)}: /boot/grub/grub.cfg: expected {word}, found it missing"


def test_sysctl_file(host, settings, pool):
    conf = host.file(SYSCTL_FILE)
    assert conf.exists, f"{_name(host)}: {SYSCTL_FILE}: expected, found none"
    expected = plan.render_sysctl_conf(settings.sysctls, pool)
    assert conf.content_string == expected, f"{_name(host)}: {SYSCTL_FILE}: expected {expected!r}, found {conf.content_string!r}"


def test_memlock_and_nouveau_files(host, settings):
    memlock = host.file(MEMLOCK_FILE)
    assert memlock.content_string == plan.render_memlock_conf(settings.kernel_memlock), (
        f"{_name(host)}: {MEMLOCK_FILE}: expected memlock {settings.kernel_memlock}, found {memlock.content_string!r}"
    )
    blacklist = host.file(NOUVEAU_FILE)
    assert blacklist.exists == settings.kernel_blacklist_nouveau, (
        f"{_name(host)}: {NOUVEAU_FILE}: expected present={settings.kernel_blacklist_nouveau}, found present={blacklist.exists}"
    )
    if settings.kernel_blacklist_nouveau:
        assert blacklist.contains("^blacklist nouveau$"), f"{_name(host)}: {NOUVEAU_FILE}: no 'blacklist nouveau' line"


def test_boot_unit(host, settings, pool):
    unit = host.file(UNIT_FILE)
    for path, value in plan.runtime_writes(settings, pool).items():
        line = f"ExecStart=/bin/sh -c 'echo {value} > {path}'"
        assert unit.contains(line.replace("[", r"\[").replace("*", r"\*")), f"{_name(host)}: {UNIT_FILE}: expected {line!r}, found it missing"
    assert host.service(UNIT).is_enabled, f"{_name(host)}: {UNIT}: expected enabled, found disabled"


def test_reboot_request_matches_the_running_kernel(host, settings, wanted, state):
    running = parse_cmdline([host.file("/proc/cmdline").content_string])["params"]
    reasons = plan.reboot_reasons(running, wanted, state["nouveau_loaded"], settings.kernel_blacklist_nouveau)
    pending = parse_reboot_required(host.check_output(REBOOT_REQUIRED_COMMAND).splitlines())
    assert pending.get("kernel") == (reasons or None), (
        f"{_name(host)}: {REBOOT_REQUIRED_DIR}/kernel.json: expected reasons {reasons or 'none (file absent)'}, "
        f"found {pending.get('kernel')}"
    )


# --- runtime: only a real host's kernel can have been changed --------------------------


@pytest.fixture
def real_host(host, in_container):
    if in_container:
        pytest.skip(f"{_name(host)}: container: it shares the host's kernel, so sysctls, THP, hugepages and the governor are written for boot only")
    return host


def test_sysctls_applied(real_host, settings, pool):
    expected = {**settings.sysctls, **({k: str(v) for k, v in pool.sysctl.items()} if pool else {})}
    for key, value in expected.items():
        found = real_host.check_output(f"sysctl -n {key}").split()
        assert found == str(value).split(), f"{_name(real_host)}: sysctl {key}: expected {value}, found {' '.join(found)}"


def test_thp_mode(real_host, settings, state):
    assert state["thp"] == settings.kernel_thp_mode, (
        f"{_name(real_host)}: {plan.THP_PATH}: expected {settings.kernel_thp_mode}, found {state['thp']}"
    )


def test_cpu_governor(real_host, settings, state):
    if not state["cpufreq"]:
        pytest.skip(f"{_name(real_host)}: no cpufreq driver (/sys/devices/system/cpu/cpu0/cpufreq absent)")
    if settings.kernel_cpu_governor is None:
        pytest.skip(f"{_name(real_host)}: kernel_cpu_governor is None: governor left alone")
    assert set(state["governors"]) == {settings.kernel_cpu_governor}, (
        f"{_name(real_host)}: scaling_governor: expected {settings.kernel_cpu_governor} on every CPU, found {state['governors']}"
    )


def test_hugepages_allocated_per_node(real_host, pool):
    if pool is None:
        pytest.skip(f"{_name(real_host)}: kernel_hugepages_* not set: pool left alone")
    if pool.page_size == "1G":
        pytest.skip(f"{_name(real_host)}: 1G pages come from the kernel command line (checked by the reboot request)")
    if pool.sysfs_paths:
        for path, pages in pool.sysfs_paths.items():
            found = int(real_host.file(path).content_string)
            assert found == pages, f"{_name(real_host)}: {path}: expected {pages} pages, found {found}"
    else:
        found = int(real_host.check_output("sysctl -n vm.nr_hugepages"))
        assert found == pool.total_pages, f"{_name(real_host)}: vm.nr_hugepages: expected {pool.total_pages}, found {found}"
