"""Variables of the monitoring role (Prometheus config, alert thresholds). Host-data keys.

The alert thresholds default to the design brief's section 6 (GPU utilization above 95%
sustained, GPU memory above 90% for 5 minutes, network bandwidth below 5 GB/s) and to
common practice for GPU fleets for the rest; each is one key, so a site changes a
threshold in group data and regenerates the rules.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from deepseek_infra.config import NodePath, RoleDefaults
from deepseek_infra.monitoring import is_duration


class MonitoringDefaults(RoleDefaults):
    prefix: ClassVar[str] = "monitoring_"

    # Where the configuration goes.
    monitoring_output_dir: str | None = Field(
        default=None,
        description="Controller directory to write prometheus.yml, rules and dashboard to (own Prometheus); None: the `monitoring` group's hosts.",
    )
    monitoring_prometheus_package: str = Field(default="prometheus", description="Debian package of the Prometheus server.")
    monitoring_scrape_interval: str = Field(default="15s", description="Prometheus scrape interval.")
    monitoring_evaluation_interval: str = Field(default="15s", description="Prometheus rule evaluation interval.")
    monitoring_gateway_scheme: Literal["http", "https"] = Field(default="https", description="Scheme of the gateway's /metrics.")
    monitoring_gateway_ca_file: NodePath | None = Field(
        default=None, description="CA file on the monitoring host that signs the gateway's certificate.",
    )
    monitoring_gateway_insecure_skip_verify: bool = Field(
        default=False, description="Skip verifying the gateway's certificate (lab self-signed certificates only).",
    )

    # Alertmanager: where alerts go (Debian's prometheus-alertmanager on the monitoring hosts).
    monitoring_alertmanager_enabled: bool = Field(
        default=True, description="Install Alertmanager on the `monitoring` hosts and send Prometheus's alerts to it.",
    )
    monitoring_alertmanager_package: str = Field(default="prometheus-alertmanager", description="Debian package of Alertmanager (with amtool).")
    monitoring_alertmanager_listen: str = Field(
        default="127.0.0.1:9093", description="Alertmanager's web and API address (no authentication of its own: loopback unless fronted).",
    )
    monitoring_alertmanager_targets: tuple[str, ...] = Field(
        default=(), description="host:port of the Alertmanagers Prometheus sends to; empty: the monitoring host's own when enabled.",
    )
    monitoring_alert_webhook_urls: tuple[str, ...] = Field(
        default=(), description="Webhook receivers (http:// or https:// URLs) that get every alert, firing and resolved.",
    )
    monitoring_alert_email_to: tuple[str, ...] = Field(default=(), description="Email addresses that get the monitoring_alert_email_severities alerts.")
    monitoring_alert_email_from: str | None = Field(default=None, description="Sender address of alert email.")
    monitoring_alert_smtp_smarthost: str | None = Field(default=None, description="SMTP relay as host:port for alert email.")
    monitoring_alert_smtp_username: str | None = Field(default=None, description="SMTP user name; None: no SMTP authentication.")
    monitoring_alert_smtp_password_file: NodePath | None = Field(
        default=None, description="File on the monitoring host holding the SMTP password (the secret stays out of the inventory and the config).",
    )
    monitoring_alert_smtp_require_tls: bool = Field(default=True, description="Require STARTTLS to the SMTP relay.")
    monitoring_alert_email_severities: tuple[Literal["critical", "warning", "info"], ...] = Field(
        default=("critical",), description="Severities that are emailed as well (webhooks get every severity).",
    )
    monitoring_alert_group_wait: str = Field(default="30s", description="How long Alertmanager waits to group the first alerts of a group.")
    monitoring_alert_group_interval: str = Field(default="5m", description="How long before it notifies about new alerts in a group already notified.")
    monitoring_alert_repeat_interval: str = Field(default="4h", description="How long before it repeats a notification that still fires.")

    # Alert thresholds (design brief section 6 first).
    monitoring_gpu_util_percent: float = Field(default=95, gt=0, le=100, description="GPU utilization alert threshold (%).")
    monitoring_gpu_util_for: str = Field(default="15m", description="How long GPU utilization stays above it ('sustained').")
    monitoring_gpu_memory_percent: float = Field(default=90, gt=0, le=100, description="GPU memory used alert threshold (% of framebuffer); transformers engine only (vLLM and SGLang preallocate it).")
    monitoring_gpu_memory_for: str = Field(default="5m", description="How long GPU memory stays above it.")
    monitoring_kv_cache_percent: float = Field(default=95, gt=0, le=100, description="KV-cache pressure alert threshold (% of the engine's KV cache in use; vLLM, SGLang).")
    monitoring_kv_cache_for: str = Field(default="5m", description="How long the KV cache stays above it.")
    monitoring_host_memory_available_percent: float = Field(default=5, gt=0, lt=100, description="Host OOM risk: alert when MemAvailable falls below this share of MemTotal.")
    monitoring_host_memory_for: str = Field(default="5m", description="How long MemAvailable stays below it.")
    monitoring_network_min_bytes_per_s: float = Field(
        default=5e9, gt=0, description="Minimum measured bandwidth between node pairs (bytes/s; brief: 5 GB/s).",
    )
    monitoring_gpu_temp_celsius: float = Field(default=85, gt=0, le=120, description="GPU temperature alert threshold (°C).")
    monitoring_gpu_temp_for: str = Field(default="5m", description="How long the temperature stays above it.")
    monitoring_gateway_5xx_ratio: float = Field(default=0.05, gt=0, le=1, description="Share of gateway responses that are 5xx.")
    monitoring_gateway_p95_latency_s: float = Field(default=60, gt=0, description="95th percentile gateway request latency (s).")
    monitoring_down_for: str = Field(default="2m", description="How long an engine, gateway or exporter is unreachable before alerting.")

    @field_validator("monitoring_scrape_interval", "monitoring_evaluation_interval", "monitoring_gpu_util_for",
                     "monitoring_gpu_memory_for", "monitoring_gpu_temp_for", "monitoring_down_for",
                     "monitoring_kv_cache_for", "monitoring_host_memory_for", "monitoring_alert_group_wait",
                     "monitoring_alert_group_interval", "monitoring_alert_repeat_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not is_duration(value):
            raise ValueError(f"{value!r} is not a Prometheus duration such as 30s, 5m, 1h")
        return value

    @field_validator("monitoring_alert_webhook_urls")
    @classmethod
    def _webhooks(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return urls

    @field_validator("monitoring_alertmanager_listen", "monitoring_alertmanager_targets", "monitoring_alert_smtp_smarthost")
    @classmethod
    def _host_port(cls, value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        for item in (value,) if isinstance(value, str) else value or ():
            address, _, port = item.rpartition(":")
            if not address or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{item!r} is not host:port")
        return value

    @field_validator("monitoring_alert_email_to", "monitoring_alert_email_from")
    @classmethod
    def _addresses(cls, value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        for address in (value,) if isinstance(value, str) else value or ():
            local, _, domain = address.partition("@")
            if not local or "." not in domain or any(c.isspace() for c in address):
                raise ValueError(f"{address!r} is not an email address")
        return value

    @model_validator(mode="after")
    def _email_needs_a_relay(self) -> "MonitoringDefaults":
        if self.monitoring_alert_email_to and not (self.monitoring_alert_email_from and self.monitoring_alert_smtp_smarthost):
            missing = [name for name in ("monitoring_alert_email_from", "monitoring_alert_smtp_smarthost") if not getattr(self, name)]
            raise ValueError(f"monitoring_alert_email_to is set: also set {' and '.join(missing)}")
        return self

    def alertmanagers(self) -> tuple[str, ...]:
        """host:port Prometheus sends alerts to."""
        if self.monitoring_alertmanager_targets:
            return self.monitoring_alertmanager_targets
        if not self.monitoring_alertmanager_enabled:
            return ()
        address, _, port = self.monitoring_alertmanager_listen.rpartition(":")
        return (f"{'localhost' if address in ('', '0.0.0.0', '[::]') else address}:{port}",)

    def receivers_configured(self) -> bool:
        return bool(self.monitoring_alert_webhook_urls or self.monitoring_alert_email_to)

    @field_validator("monitoring_prometheus_package", "monitoring_alertmanager_package")
    @classmethod
    def _package_name(cls, name: str) -> str:
        if not name or not all(c.isalnum() or c in "+-.:=~" for c in name):
            raise ValueError(f"{name!r} is not a Debian package name")
        return name

    def thresholds(self) -> dict[str, Any]:
        """Template variables of the rule files: the threshold fields without the prefix."""
        skip = {"monitoring_output_dir", "monitoring_prometheus_package", "monitoring_scrape_interval",
                "monitoring_evaluation_interval", "monitoring_gateway_scheme", "monitoring_gateway_ca_file",
                "monitoring_gateway_insecure_skip_verify"}
        values = {k.removeprefix(self.prefix): v for k, v in self.model_dump().items()
                  if k not in skip and not k.startswith(("monitoring_alert_", "monitoring_alertmanager_"))}
        # 95.0 -> 95, 5e9 -> 5000000000: PromQL reads both, people read the second better
        return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in values.items()}
