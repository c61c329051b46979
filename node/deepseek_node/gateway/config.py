"""The gateway's configuration file (``/etc/deepseek/gateway.yaml``), parsed and checked.

Written by ``roles/gateway`` from inventory data; every key is optional and takes the
default below. Unknown keys and wrong types are refused with the key's dotted name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_CONFIG_PATH = "/etc/deepseek/gateway.yaml"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type; names the key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    host: str = "0.0.0.0"  # address to listen on
    port: int = 8443  # TLS port
    tls_cert: str | None = "/etc/deepseek/gateway/tls.crt"  # None serves plain HTTP (tests only)
    tls_key: str | None = "/etc/deepseek/gateway/tls.key"
    database_path: str = "/var/lib/deepseek/gateway/gateway.db"  # SQLite, when no DSN is set
    database_dsn: str | None = None  # PostgreSQL DSN: several gateways share one policy
    request_log: str | None = "/var/log/deepseek/gateway/requests.jsonl"
    log_to_stdout: bool = True  # also print each log line (the service's journal)
    log_input_text: bool = False  # put the input itself in the log (off: only its hash)
    input_hash_key_file: str | None = None  # HMAC key of the logged input hash; None: plain SHA-256
    confidence: bool = True  # ask the engine for logprobs when the client did not
    max_request_bytes: int = 4 * 1024 * 1024  # larger bodies get 413
    upstream_timeout_s: float = 600.0  # whole non-streamed reply; gap between streamed bytes
    connect_timeout_s: float = 5.0
    drain_timeout_s: int = 120  # SIGTERM: how long in-flight requests may finish
    service_user: str = "deepseek"  # the CLI drops to this user when run as root
    admin_token_file: str | None = "/var/lib/deepseek/gateway/admin.token"  # written at start; drain needs it
    metrics_clients: tuple[str, ...] = ("0.0.0.0/0", "::/0")  # networks that may read /metrics
    metrics_user_ids: bool = False  # label metrics with user ids too (off: key ids only)
    upstreams: Mapping[str, str] = field(default_factory=dict)  # model id -> engine base URL
    acceptance_record: str | None = "/etc/deepseek/acceptance.json"  # failed record: /health 503; None: not gated
    acceptance_required: bool = False  # no record at all also answers 503 (acceptance must have run)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> GatewayConfig:
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(f"{key}: unknown configuration key")
            values[key] = _check(key, known[key].type, value)
        config = cls(**values)
        for model, url in config.upstreams.items():
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
                raise ConfigError(f"upstreams.{model}: expected a base URL like http://127.0.0.1:8000, found {url!r}")
        for network in config.metrics_clients:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as error:
                raise ConfigError(f"metrics_clients: {network!r} is not an address or network: {error}") from error
        if (config.tls_cert is None) != (config.tls_key is None):
            raise ConfigError("tls_cert, tls_key: set both or neither")
        return config

    @classmethod
    def load(cls, path: str | Path = DEFAULT_CONFIG_PATH) -> GatewayConfig:
        import yaml  # local: the controller imports this module without needing a node's deps

        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ConfigError(f"{path}: cannot read the configuration: {error.strerror}") from error
        data = yaml.safe_load(text) or {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        try:
            return cls.from_mapping(data)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from error

    def metrics_allowed(self, client: str | None) -> bool:
        """Whether ``client`` (an IP address) may read /metrics."""
        try:
            address = ipaddress.ip_address(client or "")
        except ValueError:
            return False
        return any(address in ipaddress.ip_network(network, strict=False) for network in self.metrics_clients)

    def upstream_for(self, model: str) -> str | None:
        url = self.upstreams.get(model)
        return url.rstrip("/") if url else None


def _check(key: str, annotation: str, value: Any) -> Any:
    optional = annotation.endswith("| None")
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key}: must not be empty")
    base = annotation.removesuffix(" | None")
    if base == "bool":
        ok = isinstance(value, bool)
    elif base == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    elif base == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        value = float(value) if ok else value
    elif base == "str":
        ok = isinstance(value, str) and value != ""
    elif base == "tuple[str, ...]":
        ok = isinstance(value, list | tuple) and all(isinstance(item, str) and item for item in value)
        value = tuple(value) if ok else value
    else:  # Mapping[str, str]
        ok = isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        value = dict(value) if ok else value
    if not ok:
        raise ConfigError(f"{key}: expected {annotation}, found {value!r}")
    return value
