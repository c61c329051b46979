"""Variables of the acceptance gate (deploy/acceptance.py). Host-data keys.

Thresholds are fractions of a nominal figure read from the hardware: the NVLink links per GPU
pair in ``nvidia-smi topo -m`` x 25 GB/s per link and direction (NVLink 5: 50), or
``acceptance_pcie_nominal_gbps`` without NVLink; an HCA pair's lower ``ibstat`` port rate; a
GPU's datasheet memory bandwidth and dense BF16 TFLOPS (deepseek_infra/acceptance.py
GPU_NOMINAL); a node's active InfiniBand port rates (or Ethernet link speed) for the all-reduce
across a replica's nodes.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from deepseek_infra.config import NodePath, RoleDefaults

Check = Literal["dcgm", "allreduce", "ib_write_bw", "burnin", "replica_allreduce"]


class AcceptanceDefaults(RoleDefaults):
    prefix: ClassVar[str] = "acceptance_"

    acceptance_checks: tuple[Check, ...] = Field(
        default=("dcgm", "allreduce", "ib_write_bw", "burnin", "replica_allreduce"),
        description="Checks run: dcgm (dcgmi diag), allreduce (nccl-tests), ib_write_bw (per HCA pair), burnin (PyTorch: GPU memory bandwidth, matmul), replica_allreduce (torch.distributed across a multi-node replica).",
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
    acceptance_torch_python: NodePath | None = Field(
        default=None, description="Python with PyTorch for burnin and replica_allreduce; None: the engine's venv (deploy serve installs it).",
    )
    acceptance_burnin_device: Literal["cuda", "cpu"] = Field(default="cuda", description="What burnin measures: every CUDA GPU, or the CPU (a CPU-only node: judged by the _min_ settings only).")
    acceptance_burnin_seconds: int = Field(default=30, ge=1, le=3600, description="Seconds of matmul burn-in, all GPUs at once.")
    acceptance_burnin_size_mib: int = Field(default=1024, ge=1, description="Buffer copied to measure memory bandwidth, MiB (two are allocated per GPU).")
    acceptance_burnin_memory_fraction: float = Field(default=0.7, gt=0, le=1.5, description="Copy bandwidth floor, x the GPU's datasheet memory bandwidth (H100 SXM 3350 GB/s: 2345).")
    acceptance_burnin_matmul_fraction: float = Field(default=0.5, gt=0, le=1.5, description="BF16 matmul floor, x the datasheet dense BF16 TFLOPS (H100 SXM 989.5: 494.8).")
    acceptance_burnin_min_memory_gbps: float | None = Field(default=None, gt=0, description="Copy bandwidth floor in GB/s instead of the derived one (GPUs without a datasheet entry, the CPU).")
    acceptance_burnin_min_tflops: float | None = Field(default=None, gt=0, description="Matmul floor in TFLOPS instead of the derived one.")
    acceptance_replica_backend: Literal["nccl", "gloo"] = Field(default="nccl", description="torch.distributed backend of replica_allreduce: nccl (GPUs), gloo (TCP, CPU nodes).")
    acceptance_replica_port: int = Field(default=29511, ge=1, le=65535, description="TCP port of the rendezvous on the replica's head during replica_allreduce.")
    acceptance_replica_busbw_fraction: float = Field(default=0.5, gt=0, le=1.5, description="Cross-node busbw floor, x the node's network (active IB port rates, or the fastest Ethernet link; 8x NDR: 200 GB/s).")
    acceptance_replica_network_gbps: float | None = Field(default=None, gt=0, description="The node's network toward its replica, GB/s, instead of the derived one.")
    acceptance_replica_max_bytes: str = Field(default="1G", pattern=r"^\d+[KMG]?$", description="Largest replica_allreduce message (its busbw is judged); smallest is acceptance_allreduce_min_bytes.")
    acceptance_timeout_s: int = Field(default=1800, ge=10, description="Longest any one check may run before it counts as failed.")
