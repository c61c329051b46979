"""Variables of the kernel role. Each field is a host-data key; its description is the doc.

Host-independent mistakes (a share above 1, an unknown THP mode, both a count and a share)
are refused here, for the whole inventory, before any host is changed. Whether a pool fits
a host's RAM is checked by the role against that host's MemTotal, also before any change.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from deepseek_infra.bootparams import render_grub_dropin
from deepseek_infra.config import RoleDefaults
from deepseek_infra.cpulist import parse_cpulist

# Sysctls every GPU node gets (kernel_sysctls). Why each:
DEFAULT_SYSCTLS: dict[str, int] = {
    # The engine is pinned to its GPUs' node (tuning role); automatic NUMA balancing would
    # only unmap and migrate its pages, stalling it on hinting faults.
    "kernel.numa_balancing": 0,
    # Keep the engine's host memory (pinned staging buffers, KV offload) out of swap; 1, not
    # 0, still lets the kernel swap as a last resort instead of invoking the OOM killer.
    "vm.swappiness": 1,
    # Take a remote node's free memory rather than reclaim the local page cache first.
    "vm.zone_reclaim_mode": 0,
    # Engines map every safetensors shard and many CUDA/IPC regions; 65530 runs out on 600B+ models.
    "vm.max_map_count": 1048576,
    # NCCL's socket transport and the gateway's TCP buffers on 100G+ links.
    "net.core.rmem_max": 134217728,
    "net.core.wmem_max": 134217728,
}
_SYSCTL_KEY = re.compile(r"^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$")
_SYSCTL_VALUE = re.compile(r"^[A-Za-z0-9 _.,:/+=-]+$")
GOVERNORS = ("performance", "powersave", "schedutil", "ondemand", "conservative", "userspace")


class KernelDefaults(RoleDefaults):
    prefix: ClassVar[str] = "kernel_"

    # Hugepages (none by default: vLLM and SGLang do not use hugetlbfs; KVM guests and
    # DPDK-style agents do). Give a count or a share, not both.
    kernel_hugepages_size: Literal["2M", "1G"] = Field(
        default="2M", description="Hugepage size: 2M (set at runtime) or 1G (kernel command line, next boot).",
    )
    kernel_hugepages_count: int | None = Field(
        default=None, ge=0, description="Hugepages to reserve; None with no share leaves the pool alone.",
    )
    kernel_hugepages_share: float | None = Field(
        default=None, gt=0, le=1, description="Fraction of MemTotal to reserve as hugepages (instead of a count).",
    )
    kernel_hugepages_per_node: bool = Field(
        default=False, description="Spread the pool over NUMA nodes in proportion to their memory (sysfs + boot unit, or hugepages=N:n for 1G).",
    )
    kernel_hugepages_reserve_mb: int | None = Field(
        default=None, ge=0, description="RAM a pool must leave free, MB; None: max(8 GiB, 10 % of RAM).",
    )

    # Kernel command line (GRUB drop-in /etc/default/grub.d/deepseek.cfg).
    kernel_iommu: bool = Field(
        default=True, description="IOMMU on in passthrough mode for the CPU vendor (intel_iommu=on / amd_iommu=on, iommu=pt).",
    )
    kernel_isolated_cpus: str | None = Field(
        default=None, description="cpulist kept from the scheduler and timer ticks (isolcpus, nohz_full, rcu_nocbs); None: none.",
    )
    kernel_cmdline_extra: dict[str, str | None] = Field(
        default_factory=dict, description="More kernel parameters, key -> value (None for a bare flag).",
    )

    # Runtime tuning.
    kernel_thp_mode: Literal["always", "madvise", "never"] = Field(
        default="madvise", description="Transparent hugepages: madvise lets PyTorch/NCCL ask for them without stalling others.",
    )
    kernel_sysctls: dict[str, int | str] = Field(
        default_factory=lambda: dict(DEFAULT_SYSCTLS), description="Sysctls written to /etc/sysctl.d/90-deepseek.conf (see DEFAULT_SYSCTLS).",
    )
    kernel_sysctls_extra: dict[str, int | str] = Field(
        default_factory=dict, description="Site sysctls merged over kernel_sysctls.",
    )
    kernel_cpu_governor: Literal[GOVERNORS] | None = Field(  # type: ignore[valid-type]
        default="performance", description="cpufreq governor for every CPU; None leaves it alone.",
    )
    kernel_memlock: Literal["unlimited"] | int = Field(
        default="unlimited", description="memlock limit (KiB or unlimited) for all users: RDMA pins host memory.",
    )
    kernel_blacklist_nouveau: bool = Field(
        default=True, description="Blacklist nouveau so the NVIDIA driver can bind the GPUs (initramfs rebuilt when changed).",
    )

    @field_validator("kernel_memlock")
    @classmethod
    def _memlock(cls, value: str | int) -> str | int:
        if isinstance(value, int) and value < 64:
            raise ValueError("expected 'unlimited' or at least 64 KiB")
        return value

    @field_validator("kernel_isolated_cpus")
    @classmethod
    def _cpulist(cls, text: str | None) -> str | None:
        if text is not None:
            try:
                cpus = parse_cpulist(text)
            except ValueError as error:
                raise ValueError(f"not a cpulist ({error})") from None
            if not cpus:
                raise ValueError("empty cpulist; use None for no isolated CPUs")
            if 0 in cpus:
                raise ValueError("CPU 0 is the boot CPU and cannot be isolated")
        return text

    @field_validator("kernel_cmdline_extra")
    @classmethod
    def _params(cls, params: dict[str, str | None]) -> dict[str, str | None]:
        try:
            render_grub_dropin(list(params.items()))
        except ValueError as error:
            raise ValueError(str(error)) from None
        return params

    @field_validator("kernel_sysctls", "kernel_sysctls_extra")
    @classmethod
    def _sysctls(cls, sysctls: dict[str, int | str]) -> dict[str, int | str]:
        for key, value in sysctls.items():
            if not _SYSCTL_KEY.match(key):
                raise ValueError(f"{key!r} is not a sysctl name (a.b.c)")
            if key == "vm.nr_hugepages":
                raise ValueError("vm.nr_hugepages is managed by kernel_hugepages_count / kernel_hugepages_share")
            if not _SYSCTL_VALUE.match(str(value)):
                raise ValueError(f"{key}: value {value!r} has characters a sysctl.d line cannot hold")
        return sysctls

    # Field validators (not a model validator) so that the error names the field.
    @field_validator("kernel_hugepages_share")
    @classmethod
    def _one_pool_size(cls, share: float | None, info: ValidationInfo) -> float | None:
        if share is not None and info.data.get("kernel_hugepages_count") is not None:
            raise ValueError("give kernel_hugepages_count or kernel_hugepages_share, not both")
        return share

    @field_validator("kernel_hugepages_per_node")
    @classmethod
    def _per_node_needs_a_size(cls, per_node: bool, info: ValidationInfo) -> bool:
        sized = info.data.get("kernel_hugepages_count") is not None or info.data.get("kernel_hugepages_share") is not None
        if per_node and not sized:
            raise ValueError("set kernel_hugepages_count or kernel_hugepages_share too")
        return per_node

    @property
    def hugepages_requested(self) -> bool:
        return self.kernel_hugepages_count is not None or self.kernel_hugepages_share is not None

    @property
    def sysctls(self) -> dict[str, str]:
        merged = {**self.kernel_sysctls, **self.kernel_sysctls_extra}
        return {key: str(value) for key, value in sorted(merged.items())}
