"""Variables of the docker role. Each field is a host-data key; its description is the doc."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from deepseek_infra.config import PackageVersionSetting, RoleDefaults
from deepseek_infra.docker_config import managed_settings
from deepseek_infra.versions import PackageVersion


class DockerDefaults(RoleDefaults):
    prefix: ClassVar[str] = "docker_"

    # Engine.
    docker_engine: Literal["docker.io", "docker-ce"] = Field(
        default="docker.io", description="Docker engine: the distribution's docker.io, or docker-ce from docker_ce_repo_url.",
    )
    docker_ce_repo_url: str | None = Field(
        default=None, description="Docker CE repository (or its internal mirror) for the node's distribution (engine docker-ce).",
    )
    docker_ce_repo_key: str | None = Field(
        default=None, description="Path on the controller to that repository's signing key (.asc or .gpg; engine docker-ce).",
    )

    # NVIDIA container toolkit (from the NVIDIA stack's source, roles/nvidia_repo).
    docker_nvidia_container_toolkit_version: PackageVersionSetting = Field(
        default=PackageVersion.parse("1.17.4-1"), description="NVIDIA container toolkit version: nvidia-container-toolkit, -base, libnvidia-container-tools and libnvidia-container1 pinned and held at it.",
    )
    docker_default_runtime: Literal["nvidia", "runc"] | None = Field(
        default=None, description="default-runtime in daemon.json: nvidia makes every container a GPU container; None leaves the key alone.",
    )
    docker_cdi: bool = Field(
        default=True, description="Generate the CDI spec /etc/cdi/nvidia.yaml (nvidia-ctk cdi generate) when missing or the driver changed; only with Docker >= 25 (CDI) and a toolkit < 1.18 (which refreshes its own spec).",
    )

    # daemon.json (merged into the existing file; other keys are kept).
    docker_log_driver: str = Field(default="json-file", description="Container log driver.")
    docker_log_opts: dict[str, str] = Field(
        default_factory=lambda: {"max-size": "100m", "max-file": "3"},
        description="Log driver options: rotation (max-size, max-file) so container logs cannot fill the disk.",
    )
    docker_data_root: str | None = Field(
        default=None, description="Docker's data-root, on the NVMe data volume (e.g. /var/lib/deepseek/docker); None keeps /var/lib/docker.",
    )
    docker_storage_driver: Literal["overlay2", "fuse-overlayfs", "vfs"] | None = Field(
        default=None, description="storage-driver in daemon.json; None lets Docker choose (overlay2).",
    )
    docker_daemon_extra: dict[str, Any] = Field(
        default_factory=dict, description="More daemon.json keys merged the same way (site settings, e.g. registry-mirrors).",
    )

    @field_validator("docker_ce_repo_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("docker_ce_repo_url", "docker_ce_repo_key")
    @classmethod
    def _needed_by_engine(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("docker_engine") == "docker-ce" and not value:
            raise ValueError("required when docker_engine='docker-ce'")
        return value

    @field_validator("docker_nvidia_container_toolkit_version")
    @classmethod
    def _version(cls, value: PackageVersion) -> PackageVersion:
        if not value.revision:
            raise ValueError("expected a Debian package version with its revision, e.g. 1.17.4-1")
        return value

    @field_validator("docker_daemon_extra")
    @classmethod
    def _extra(cls, extra: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # Same checks the role applies, so a conflict is refused for the whole inventory first.
        managed_settings(data_root=info.data.get("docker_data_root"), extra=extra)
        return extra

    @field_validator("docker_data_root")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("expected an absolute path")
        return value

    def managed(self) -> dict[str, Any]:
        """The daemon.json keys this role owns on a host with these settings."""
        return managed_settings(
            default_runtime=self.docker_default_runtime, log_driver=self.docker_log_driver,
            log_opts=self.docker_log_opts, data_root=self.docker_data_root,
            storage_driver=self.docker_storage_driver, extra=self.docker_daemon_extra,
        )
