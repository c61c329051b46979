"""Variables of the nvidia_driver role. Each field is a host-data key; its description is the doc."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from deepseek_infra.config import DriverVersionSetting, RoleDefaults
from deepseek_infra.versions import DriverVersion


class NvidiaDriverDefaults(RoleDefaults):
    prefix: ClassVar[str] = "nvidia_driver_"

    nvidia_driver_branch: int = Field(
        default=580, ge=400, le=999,
        description="Driver branch the host tracks (R580 LTSB; R535, R595, R610 and later also supported); must be the major of nvidia_driver_version.",
    )
    nvidia_driver_version: DriverVersionSetting = Field(
        default=DriverVersion.parse("580.95.05"),
        description="Exact driver release pinned and held (e.g. 550.90.12); changing it switches the host and marks it reboot-required.",
    )
    nvidia_driver_kernel_modules: Literal["open", "proprietary"] = Field(
        default="open",
        description="GPU kernel modules: open (nvidia-kernel-open-dkms / nvidia-dkms-<branch>-open; required from Blackwell on) or proprietary.",
    )
    nvidia_driver_desktop: bool = Field(
        default=False,
        description="Also install the desktop driver (Xorg, GL, VDPAU: nvidia-driver / nvidia-driver-<branch>); servers get NVIDIA's compute-only set.",
    )
    nvidia_driver_nvlink5: bool | None = Field(
        default=None,
        description="NVLink5 system (HGX/DGX B200): also nvidia-imex and libnvsdm at the driver's version, and nvlsm; None: detected (an HCA's VPD names SW_MNG, as NVIDIA's driver container checks).",
    )
    nvidia_driver_module_build: Literal["dkms"] = Field(
        default="dkms",
        description="How the kernel module is built: dkms, for the running kernel's headers (NVIDIA's Debian 12 repository ships no precompiled modules).",
    )
    nvidia_driver_deb_revision: str | None = Field(
        default=None,
        description="One Debian revision for every driver package (a site's own rebuilds); None: the distribution's (1 on Debian, 0ubuntu1 / 1ubuntu1 on Ubuntu).",
    )
    nvidia_driver_fabricmanager_version: DriverVersionSetting | None = Field(
        default=None,
        description="Fabric manager release on NVSwitch hosts; None uses the driver's (they must be equal, the gate refuses others).",
    )
    nvidia_driver_peermem: bool | None = Field(
        default=None,
        description="Load nvidia-peermem (GPUDirect RDMA); None: when the host is in ib_fabric or has InfiniBand HCAs and an IB stack.",
    )
    nvidia_driver_persistenced: bool = Field(
        default=True, description="Enable and run nvidia-persistenced (keeps the driver initialised between jobs).",
    )
    nvidia_driver_minor_version_compat: bool = Field(
        default=False,
        description="Accept a driver at the CUDA major's minor-version-compatibility floor instead of the toolkit's own driver.",
    )

    @field_validator("nvidia_driver_deb_revision")
    @classmethod
    def _revision(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value or not all(c.isalnum() or c in ".+~" for c in value):
            raise ValueError("expected a Debian revision such as 1 or 0ubuntu1")
        return value

    @field_validator("nvidia_driver_version")
    @classmethod
    def _on_branch(cls, value: DriverVersion, info: ValidationInfo) -> DriverVersion:
        branch = info.data.get("nvidia_driver_branch")
        if branch is not None and value.branch != branch:
            raise ValueError(f"{value} is not on branch nvidia_driver_branch={branch}")
        return value
