"""LAB SIMULATION: the container toolkit, DCGM and dcgm-exporter of the lab's NVIDIA mirror."""

from __future__ import annotations

from lab.mirror.debs import Package, _sim

CONTAINER_TOOLKIT = "1.17.4-1"
DCGM = "1:3.3.9"
# dcgm-exporter release built against that DCGM (NVIDIA tags it <dcgm>-<exporter>).
DCGM_EXPORTER = "3.3.9-3.6.1-1"


def tool_packages() -> list[Package]:
    """Container toolkit, DCGM and dcgm-exporter (their versions do not follow the driver)."""
    ctk = CONTAINER_TOOLKIT.split("-")[0]
    return [
        Package("nvidia-container-toolkit-base", CONTAINER_TOOLKIT, "NVIDIA Container Toolkit Base", files={
            "usr/bin/nvidia-ctk": (_sim("nvidia-ctk", VERSION=ctk), 0o755)}),
        Package("nvidia-container-toolkit", CONTAINER_TOOLKIT, "NVIDIA Container toolkit",
                depends=(f"nvidia-container-toolkit-base (= {CONTAINER_TOOLKIT})",), files={
                    "usr/bin/nvidia-container-runtime": (_sim("nvidia-container-runtime"), 0o755)}),
        Package("datacenter-gpu-manager", DCGM, "NVIDIA Data Center GPU Manager (DCGM)", files={
            "usr/bin/nv-hostengine": (_sim("nv-hostengine", VERSION=DCGM.split(":")[-1]), 0o755),
            "lib/systemd/system/nvidia-dcgm.service": (_sim("nvidia-dcgm.service"), 0o644)}),
        Package("datacenter-gpu-manager-exporter", DCGM_EXPORTER, "NVIDIA DCGM exporter for Prometheus",
                depends=(f"datacenter-gpu-manager (= {DCGM})",), files={
                    "usr/bin/dcgm-exporter": (_sim("dcgm-exporter", VERSION=DCGM_EXPORTER.rsplit("-", 1)[0]), 0o755)}),
    ]
