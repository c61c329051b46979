"""Variables of the exporters role. Each field is a host-data key; its description is the doc."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from deepseek_infra.config import RoleDefaults, cidr_networks

_PORT = {"ge": 1, "le": 65535}


class ExportersDefaults(RoleDefaults):
    prefix: ClassVar[str] = "exporters_"

    # Node exporter (Debian package).
    exporters_node_exporter_package: str = Field(
        default="prometheus-node-exporter", description="Debian package of the Prometheus node exporter.",
    )
    exporters_node_exporter_port: int = Field(default=9100, **_PORT, description="Port the node exporter listens on.")
    exporters_textfile_dir: str = Field(
        default="/var/lib/prometheus/node-exporter",
        description="node-exporter textfile collector directory; the netcheck, weights-verify and state timers write *.prom here.",
    )

    # NVIDIA DCGM and dcgm-exporter (from the configured NVIDIA apt source or mirror).
    exporters_dcgm_enabled: bool = Field(
        default=True, description="Install DCGM and dcgm-exporter when the configured apt sources offer them.",
    )
    exporters_dcgm_packages: tuple[str, ...] = Field(
        default=("datacenter-gpu-manager-4-core", "datacenter-gpu-manager-4-cuda12"),
        description="DCGM 4 packages (host engine providing the nvidia-dcgm service; -cuda12 runs on R525+ drivers, -cuda13 needs R580+). DCGM 3 (datacenter-gpu-manager) is purged first, as NVIDIA's guide does.",
    )
    exporters_dcgm_service: str = Field(default="nvidia-dcgm", description="systemd unit of the DCGM host engine.")
    exporters_dcgm_exporter_package: str = Field(
        default="datacenter-gpu-manager-exporter", description="Package providing the dcgm-exporter binary.",
    )
    exporters_dcgm_exporter_binary: str = Field(
        default="/usr/bin/dcgm-exporter", description="Path of the dcgm-exporter binary the package installs.",
    )
    exporters_dcgm_exporter_service: str = Field(
        default="nvidia-dcgm-exporter", description="systemd unit this role writes for dcgm-exporter.",
    )
    exporters_dcgm_exporter_port: int = Field(default=9400, **_PORT, description="Port dcgm-exporter listens on.")

    # Serving endpoints scraped by Prometheus.
    exporters_engine_metrics_url: str = Field(
        default="http://127.0.0.1:8000/metrics", description="The engine's local /metrics URL (loopback only).",
    )
    exporters_engine_relay_port: int | None = Field(
        default=9401, **_PORT,
        description="Port of the read-only relay that exposes only the engine's /metrics to the monitoring network; None: not scraped.",
    )
    exporters_gateway_port: int | None = Field(
        default=8443, **_PORT, description="Port of the gateway whose /metrics Prometheus scrapes; None: no gateway on this host.",
    )
    exporters_gateway_metrics_path: str = Field(default="/metrics", description="Path of the gateway's metrics endpoint.")

    # Reachability and firewall.
    exporters_scrape_address: str | None = Field(
        default=None, description="Address the monitoring host scrapes this node at; None: the inventory name (ssh_hostname if set).",
    )
    exporters_monitoring_networks: tuple[str, ...] = Field(
        default=(),
        description="CIDRs allowed to reach the metrics ports (nftables); empty: loopback only.",
    )
    exporters_firewall: bool = Field(
        default=True, description="Write (and on real hosts load) the nftables rules that limit the metrics ports.",
    )

    @field_validator("exporters_dcgm_packages")
    @classmethod
    def _package_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not name or not all(c.isalnum() or c in "+-.:=~" for c in name):
                raise ValueError(f"{name!r} is not a Debian package name")
        return names

    @field_validator("exporters_monitoring_networks")
    @classmethod
    def _networks(cls, networks: tuple[str, ...]) -> tuple[str, ...]:
        return cidr_networks(networks)

    @field_validator("exporters_textfile_dir", "exporters_dcgm_exporter_binary", "exporters_gateway_metrics_path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not path.startswith("/") or any(c.isspace() or c in "\"'\\" for c in path):
            raise ValueError(f"{path!r} must be an absolute path without spaces or quotes")
        return path

    @field_validator("exporters_engine_metrics_url")
    @classmethod
    def _loopback_url(cls, url: str) -> str:
        if not url.startswith("http://") or any(c.isspace() or c in "\"'\\" for c in url):
            raise ValueError(f"{url!r} must be an http:// URL (the engine's local endpoint)")
        return url

    @field_validator("exporters_dcgm_service", "exporters_dcgm_exporter_service")
    @classmethod
    def _unit_name(cls, name: str) -> str:
        if not name or not all(c.isalnum() or c in "-_.@" for c in name):
            raise ValueError(f"{name!r} is not a systemd unit name")
        return name
