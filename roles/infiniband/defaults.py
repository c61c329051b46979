"""Variables of the infiniband role. Each field is a host-data key; its description is the doc."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from deepseek_infra import infiniband
from deepseek_infra.config import RoleDefaults


class InfinibandDefaults(RoleDefaults):
    prefix: ClassVar[str] = "infiniband_"

    # Packages (Debian's inbox RDMA stack).
    infiniband_packages: tuple[str, ...] = Field(
        default=("rdma-core", "ibverbs-utils", "infiniband-diags", "perftest"),
        description="RDMA packages from the distribution (verbs, ibstat, perftest's ib_write_bw).",
    )
    infiniband_kernel_modules: tuple[str, ...] = Field(
        default=infiniband.KERNEL_MODULES,
        description="Kernel modules written to /etc/modules-load.d and loaded now on a real host.",
    )

    # Port checks (ibstat).
    infiniband_expected_rate_gbps: float | None = Field(
        default=None, gt=0,
        description="Lowest acceptable port rate, Gb/s (400 = NDR, 200 = HDR); None checks Active/LinkUp only.",
    )
    infiniband_check_link_layers: tuple[Literal["InfiniBand", "Ethernet"], ...] = Field(
        default=("InfiniBand",), description="Link layers whose ports are checked (Ethernet = RoCE or management).",
    )
    infiniband_check_cas: tuple[str, ...] = Field(
        default=(), description="Only these CAs are checked (e.g. mlx5_0); empty: every CA of a checked link layer.",
    )
    infiniband_on_port_problem: Literal["warn", "fail"] = Field(
        default="warn", description="A port down or below the expected rate: warn, or fail the host's deploy.",
    )

    # IPoIB.
    infiniband_ipoib_addresses: dict[str, str] = Field(
        default_factory=dict, description="Per-host IPoIB addresses, interface -> CIDR (e.g. {'ibp25s0': '10.10.0.11/16'}).",
    )
    infiniband_ipoib_method: Literal["networkd", "ifupdown"] = Field(
        default="networkd", description="Where IPoIB addresses go: systemd-networkd .network files or /etc/network/interfaces.d.",
    )
    infiniband_ipoib_mtu: int | None = Field(
        default=None, ge=256, le=65520, description="IPoIB MTU (2044 datagram, up to 65520 connected mode); None keeps the driver's.",
    )

    # Memory locking (RDMA pins host memory).
    infiniband_memlock: bool = Field(
        default=True,
        description="Ensure the kernel role's memlock limits file (kernel_memlock) is in place, so this role works alone.",
    )

    @field_validator("infiniband_packages")
    @classmethod
    def _packages(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not name or not all(c.isalnum() or c in "+-.:=~" for c in name):
                raise ValueError(f"{name!r} is not a Debian package name")
        return names

    @field_validator("infiniband_kernel_modules")
    @classmethod
    def _modules(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        infiniband.render_modules_load(names)
        return names

    @field_validator("infiniband_ipoib_addresses")
    @classmethod
    def _addresses(cls, addresses: dict[str, str]) -> dict[str, str]:
        for interface, cidr in addresses.items():
            infiniband.check_interface(interface)
            infiniband.check_cidr(cidr)
        return addresses
