"""Variables of the cuda role (toolkit, cuDNN, NCCL). The nvidia_driver role gates its
driver against them too, so an incompatible pair is refused before either is installed."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator

from deepseek_infra.compat import check_stack
from deepseek_infra.config import CudaReleaseSetting, CudnnVersionSetting, NcclVersionSetting, RoleDefaults
from deepseek_infra.versions import CudnnVersion


class CudaDefaults(RoleDefaults):
    prefix: ClassVar[str] = "cuda_"

    cuda_version: CudaReleaseSetting | None = Field(
        default=None,
        description="CUDA toolkit release to install (12.4.1 = cuda-toolkit-12-4 12.4.1-1); None installs no toolkit.",
    )
    cuda_cudnn_version: CudnnVersionSetting | None = Field(
        default=None, description="libcudnn9-cuda-<major> package version (e.g. 9.1.0.70-1); None installs no cuDNN.",
    )
    cuda_nccl_version: NcclVersionSetting | None = Field(
        default=None, description="libnccl2 package version (e.g. 2.21.5-1+cuda12.4); None installs no NCCL.",
    )
    cuda_dev_packages: bool = Field(
        default=True, description="Also install libnccl-dev and the cuDNN dev package (nccl.h, cudnn_version.h) at the same pins.",
    )
    cuda_deb_revision: str = Field(
        default="1", description="Debian revision of the cuda-toolkit-X-Y metapackage (1 in NVIDIA's repository).",
    )
    cuda_forward_compat: bool = Field(
        default=False,
        description="Run a CUDA newer than the pinned driver supports through NVIDIA's cuda-compat-X-Y package "
                    "(forward compatibility: data-center GPUs on LTSB/PB driver branches only).",
    )

    @field_validator("cuda_cudnn_version")
    @classmethod
    def _cudnn_needs_cuda(cls, value: CudnnVersion | None, info: ValidationInfo) -> CudnnVersion | None:
        # libcudnn9-cuda-<major> is named after the toolkit's major.
        cuda = info.data.get("cuda_version")
        if value is not None and cuda is None:
            raise ValueError("cuDNN packages are named after the CUDA major: set cuda_version too")
        if value is not None:
            problems = check_stack(cuda=cuda, cudnn=value)  # no build of it for this CUDA major
            if problems:
                raise ValueError(" ".join(problems).rstrip("."))
        return value

    @field_validator("cuda_deb_revision")
    @classmethod
    def _revision(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in ".+~" for c in value):
            raise ValueError("expected a Debian revision such as 1")
        return value
