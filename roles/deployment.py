"""Deployment-wide variables every role may read: which model, which engine."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from deepseek_infra.catalog import get_model
from deepseek_infra.config import RoleDefaults

_REPLICA_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class DeploymentDefaults(RoleDefaults):
    prefix: ClassVar[str] = "deepseek_"

    deepseek_model: str = Field(
        default="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        description="Model to serve: a Hugging Face repo id or an alias from deepseek_infra/catalog.py.",
    )
    deepseek_engine: Literal["vllm", "sglang", "transformers"] = Field(
        default="vllm", description="Inference engine that serves the model.",
    )

    deepseek_nodes: int = Field(
        default=1, ge=1, le=64, description="Nodes that serve one model replica together (pipeline parallel across them).",
    )
    deepseek_replica: str | None = Field(
        default=None, description="Name of the replica this host serves in (its deepseek_nodes hosts share it); None: consecutive serving hosts.",
    )
    deepseek_max_model_len: int | None = Field(
        default=None, ge=256, description="Context length to guarantee; None lets the serving plan pick the most that fits.",
    )

    @field_validator("deepseek_replica")
    @classmethod
    def _replica_name(cls, name: str | None) -> str | None:
        if name is not None and not _REPLICA_RE.match(name):
            raise ValueError(f"expected a replica name of letters, digits, '.', '_' or '-' (up to 64), found {name!r}")
        return name

    @field_validator("deepseek_model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        return get_model(name).hf_repo
