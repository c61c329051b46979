"""Variables of the acceptance gate (deploy/acceptance.py). Host-data keys.

Thresholds are fractions of a nominal figure read from the hardware: the NVLink links per GPU
pair in ``nvidia-smi topo -m`` x 25 GB/s per link and direction (NVLink 5: 50), or
``acceptance_pcie_nominal_gbps`` without NVLink; an HCA pair's lower ``ibstat`` port rate.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from deepseek_infra.config import NodePath, RoleDefaults

Check = Literal["dcgm", "allreduce", "ib_write_bw"]


class AcceptanceDefaults(RoleDefaults):
    prefix: ClassVar[str] = "acceptance_"

    acceptance_checks: tuple[Check, ...] = Field(
        default=("dcgm", "allreduce", "ib_write_bw"), description="Checks run: dcgm (dcgmi diag), allreduce (nccl-tests), ib_write_bw (per HCA pair).",
    )
    acceptance_dcgm_level: Literal[1, 2, 3, 4] = Field(default=2, description="dcgmi diag run level (1 quick, 2 medium ~2 min, 3 long, 4 extended).")
    acceptance_dcgmi: NodePath = Field(default="/usr/bin/dcgmi", description="dcgmi binary (DCGM, installed by the exporters role).")
    acceptance_all_reduce_perf: NodePath = Field(
        default="/opt/nccl-tests/build/all_reduce_perf",
        description="nccl-tests all_reduce_perf binary; a site builds nccl-tests or ships it from its mirror to this path.",
    )
    acceptance_allreduce_min_bytes: str = Field(default="8M", pattern=r"^\d+[KMG]?$", description="all_reduce_perf -b (smallest message).")
    acceptance_allreduce_max_bytes: str = Field(default="2G", pattern=r"^\d+[KMG]?$", description="all_reduce_perf -e (largest message; its busbw is judged).")
    acceptance_nvlink_busbw_fraction: float = Field(default=0.8, gt=0, le=1.5, description="All-reduce busbw floor over NVLink/NVSwitch, x NV-links x 25 GB/s (H100 SXM: 360 GB/s).")
    acceptance_pcie_busbw_fraction: float = Field(default=0.6, gt=0, le=1.5, description="All-reduce busbw floor without NVLink, x acceptance_pcie_nominal_gbps.")
    acceptance_pcie_nominal_gbps: float = Field(default=32.0, gt=0, description="Nominal PCIe rate per GPU and direction, GB/s (Gen4 x16: 32, Gen5 x16: 64).")
    acceptance_ib_fraction: float = Field(default=0.9, gt=0, le=1.0, description="ib_write_bw floor, x the lower port rate of the HCA pair (NDR 400: 360 Gb/s).")
    acceptance_ib_duration_s: int = Field(default=5, ge=1, le=120, description="Seconds each ib_write_bw pair runs (-D).")
    acceptance_ib_port: int = Field(default=18515, ge=1, le=65535, description="TCP port of ib_write_bw's connection exchange.")
    acceptance_timeout_s: int = Field(default=1800, ge=10, description="Longest any one check may run before it counts as failed.")
