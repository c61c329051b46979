"""LAB SIMULATION: the container toolkit, DCGM and dcgm-exporter of the lab's NVIDIA mirror,
named, versioned and depending on each other as in NVIDIA's repositories.

- Container toolkit: four packages per release. 1.17.x depends on libnvidia-container-tools
  with ``>=``, 1.18.0 on with ``=`` (NVIDIA/nvidia-container-toolkit packaging/debian/control,
  f0ea60a2); ``nvidia-ctk``, ``nvidia-container-runtime`` and ``nvidia-cdi-hook`` ship in -base
  (packaging/debian/nvidia-container-toolkit-base.install). Two releases are served, so a
  pin must hold all four against the newer one.
- DCGM: the last DCGM 3 (``datacenter-gpu-manager 1:3.3.9``) is still in NVIDIA's repository
  beside DCGM 4 (``datacenter-gpu-manager-4-core`` / ``-4-cuda12``, ``1:4.5.2-1``); the
  exporter .deb exists from dcgm-exporter 4.0, versioned by the exporter alone
  (``datacenter-gpu-manager-exporter 4.8.2-1``) and depending on
  ``datacenter-gpu-manager-4-core (>= 1:4)``. Modelled, not confirmed: DCGM 4 core declaring
  Conflicts/Replaces on DCGM 3 (both ship nv-hostengine; NVIDIA's guide purges DCGM 3 first).
"""

from __future__ import annotations

from lab.mirror.debs import Package, _sim

CONTAINER_TOOLKIT = "1.17.4-1"  # the release the docker role pins by default
CONTAINER_TOOLKIT_NEWER = "1.18.0-1"
DCGM = "1:4.5.2-1"
DCGM3 = "1:3.3.9"
DCGM_EXPORTER = "4.8.2-1"


def container_toolkit(version: str) -> list[Package]:
    ctk = version.split("-")[0]
    exact = tuple(int(x) for x in ctk.split(".")[:2]) >= (1, 18)
    tools_dep = f"libnvidia-container-tools ({'=' if exact else '>='} {version})"
    return [
        Package("libnvidia-container1", version, "NVIDIA container runtime library", files={
            f"usr/lib/x86_64-linux-gnu/libnvidia-container.so.{ctk}": (
                f"LAB SIMULATION: stand-in for libnvidia-container.so.{ctk}; not NVIDIA software.\n", 0o644)}),
        Package("libnvidia-container-tools", version, "NVIDIA container runtime library (command-line tools)",
                depends=(f"libnvidia-container1 (>= {version})",)),
        Package("nvidia-container-toolkit-base", version, "NVIDIA Container Toolkit Base", files={
            "usr/bin/nvidia-ctk": (_sim("nvidia-ctk", VERSION=ctk), 0o755),
            "usr/bin/nvidia-container-runtime": (_sim("nvidia-container-runtime"), 0o755),
            "usr/bin/nvidia-cdi-hook": ("#!/bin/sh\n# LAB SIMULATION: stand-in for nvidia-cdi-hook\nexit 0\n", 0o755)}),
        Package("nvidia-container-toolkit", version, "NVIDIA Container toolkit",
                depends=(f"nvidia-container-toolkit-base (= {version})", tools_dep)),
    ]


def tool_packages() -> list[Package]:
    """Container toolkit, DCGM and dcgm-exporter (their versions do not follow the driver)."""
    dcgm4 = DCGM.split(":")[-1].split("-")[0]
    hostengine = {"usr/bin/nv-hostengine": (_sim("nv-hostengine", VERSION=dcgm4), 0o755),
                  "usr/bin/dcgmi": (_sim("dcgmi", VERSION=dcgm4), 0o755),
                  "lib/systemd/system/nvidia-dcgm.service": (_sim("nvidia-dcgm.service"), 0o644)}
    return [
        *container_toolkit(CONTAINER_TOOLKIT),
        *container_toolkit(CONTAINER_TOOLKIT_NEWER),
        Package("datacenter-gpu-manager", DCGM3, "NVIDIA Data Center GPU Manager (DCGM 3)", files={
            "usr/bin/nv-hostengine": (_sim("nv-hostengine", VERSION=DCGM3.split(":")[-1]), 0o755),
            "usr/bin/dcgmi": (_sim("dcgmi", VERSION=DCGM3.split(":")[-1]), 0o755),
            "lib/systemd/system/nvidia-dcgm.service": (_sim("nvidia-dcgm.service"), 0o644)}),
        Package("datacenter-gpu-manager-4-core", DCGM, "NVIDIA Data Center GPU Manager (DCGM 4), core",
                conflicts=("datacenter-gpu-manager",), replaces=("datacenter-gpu-manager",), files=hostengine),
        Package("datacenter-gpu-manager-4-cuda12", DCGM, "NVIDIA DCGM 4 CUDA 12 modules",
                depends=(f"datacenter-gpu-manager-4-core (= {DCGM})",)),
        Package("datacenter-gpu-manager-exporter", DCGM_EXPORTER, "NVIDIA DCGM exporter for Prometheus",
                depends=("datacenter-gpu-manager-4-core (>= 1:4)",), files={
                    "usr/bin/dcgm-exporter": (_sim("dcgm-exporter", VERSION=DCGM_EXPORTER.rsplit("-", 1)[0]), 0o755)}),
    ]
