"""Variables of the gateway role. Each field is a host-data key; its description is the doc."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator

from deepseek_infra.config import RoleDefaults, cidr_networks
from roles.gateway.policy import KeysFileError, read_keys_file

Permission = Literal["read", "write", "admin"]
_USER_RE = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_SIZE_RE = re.compile(r"^[1-9][0-9]*[kMG]?$")


class GatewayDefaults(RoleDefaults):
    prefix: ClassVar[str] = "gateway_"

    # Listener.
    gateway_port: int = Field(default=8443, ge=1, le=65535, description="TLS port the gateway listens on.")
    gateway_listen_address: str = Field(default="0.0.0.0", description="Address the gateway listens on.")
    gateway_tls_cert_file: str | None = Field(
        default=None, description="Controller path of a PEM certificate (chain); None generates a self-signed one on the node.",
    )
    gateway_tls_key_file: str | None = Field(
        default=None, description="Controller path of the certificate's PEM private key (set with gateway_tls_cert_file).",
    )
    gateway_tls_hostnames: tuple[str, ...] = Field(
        default=(), description="Extra DNS names/IPs for the generated certificate (the node's hostname, localhost and 127.0.0.1 are always in).",
    )

    # Routing and limits.
    gateway_engine_url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL of the local engine that serves deepseek_model.",
    )
    gateway_upstreams: dict[str, str] = Field(
        default_factory=dict, description="Extra routes: model id -> engine base URL (for nodes serving several models).",
    )
    gateway_max_request_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest request body accepted; larger ones get 413.",
    )
    gateway_upstream_timeout_s: float = Field(
        default=600.0, gt=0, description="Longest wait for a whole non-streamed reply, or between two streamed chunks (504 after).",
    )
    gateway_connect_timeout_s: float = Field(default=5.0, gt=0, description="Longest wait to connect to the engine.")
    gateway_drain_timeout_s: int = Field(
        default=120, ge=1, le=3600, description="On stop/restart, how long in-flight requests may finish before they are cut.",
    )

    # Access policy.
    gateway_db_dsn: str | None = Field(
        default=None, description="PostgreSQL DSN shared by several gateways; None keeps SQLite in /var/lib/deepseek/gateway.",
    )
    gateway_users: dict[str, dict[str, Permission]] = Field(
        default_factory=dict, description="Seeded users and their grants: user -> {model id: read|write|admin}.",
    )
    gateway_keys_file: str | None = Field(
        default=None, description="Controller path of a secret YAML file user -> key (or list of keys); only their SHA-256 reaches nodes.",
    )

    # Request log.
    gateway_confidence: bool = Field(
        default=True, description="Ask the engine for logprobs (stripped again) so every log line has a confidence.",
    )
    gateway_log_input_text: bool = Field(
        default=False, description="Also log the input itself, not only its SHA-256 (off: inputs may be confidential).",
    )
    gateway_input_hash: Literal["hmac", "sha256"] = Field(
        default="hmac", description="Logged input hash: hmac (keyed, a guessable prompt cannot be recovered) or sha256 (unkeyed).",
    )
    gateway_input_hash_key_file: str | None = Field(
        default=None, description="Controller path of the site's input-hash secret; None derives it from gateway_keys_file (rotating with it), or makes one per node.",
    )
    gateway_log_rotate_days: int = Field(default=14, ge=1, le=3650, description="Rotated request logs kept (one per day).")
    gateway_log_max_size: str = Field(default="500M", description="Rotate the request log early once it reaches this size (logrotate syntax).")

    # Admin and monitoring surfaces.
    gateway_metrics_clients: tuple[str, ...] = Field(
        default=("0.0.0.0/0", "::/0"), description="Networks that may read /metrics (others get 403, logged); set to the monitoring hosts to close it.",
    )
    gateway_metrics_user_ids: bool = Field(
        default=False, description="Also label /metrics counters with user ids (off: API key ids only).",
    )
    gateway_acceptance_required: bool = Field(
        default=False, description="/health answers 503 until deploy/acceptance.py has passed on the node (a failed record always does).",
    )

    # Software source.
    gateway_wheelhouse: str | None = Field(
        default=None, description="Controller directory of wheels for node/locks/gateway.txt (air-gapped install).",
    )
    gateway_index_url: str | None = Field(
        default=None, description="Internal package index for the gateway's packages; None with no wheelhouse uses the node's pip configuration.",
    )

    @field_validator("gateway_engine_url", "gateway_index_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
            raise ValueError(f"expected an http(s) URL, found {url!r}")
        return url

    @field_validator("gateway_upstreams")
    @classmethod
    def _upstream_urls(cls, upstreams: dict[str, str]) -> dict[str, str]:
        for model, url in upstreams.items():
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
                raise ValueError(f"{model}: expected a base URL like http://127.0.0.1:8001, found {url!r}")
        return upstreams

    @field_validator("gateway_users")
    @classmethod
    def _user_names(cls, users: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for user in users:
            if not _USER_RE.match(user):
                raise ValueError(f"user {user!r}: expected 1-64 letters, digits or . _ @ -")
        return users

    @field_validator("gateway_log_max_size")
    @classmethod
    def _size(cls, size: str) -> str:
        if not _SIZE_RE.match(size):
            raise ValueError(f"expected a logrotate size such as 500M, found {size!r}")
        return size

    @field_validator("gateway_wheelhouse")
    @classmethod
    def _wheelhouse(cls, path: str | None) -> str | None:
        if path is not None and not any(Path(path).glob("*.whl")):
            raise ValueError(f"expected a directory of wheels on the controller, found none in {path!r}")
        return path

    @field_validator("gateway_metrics_clients")
    @classmethod
    def _networks(cls, networks: tuple[str, ...]) -> tuple[str, ...]:
        return cidr_networks(networks)

    @field_validator("gateway_tls_cert_file", "gateway_tls_key_file", "gateway_keys_file", "gateway_input_hash_key_file")
    @classmethod
    def _controller_file(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is not None and not Path(path).is_file():
            raise ValueError(f"expected a file on the controller, found none at {path!r}")
        if info.field_name == "gateway_tls_key_file" and (path is None) != (info.data.get("gateway_tls_cert_file") is None):
            raise ValueError("set together with gateway_tls_cert_file, or neither")
        if info.field_name == "gateway_keys_file" and path is not None:
            try:
                keys = read_keys_file(path)
            except KeysFileError as error:
                raise ValueError(str(error)) from None
            unknown = sorted(set(keys) - set(info.data.get("gateway_users") or {}))
            if unknown:
                raise ValueError(f"keys for users not in gateway_users: {', '.join(unknown)}")
        return path
