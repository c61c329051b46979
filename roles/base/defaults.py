"""Variables of the base role. Each field is a host-data key; its description is the doc."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from deepseek_infra.config import RoleDefaults


class BaseDefaults(RoleDefaults):
    prefix: ClassVar[str] = "base_"

    # Packages.
    base_packages: tuple[str, ...] = Field(
        default=(
            "ca-certificates", "curl", "gnupg", "jq", "pciutils", "numactl",
            "rsync", "lsof", "sudo", "chrony",
        ),
        description="Packages every node needs (time sync, discovery tools, transfer tools).",
    )
    base_extra_packages: tuple[str, ...] = Field(
        default=(), description="Site-specific packages added to base_packages.",
    )
    base_apt_cache_valid_s: int = Field(
        default=3600, ge=0, description="Skip `apt-get update` when the cache is younger than this.",
    )

    # Time sync.
    base_ntp_servers: tuple[str, ...] = Field(
        default=(),
        description="NTP servers for chrony; empty keeps the distribution's pool (set it on air-gapped sites).",
    )

    # Service account.
    base_service_uid: int | None = Field(
        default=None, ge=100, le=65533,
        description="Fixed UID/GID for the deepseek account (same on every node for NFS); None lets the OS pick.",
    )

    @field_validator("base_packages", "base_extra_packages")
    @classmethod
    def _package_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not name or not all(c.isalnum() or c in "+-.:=~" for c in name):
                raise ValueError(f"{name!r} is not a Debian package name")
        return names
