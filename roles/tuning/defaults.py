"""Variables of the tuning role (engine CPU/NUMA/NIC placement). Each field is a host-data key."""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field, field_validator

from deepseek_infra.config import RoleDefaults

_ENV_NAME = re.compile(r"^(NCCL|UCX|CUDA|NVSHMEM)_[A-Z0-9_]+$")
_ENV_VALUE = re.compile(r"^[A-Za-z0-9_.,:/+=@%~^-]*$")


class TuningDefaults(RoleDefaults):
    prefix: ClassVar[str] = "tuning_"

    tuning_housekeeping_cpus_per_node: int = Field(
        default=2, ge=0, le=16,
        description="Cores (with SMT siblings) per NUMA node kept for the OS, IRQs and guests' emulator threads.",
    )
    tuning_gpu_indices: tuple[int, ...] | None = Field(
        default=None, description="GPUs the engine uses (nvidia-smi indices); None: what the serving plan needs, else all.",
    )
    tuning_nccl_env: dict[str, str] = Field(
        default_factory=dict, description="More NCCL_*/UCX_*/CUDA_* variables for the engine (NCCL_SOCKET_IFNAME, ...).",
    )
    tuning_per_rank_placement: bool = Field(
        default=True, description="Bind each engine rank to its GPU's NUMA node (CPUs and memory) by the engine's own flags, where it has them.",
    )
    tuning_hca_irq_affinity: bool = Field(
        default=True, description="Pin the IRQs of the GPU-local HCAs to their node's housekeeping CPUs (boot unit).",
    )

    @field_validator("tuning_gpu_indices")
    @classmethod
    def _indices(cls, indices: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if indices is not None:
            if not indices:
                raise ValueError("empty; use None for the serving plan's GPUs")
            if any(index < 0 for index in indices) or len(set(indices)) != len(indices):
                raise ValueError("expected distinct GPU indices >= 0")
        return indices

    @field_validator("tuning_nccl_env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r}: expected an NCCL_*, UCX_*, CUDA_* or NVSHMEM_* variable name")
            if name == "NCCL_IB_HCA":
                raise ValueError("NCCL_IB_HCA is computed from the topology; set tuning_gpu_indices instead")
            if not _ENV_VALUE.match(value):
                raise ValueError(f"{name}: value {value!r} has characters a systemd Environment= line would mangle")
        return env
