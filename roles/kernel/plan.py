"""What the kernel role wants on one host, from its settings and facts (pure: no pyinfra).

The planners are ``deepseek_infra.hugepages.plan_hugepages`` and ``deepseek_infra.bootparams``; this
module only feeds them the role's variables and turns their results into file contents
and reboot reasons. Errors name the variable a user has to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from deepseek_infra.bootparams import (
    WantedValue,
    iommu_params,
    merge_params,
    missing_from_running,
)
from deepseek_infra.cpulist import format_cpulist, parse_cpulist
from deepseek_infra.hugepages import HugepagePlan, plan_hugepages
from roles.kernel.defaults import KernelDefaults

THP_PATH: Final = "/sys/kernel/mm/transparent_hugepage/enabled"
GOVERNOR_GLOB: Final = "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor"


def hugepage_plan(config: KernelDefaults, mem_total_kb: int | None, numa_mb: Mapping[int, int | None]) -> HugepagePlan | None:
    """The pool this host should have, None when the role leaves hugepages alone.

    Raises ValueError whose message starts with the variable to change.
    """
    if not config.hugepages_requested:
        return None
    field = "kernel_hugepages_count" if config.kernel_hugepages_count is not None else "kernel_hugepages_share"
    if not mem_total_kb:
        raise ValueError(f"{field}: MemTotal of the host is unknown (/proc/meminfo unreadable)")
    try:
        return plan_hugepages(
            mem_total_kb, numa_mb, page_size=config.kernel_hugepages_size,
            count=config.kernel_hugepages_count, share=config.kernel_hugepages_share,
            per_node=config.kernel_hugepages_per_node, reserve_mb=config.kernel_hugepages_reserve_mb,
        )
    except ValueError as error:
        if "per_node" in str(error):
            field = "kernel_hugepages_per_node"
        raise ValueError(f"{field}: {error}") from None


def wanted_cmdline(config: KernelDefaults, cpu_vendor: str | None, pool: HugepagePlan | None) -> dict[str, WantedValue]:
    """Kernel parameters the host should boot with, as ``deepseek_infra.bootparams`` ``wanted``."""
    wanted: dict[str, WantedValue] = {}
    if config.kernel_iommu:
        if not cpu_vendor:
            raise ValueError("kernel_iommu: the CPU vendor is unknown (no vendor_id in /proc/cpuinfo); set kernel_iommu=False")
        try:
            wanted.update(iommu_params(cpu_vendor))
        except ValueError as error:
            raise ValueError(f"kernel_iommu: {error}; set kernel_iommu=False on this host") from None
    wanted["transparent_hugepage"] = config.kernel_thp_mode
    if pool is not None and pool.cmdline:
        wanted["hugepages"] = list(pool.cmdline)
    if config.kernel_isolated_cpus:
        cpus = format_cpulist(parse_cpulist(config.kernel_isolated_cpus))
        wanted.update({"isolcpus": cpus, "nohz_full": cpus, "rcu_nocbs": cpus})
    wanted.update(config.kernel_cmdline_extra)
    return wanted


def cmdline_params(wanted: Mapping[str, WantedValue]) -> list[tuple[str, str | None]]:
    """``wanted`` flattened, in order, to the parameters the GRUB drop-in appends."""
    return merge_params([], wanted)


def render_sysctl_conf(sysctls: Mapping[str, str], pool: HugepagePlan | None) -> str:
    lines = [
        "# Managed by deepseek-infra (kernel role); values and reasons: roles/kernel/defaults.py.",
        "# Applied at boot by systemd-sysctl; `sysctl --system` applies it now.",
    ]
    lines += [f"{key} = {value}" for key, value in sysctls.items()]
    if pool is not None:
        lines += [f"{key} = {value}" for key, value in pool.sysctl.items()]
    return "\n".join(lines) + "\n"


def render_memlock_conf(limit: str | int) -> str:
    return (
        "# Managed by deepseek-infra (kernel role): RDMA (NCCL over InfiniBand/RoCE) pins host memory.\n"
        "# systemd services do not read this file; their units set LimitMEMLOCK= (tuning role).\n"
        f"*\tsoft\tmemlock\t{limit}\n*\thard\tmemlock\t{limit}\n"
        f"root\tsoft\tmemlock\t{limit}\nroot\thard\tmemlock\t{limit}\n"
    )


NOUVEAU_BLACKLIST: Final = (
    "# Managed by deepseek-infra (kernel role): the NVIDIA driver needs the GPUs unbound.\n"
    "blacklist nouveau\noptions nouveau modeset=0\n"
)


def runtime_writes(config: KernelDefaults, pool: HugepagePlan | None) -> dict[str, str]:
    """sysfs file -> value the boot unit writes (THP mode, per-node 2M hugepages)."""
    writes = {THP_PATH: config.kernel_thp_mode}
    if pool is not None:
        writes.update({path: str(count) for path, count in pool.sysfs_paths.items()})
    return writes


def runtime_drift(
    config: KernelDefaults, pool: HugepagePlan | None, thp_mode: str | None,
    governors: list[str], cpufreq: bool, per_node_pages: Mapping[int, Mapping[int, int]],
) -> list[str]:
    """What the running kernel has that differs from the wanted runtime state (empty: none)."""
    drift = []
    if thp_mode != config.kernel_thp_mode:
        drift.append(f"THP is {thp_mode or 'unknown'}, wanted {config.kernel_thp_mode}")
    if cpufreq and config.kernel_cpu_governor and set(governors) != {config.kernel_cpu_governor}:
        drift.append(f"CPU governor is {'/'.join(governors) or 'unknown'}, wanted {config.kernel_cpu_governor}")
    if pool is not None and pool.sysfs_paths:
        for node, pages in pool.pages_per_node.items():
            found = per_node_pages.get(node, {}).get(pool.page_size_kb, 0)
            if found != pages:
                drift.append(f"node {node} has {found} x {pool.page_size} hugepages, wanted {pages}")
    return drift


def reboot_reasons(running_params: list[tuple[str, str | None]], wanted: Mapping[str, WantedValue], nouveau_loaded: bool, blacklist: bool) -> list[str]:
    reasons = [f"kernel command line lacks {missing}" for missing in missing_from_running(running_params, wanted)]
    if nouveau_loaded and blacklist:
        reasons.append("nouveau is loaded (blacklisted now; it is gone after a reboot)")
    return reasons


def parse_thp(text: str) -> str | None:
    """The selected mode of ``always [madvise] never``.

    >>> parse_thp("always [madvise] never")
    'madvise'
    """
    selected = [word[1:-1] for word in text.split() if word.startswith("[") and word.endswith("]")]
    return selected[0] if selected else None
