"""Variables of the preflight role: the bar a host must clear before anything changes."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from deepseek_node import paths
from deepseek_infra.config import RoleDefaults


class PreflightDefaults(RoleDefaults):
    prefix: ClassVar[str] = "preflight_"

    # Thresholds (the design brief's server bar; lower them only for small models).
    preflight_min_gpu_memory_gib: float = Field(default=40, gt=0, description="Memory each GPU must have (brief: >= 40 GB).")
    preflight_min_compute_capability: float = Field(default=8.0, ge=3.0, description="Lowest GPU compute capability (8.0 = BF16, Ampere).")
    preflight_min_cpu_cores: int = Field(default=32, ge=1, description="Physical CPU cores the host must have (brief: >= 32).")
    preflight_min_memory_gib: float = Field(default=64, gt=0, description="RAM the host must have, GiB.")
    preflight_min_network_gbps: float = Field(default=10, gt=0, description="Fastest NIC or IB port, Gb/s (brief: 10 GbE).")
    preflight_min_ib_gbps_multinode: float = Field(default=200, gt=0, description="Active InfiniBand rate needed when a replica spans nodes (HDR).")
    preflight_kept_releases: int = Field(default=2, ge=1, description="Weight releases kept on disk; storage must hold these plus one new.")
    preflight_weights_path: str = Field(default=paths.MODELS_DIR, pattern=r"^/", description="Where model weights live (its filesystem is measured).")

    # What a failure stops.
    preflight_on_failure: Literal["host", "run"] = Field(default="host", description="`host`: stop the deploy for a failing host; `run`: stop the whole run.")
    preflight_report: str | None = Field(default=None, description="Controller path of a JSON report of every host (`--data preflight_report=out.json`).")
