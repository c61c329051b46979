"""kernel: boot parameters, hugepages, sysctls, THP, CPU governor, memlock, nouveau.

Everything is written persistently (GRUB drop-in, sysctl.d, limits.d, modprobe.d, a boot
unit) and, where the host allows, applied now. What only a reboot applies (command line,
nouveau still loaded) is recorded as a reboot request (``deploy/reboot.py``). In a
container the files are written, nothing is applied, and that is reported.
"""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import files, server, systemd

from deepseek_node import paths
from deepseek_infra.bootparams import GRUB_DROPIN_PATH, format_param, render_grub_dropin
from deepseek_infra.facts import host as host_facts
from deepseek_infra.hardware import Hardware
from deepseek_infra.operations import reboot, sync
from roles import template_path
from roles.kernel import plan
from roles.kernel.defaults import KernelDefaults
from roles.kernel.facts import KernelTuningState
from roles.settings import refuse_missing_hardware

SYSCTL_FILE = "/etc/sysctl.d/90-deepseek.conf"
MEMLOCK_FILE = "/etc/security/limits.d/90-deepseek-memlock.conf"
NOUVEAU_FILE = "/etc/modprobe.d/deepseek-blacklist-nouveau.conf"
UNIT = "deepseek-kernel-tuning.service"
UNIT_FILE = f"/etc/systemd/system/{UNIT}"
RECORD_FILE = f"{paths.CONFIG_DIR}/kernel.json"  # what the role wanted on this host (verify reads it)


def desired(config: KernelDefaults, hardware: Hardware, state: dict[str, Any]) -> dict[str, Any]:
    """Everything this host should get; raises DeployError naming host and field."""
    numa_mb = {node: info.memory_mb for node, info in hardware.numa.nodes.items()} or state["node_memory_mb"]
    try:
        pool = plan.hugepage_plan(config, hardware.memory.total_kb, numa_mb)
        wanted = plan.wanted_cmdline(config, state["cpu_vendor"], pool)
    except ValueError as error:
        raise DeployError(f"{host.name}: {error}; no host was changed") from None
    return {"pool": pool, "wanted": wanted, "params": plan.cmdline_params(wanted)}


@deploy("kernel: tune")
def tune(config: KernelDefaults) -> None:
    hardware = host_facts.hardware(host)
    state = host.get_fact(KernelTuningState)
    container = hardware.virtualization.container
    refuse_missing_hardware(host, hardware, config)  # CPUs and NUMA nodes named in the command line
    want = desired(config, hardware, state)
    pool = want["pool"]
    if pool is not None:
        logger.info(f"{host.name}: hugepages: " + pool.explain().replace("\n", "; "))

    _boot_command_line(want["params"], state, container)
    sync.file_synced(
        name=f"Ensure {SYSCTL_FILE} holds the GPU-serving sysctls",
        src=StringIO(plan.render_sysctl_conf(config.sysctls, pool)), dest=SYSCTL_FILE, mode="0644",
    )
    sync.file_synced(
        name="Ensure memlock is unlimited for RDMA", src=StringIO(plan.render_memlock_conf(config.kernel_memlock)),
        dest=MEMLOCK_FILE, mode="0644",
    )
    _nouveau(config, state, container)
    _runtime_unit(config, pool, state, container, hardware)
    if container:
        logger.warning(
            f"{host.name}: {container} container: sysctls, THP, hugepages and the CPU governor were "
            "written for boot, not applied (a container shares its host's kernel)"
        )
    else:
        for key, value in {**config.sysctls, **({k: str(v) for k, v in pool.sysctl.items()} if pool else {})}.items():
            server.sysctl(name=f"Ensure sysctl {key} is {value} now", key=key, value=_sysctl_value(value))

    reasons = plan.reboot_reasons(
        list(hardware.cmdline.params), want["wanted"],
        state["nouveau_loaded"], config.kernel_blacklist_nouveau,
    )
    if reasons:
        logger.warning(f"{host.name}: reboot required: {'; '.join(reasons)} (deploy/reboot.py)")
    reboot.reboot_required(name="Ensure the kernel role's reboot request is current", role="kernel", reasons=reasons)
    sync.file_synced(
        name=f"Ensure {RECORD_FILE} records what the kernel role applied",
        src=StringIO(_record(config, want)), dest=RECORD_FILE, mode="0644",
    )


def _sysctl_value(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def _boot_command_line(params: list, state: dict[str, Any], container: str | None) -> None:
    dropin = sync.file_synced(
        name=f"Ensure {GRUB_DROPIN_PATH} adds the kernel parameters",
        src=StringIO(render_grub_dropin(params)), dest=GRUB_DROPIN_PATH, mode="0644",
    )
    words = " ".join(format_param(key, value) for key, value in params)
    if not state["grub"] or not state["update_grub"]:
        missing = "/etc/default/grub" if not state["grub"] else "update-grub"
        logger.warning(
            f"{host.name}: no GRUB ({missing} not found): {GRUB_DROPIN_PATH} is written but no boot "
            f"loader reads it. Add these parameters to this host's boot loader yourself "
            f"(systemd-boot: /etc/kernel/cmdline, then `kernel-install`): {words}"
        )
    elif container:
        logger.warning(f"{host.name}: container: update-grub not run (the container does not boot)")
    else:
        server.shell(name="Regenerate grub.cfg with the new kernel parameters", commands=["update-grub"], _if=dropin.did_change)


def _nouveau(config: KernelDefaults, state: dict[str, Any], container: str | None) -> None:
    blacklist = sync.file_synced(
        name="Ensure nouveau is blacklisted", src=StringIO(plan.NOUVEAU_BLACKLIST), dest=NOUVEAU_FILE, mode="0644",
    ) if config.kernel_blacklist_nouveau else files.file(
        name="Ensure our nouveau blacklist is absent", path=NOUVEAU_FILE, present=False,
    )
    if container or not state["update_initramfs"]:
        why = f"{container} container" if container else "update-initramfs not found"
        logger.info(f"{host.name}: {why}: initramfs not regenerated (it copies {NOUVEAU_FILE} when it is)")
        return
    server.shell(
        name="Regenerate the initramfs so nouveau stays out at early boot",
        commands=["update-initramfs -u -k all"], _if=blacklist.did_change,
    )


def _runtime_unit(config: KernelDefaults, pool, state: dict[str, Any], container: str | None, hardware: Hardware) -> None:
    governor = config.kernel_cpu_governor if state["cpufreq"] else None
    if config.kernel_cpu_governor and not state["cpufreq"]:
        logger.info(f"{host.name}: /sys/devices/system/cpu/cpu0/cpufreq is absent (no cpufreq driver): governor left alone")
    unit = sync.template_synced(
        name=f"Ensure {UNIT} applies THP, per-node hugepages and the governor at boot",
        src=template_path(__package__, UNIT_FILE), dest=UNIT_FILE, mode="0644",
        writes=plan.runtime_writes(config, pool), governor=governor, governor_glob=plan.GOVERNOR_GLOB,
    )
    drift = plan.runtime_drift(
        config, pool, state["thp"], state["governors"], state["cpufreq"],
        hardware.hugepages.per_node,
    )
    if drift and not container:
        logger.info(f"{host.name}: applying now: {'; '.join(drift)}")
    systemd.service(
        name=f"Ensure {UNIT} is enabled" + ("" if container else " and has run"),
        service=UNIT, enabled=True, running=None if container else True,
        restarted=bool(drift) and not container, daemon_reload=unit.will_change,
    )


def _record(config: KernelDefaults, want: dict[str, Any]) -> str:
    pool = want["pool"]
    return json.dumps({
        "settings": config.model_dump(mode="json"),
        "cmdline": [format_param(key, value) for key, value in want["params"]],
        "hugepages": None if pool is None else {
            "page_size": pool.page_size, "total_pages": pool.total_pages,
            "pages_per_node": {str(n): p for n, p in pool.pages_per_node.items()},
            "sysctl": pool.sysctl, "sysfs": pool.sysfs_paths, "cmdline": [f"{k}={v}" for k, v in pool.cmdline],
        },
    }, indent=2, sort_keys=True) + "\n"