"""Variables of the nvidia_repo role: where every NVIDIA role gets its packages."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from deepseek_infra.config import RoleDefaults
from deepseek_infra.nvidia_repo import NVIDIA_REPO_BASE


class NvidiaRepoDefaults(RoleDefaults):
    prefix: ClassVar[str] = "nvidia_repo_"

    nvidia_repo_source: Literal["nvidia", "mirror", "bundle"] = Field(
        default="nvidia",
        description="Package source of the NVIDIA stack: NVIDIA's CUDA repository, an internal mirror, or an offline bundle of .debs.",
    )
    nvidia_repo_base_url: str = Field(
        default=NVIDIA_REPO_BASE,
        description="Base of NVIDIA's CUDA repositories (source nvidia); <distro>/<arch>/ is appended per node.",
    )
    nvidia_repo_mirror_url: str | None = Field(
        default=None,
        description="Internal mirror of NVIDIA's repository (source mirror), e.g. http://mirror/compute/cuda/repos/{distro}/{arch}/: {distro} and {arch} are filled in per node (debian12, x86_64).",
    )
    nvidia_repo_mirror_key: str | None = Field(
        default=None,
        description="Path on the controller to the mirror's public signing key (armored .asc or binary .gpg; source mirror).",
    )
    nvidia_repo_bundle_dir: str | None = Field(
        default=None,
        description="Directory on the controller holding the .debs of an offline bundle (source bundle); indexed on each node.",
    )

    @field_validator("nvidia_repo_base_url", "nvidia_repo_mirror_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("nvidia_repo_mirror_url", "nvidia_repo_mirror_key", "nvidia_repo_bundle_dir")
    @classmethod
    def _needed_by_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        source = info.data.get("nvidia_repo_source")
        needed = {"mirror": ("nvidia_repo_mirror_url", "nvidia_repo_mirror_key"),
                  "bundle": ("nvidia_repo_bundle_dir",)}.get(source or "", ())
        if info.field_name in needed and not value:
            raise ValueError(f"required when nvidia_repo_source={source!r}")
        return value
