"""Deployment-wide variables every role may read: which model, which engine."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from modules.catalog import get_model
from modules.config import RoleDefaults


class DeploymentDefaults(RoleDefaults):
    prefix: ClassVar[str] = "deepseek_"

    deepseek_model: str = Field(
        default="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        description="Model to serve: a Hugging Face repo id or an alias from modules/catalog.py.",
    )
    deepseek_engine: Literal["vllm", "sglang", "transformers"] = Field(
        default="vllm", description="Inference engine that serves the model.",
    )

    @field_validator("deepseek_model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        return get_model(name).hf_repo
