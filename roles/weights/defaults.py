"""Variables of the weights role. Each field is a host-data key; its description is the doc."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from deepseek_infra import nodewheel
from deepseek_infra.config import RoleDefaults
from deepseek_node import paths
from deepseek_node.weights.cli import parse_size
from deepseek_node.weights.plan import check_revision

_KEY_SOURCE = re.compile(r"^(file:/\S.*|env:[A-Za-z_][A-Za-z0-9_]*|cmd:\S.*)$")
_SHA384 = re.compile(r"^[0-9a-f]{96}$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_NEEDS = {"directory": "weights_source_dir", "http": "weights_mirror_url", "hf": "weights_hf_endpoint"}


class WeightsDefaults(RoleDefaults):
    prefix: ClassVar[str] = "weights_"

    # What to place: the model is deepseek_model; these say which files and from where.
    weights_source: Literal["none", "directory", "http", "hf"] = Field(
        default="none",
        description="Where weights come from: a controller directory, an HTTP(S) mirror, a Hugging Face-compatible endpoint; `none` places nothing.",
    )
    weights_revision: str | None = Field(
        default=None, description="Pinned revision (tag or commit) of deepseek_model; names the release directory.",
    )
    weights_source_dir: str | None = Field(
        default=None, description="Controller directory holding the checkpoint (weights_source=directory).",
    )
    weights_mirror_url: str | None = Field(
        default=None, description="HTTP(S) mirror root laid out <url>/<repo>/<revision>/<file> (weights_source=http).",
    )
    weights_hf_endpoint: str | None = Field(
        default=None, description="Internal Hugging Face-compatible endpoint: <endpoint>/<repo>/resolve/<revision>/<file> (weights_source=hf).",
    )
    weights_manifest: str | None = Field(
        default=None,
        description="Controller path of the SHA-384 manifest (node/deepseek_node/weights/cli.py manifest); directory source: computed when unset.",
    )
    weights_manifest_sha384: str | None = Field(
        default=None, description="Pinned SHA-384 of the manifest; a manifest with another hash is refused before any change.",
    )

    # Placement.
    weights_models_dir: str = Field(
        default=paths.MODELS_DIR, description="Releases root on nodes: <dir>/<org>--<name>/<revision>/ and a `current` symlink.",
    )
    weights_keep_releases: int = Field(
        default=2, ge=1, le=20, description="Releases kept per model, current included (2 allows one rollback).",
    )
    weights_min_free_gib: float = Field(
        default=0, ge=0, description="Space that must stay free on the weights filesystem after a transfer, GiB.",
    )
    weights_action: Literal["place", "rollback"] = Field(
        default="place", description="`rollback` switches current to the release placed before it (`--data weights_action=rollback`).",
    )

    # Transfer.
    weights_fetch_parallel: int = Field(default=4, ge=1, le=64, description="Files each node downloads at once (http, hf).")
    weights_fetch_retries: int = Field(default=3, ge=0, le=20, description="Tries per file after the first, each resuming with a Range request.")
    weights_fetch_timeout_s: int = Field(default=60, ge=1, description="Seconds without data before a download try fails.")
    weights_push_batch_mib: int = Field(
        default=64, ge=1, le=1024, description="Directory source: files up to this size travel together as one tar stream per batch.",
    )
    weights_push_chunk_mib: int = Field(
        default=64, ge=1, le=1024, description="Directory source: larger files travel in chunks of this size (a rerun resumes at the last chunk).",
    )

    # Encryption at rest.
    weights_encrypt: bool = Field(default=False, description="Store the release encrypted (AES-256-GCM, .dsenc); decrypted into tmpfs at engine start.")
    weights_key: str | None = Field(
        default=None, description="Controller key source: file:/path (0600), env:NAME or cmd:command (64 hex chars); placed at /etc/deepseek/keys/<model>.key 0400.",
    )

    # Integrity over time.
    weights_verify_on_calendar: str = Field(default="weekly", description="systemd OnCalendar of the full re-hash timer.")
    weights_verify_rate_limit: str = Field(default="200M", description="Read rate cap of the re-hash, bytes/s with K/M/G units (spares the engine's I/O).")

    # The node tool's Python environment.
    weights_pip_requirements: tuple[str, ...] = Field(
        default=nodewheel.lock("weights"),  # node/locks/weights.txt
        description="Pinned packages of the node tool's venv (the controller's versions).",
    )
    weights_wheelhouse: str | None = Field(
        default=None, description="Controller directory of wheels for weights_pip_requirements, pushed and installed with --no-index.",
    )
    weights_pip_index_url: str | None = Field(
        default=None, description="Internal package index for the venv instead of a wheelhouse; both unset: pip's own config on the node.",
    )

    @field_validator("weights_revision")
    @classmethod
    def _revision(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            if info.data.get("weights_source", "none") != "none":
                raise ValueError("required when weights_source is not 'none' (pin a tag or commit)")
            return value
        return check_revision(value)

    @field_validator("weights_source_dir", "weights_mirror_url", "weights_hf_endpoint")
    @classmethod
    def _source_location(cls, value: str | None, info: ValidationInfo) -> str | None:
        source = info.data.get("weights_source")
        if value is None and _NEEDS.get(source or "") == info.field_name:
            raise ValueError(f"required when weights_source is {source!r}")
        if value is not None and info.field_name != "weights_source_dir" and not _URL.fullmatch(value):
            raise ValueError("expected an http:// or https:// URL")
        if value is not None and info.field_name == "weights_source_dir" and not value.startswith("/"):
            raise ValueError("expected an absolute controller path")
        return value

    @field_validator("weights_manifest")
    @classmethod
    def _manifest(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("weights_source") in ("http", "hf"):
            raise ValueError("required for weights_source http/hf: the controller checks the files against it")
        return value

    @field_validator("weights_manifest_sha384")
    @classmethod
    def _pin(cls, value: str | None) -> str | None:
        if value is not None and not _SHA384.fullmatch(value):
            raise ValueError("expected 96 lowercase hex characters")
        return value

    @field_validator("weights_models_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or value.rstrip("/") in ("", "/etc", "/usr", "/var", "/run"):
            raise ValueError("expected an absolute path of its own (not / or a system directory)")
        return value.rstrip("/")

    @field_validator("weights_key")
    @classmethod
    def _key(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("weights_encrypt"):
            raise ValueError("required when weights_encrypt is true")
        if value is not None and not _KEY_SOURCE.fullmatch(value):
            raise ValueError("expected file:/path, env:NAME or cmd:command")
        return value

    @field_validator("weights_verify_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            parse_size(value)
        except Exception as exc:  # argparse.ArgumentTypeError
            raise ValueError(str(exc)) from None
        return value

    @field_validator("weights_verify_on_calendar")
    @classmethod
    def _calendar(cls, value: str) -> str:
        if not value.strip() or "\n" in value:
            raise ValueError("expected one systemd OnCalendar expression")
        return value

    @field_validator("weights_pip_requirements")
    @classmethod
    def _pinned(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for requirement in value:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+", requirement):
                raise ValueError(f"{requirement!r} is not pinned as name==version")
        return value

    def verify_rate_bytes(self) -> int:
        return parse_size(self.weights_verify_rate_limit)
