"""Variables of the optional kvm role: GPU guests pinned to the host's NUMA layout.

The role runs on hosts in group ``kvm_hosts`` or with ``kvm_guests`` set.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deepseek_infra.config import RoleDefaults

_PCI = re.compile(r"^(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")


class KvmGuest(BaseModel):
    """One guest: its size, the GPUs passed through, how its memory is backed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", description="libvirt domain name.")
    vcpus: int = Field(ge=1, le=1024, description="vCPUs, each pinned 1:1 to a host CPU.")
    memory_mib: int = Field(ge=256, description="Guest RAM, MiB.")
    gpus: tuple[str, ...] = Field(default=(), description="PCI addresses passed through (VFIO), e.g. 0000:18:00.0.")
    hugepages: bool = Field(default=True, description="Back guest RAM with the host's hugepage pool (kernel_hugepages_*).")
    allow_span: bool = Field(default=False, description="Allow the vCPUs to span NUMA nodes when no single node fits.")

    @field_validator("gpus")
    @classmethod
    def _pci(cls, addresses: tuple[str, ...]) -> tuple[str, ...]:
        for address in addresses:
            if not _PCI.match(address):
                raise ValueError(f"{address!r} is not a PCI address ([dddd:]bb:ss.f)")
        normalized = tuple((a if a.count(":") == 2 else f"0000:{a}").lower() for a in addresses)
        if len(set(normalized)) != len(normalized):
            raise ValueError("a GPU is listed twice")
        return normalized


class KvmDefaults(RoleDefaults):
    prefix: ClassVar[str] = "kvm_"

    kvm_guests: tuple[KvmGuest, ...] = Field(default=(), description="Guests to define (see KvmGuest); empty: the role only installs libvirt.")
    kvm_domain_type: Literal["kvm", "qemu"] = Field(
        default="kvm", description="libvirt domain type: kvm (hardware virtualisation) or qemu (TCG emulation, labs only).",
    )
    kvm_reserved_cpus_per_node: int | None = Field(
        default=None, ge=0, le=16,
        description="Cores per node never given to vCPUs (emulator threads go there); None: tuning_housekeeping_cpus_per_node.",
    )
    kvm_packages: tuple[str, ...] = Field(
        default=("libvirt-daemon-system", "libvirt-clients", "libvirt-daemon-driver-qemu", "qemu-system-x86"),
        description="Packages for libvirt with the QEMU/KVM driver.",
    )

    @field_validator("kvm_guests")
    @classmethod
    def _unique(cls, guests: tuple[KvmGuest, ...]) -> tuple[KvmGuest, ...]:
        names = [guest.name for guest in guests]
        if len(set(names)) != len(names):
            raise ValueError(f"guest names must be unique, found {names}")
        gpus = [gpu for guest in guests for gpu in guest.gpus]
        if len(set(gpus)) != len(gpus):
            raise ValueError("a GPU is passed through to two guests")
        return guests
