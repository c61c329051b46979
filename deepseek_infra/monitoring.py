"""Prometheus configuration, alert rules and metric catalogue for the fleet (pure logic).

``prometheus_config`` turns the inventory's scrape targets into a prometheus.yml document;
``render_rules`` fills the rule templates with the alert thresholds; ``alertmanager_config``
routes the alerts to the site's receivers (webhooks, email) with inhibition; ``metric_names`` pulls
metric names out of a PromQL expression so tests can check that every rule and dashboard
panel reads a metric some exporter of this collection really exposes (``known_metrics``).
No pyinfra imports: the roles and the unit tests call these with plain data.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import jinja2
import yaml

# Metrics this collection writes through node-exporter's textfile collector (the contract
# with the roles and timers that write them: name -> help text).
TEXTFILE_METRICS: Final[Mapping[str, str]] = {
    "deepseek_network_bandwidth_bytes_per_second": "Measured bandwidth to a peer (labels peer, transport).",
    "deepseek_network_check_timestamp_seconds": "When the network check last measured a peer.",
    "deepseek_network_check_ok": "1 when the last measurement to a peer ran (0: it failed to run).",
    "deepseek_weights_verify_ok": "1 when the last weights verification passed, 0 when it failed (label model).",
    "deepseek_weights_verify_timestamp_seconds": "When the weights were last verified (label model).",
    "deepseek_reboot_required": "Number of pending reboot reasons in /var/lib/deepseek/state/reboot-required.d.",
    "deepseek_nvidia_driver_library_mismatch": "1 when the loaded kernel module and the NVML library versions differ.",
    "deepseek_nvidia_driver_loaded": "1 when /proc/driver/nvidia/version exists (the kernel module is loaded).",
}
# The gateway's /metrics (contract with the gateway role).
GATEWAY_METRICS: Final[Mapping[str, str]] = {
    "deepseek_gateway_requests_total": "counter; labels key_id, model, status (HTTP code); user with gateway_metrics_user_ids",
    "deepseek_gateway_request_duration_seconds": "histogram; labels model",
    "deepseek_gateway_tokens_total": "counter; labels user, model, direction (in|out)",
}
# vLLM's /metrics (the default engine), names as vLLM exposes them (its V1 engine's KV-cache
# gauge is vllm:kv_cache_usage_perc, 0..1; tests/lab/test_vllm.py reads them from the real engine).
ENGINE_METRICS: Final[frozenset[str]] = frozenset({
    "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total", "vllm:e2e_request_latency_seconds",
    "vllm:time_to_first_token_seconds", "vllm:kv_cache_usage_perc",
})
# SGLang's: sglang:token_usage, the share of its KV token pool in use (0..1).
SGLANG_ENGINE_METRICS: Final[frozenset[str]] = frozenset({"sglang:token_usage"})
# node-exporter metrics the rules and dashboard read.
NODE_EXPORTER_METRICS: Final[frozenset[str]] = frozenset({
    "node_load1", "node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes",
    "node_network_receive_bytes_total", "node_network_transmit_bytes_total",
    "node_filesystem_avail_bytes", "node_filesystem_size_bytes", "node_textfile_scrape_error",
})
PROMETHEUS_METRICS: Final[frozenset[str]] = frozenset({"up"})
HISTOGRAM_SUFFIXES: Final = ("_bucket", "_sum", "_count")

# Scrape job names; the rules refer to them (up{job="engine"}).
JOB_NODE, JOB_DCGM, JOB_ENGINE, JOB_GATEWAY, JOB_PROMETHEUS = "node", "dcgm", "engine", "gateway", "prometheus"

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def is_duration(text: str) -> bool:
    """True for a Prometheus duration (``15s``, ``1h30m``)."""
    return bool(_DURATION.match(text))


def dcgm_counters(csv_text: str) -> frozenset[str]:
    """DCGM field names a dcgm-exporter counters CSV enables (comments and labels skipped)."""
    names = set()
    for line in csv_text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, kind = (part.strip() for part in line.split(",")[:2])
        if kind in ("gauge", "counter"):
            names.add(name)
    return frozenset(names)


def known_metrics(dcgm_csv: str) -> frozenset[str]:
    """Every metric name an exporter of this collection exposes (histograms with suffixes)."""
    histograms = {"deepseek_gateway_request_duration_seconds", "vllm:e2e_request_latency_seconds",
                  "vllm:time_to_first_token_seconds"}
    base = (set(TEXTFILE_METRICS) | set(GATEWAY_METRICS) | ENGINE_METRICS | SGLANG_ENGINE_METRICS | NODE_EXPORTER_METRICS
            | PROMETHEUS_METRICS | dcgm_counters(dcgm_csv))
    return frozenset(base | {h + suffix for h in histograms for suffix in HISTOGRAM_SUFFIXES})


_PROMQL_WORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
    "unless", "inf", "nan",
})
_STRIP = (
    re.compile(r'"(?:[^"\\]|\\.)*"'),                              # strings
    re.compile(r"\{[^}]*\}"),                                      # label matchers
    re.compile(r"\[[^\]]*\]"),                                     # ranges and subqueries
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),  # label lists
)
_IDENT = re.compile(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (functions, keywords and labels excluded).

    >>> sorted(metric_names('sum by (host) (rate(x_total{a="b"}[5m])) / on(host) y > 0.5'))
    ['x_total', 'y']
    """
    text = expr
    for pattern in _STRIP:
        text = pattern.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _PROMQL_WORDS or re.fullmatch(r"\d.*", word):
            continue
        names.add(word)
    return names


def host_label(name: str) -> str:
    """The ``host`` label of an inventory host: its name without a connector prefix.

    >>> host_label("@docker/ds-node-1"), host_label("gpu-a01.dc1")
    ('ds-node-1', 'gpu-a01.dc1')
    """
    return name.rsplit("/", 1)[-1] if name.startswith("@") else name


@dataclass(frozen=True, slots=True)
class ScrapeHost:
    """One node's metrics endpoints (``None`` port: that exporter is not scraped there)."""

    name: str  # host label
    address: str  # how the monitoring host reaches it
    node_port: int = 9100
    dcgm_port: int | None = 9400
    engine_port: int | None = 9401
    gateway_port: int | None = 8443
    gateway_path: str = "/metrics"
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PrometheusSettings:
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    gateway_scheme: str = "https"
    gateway_ca_file: str | None = None
    gateway_insecure_skip_verify: bool = False
    rule_files: tuple[str, ...] = ("rules/*.yml",)
    alertmanagers: tuple[str, ...] = ()  # host:port of the Alertmanagers to send alerts to


def _target(address: str, port: int) -> str:
    try:
        if isinstance(ipaddress.ip_address(address), ipaddress.IPv6Address):
            return f"[{address}]:{port}"
    except ValueError:
        pass
    return f"{address}:{port}"


def _static(hosts: Iterable[ScrapeHost], port_of) -> list[dict[str, Any]]:
    configs = []
    for scrape_host in sorted(hosts, key=lambda h: h.name):
        port = port_of(scrape_host)
        if port is None:
            continue
        configs.append({"targets": [_target(scrape_host.address, port)],
                        "labels": {"host": scrape_host.name, **scrape_host.labels}})
    return configs


def prometheus_config(hosts: Iterable[ScrapeHost], settings: PrometheusSettings | None = None) -> dict[str, Any]:
    """The prometheus.yml document: one job per exporter, one target per host, ``host`` label."""
    hosts = list(hosts)
    settings = settings or PrometheusSettings()
    names = [h.name for h in hosts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"two inventory hosts share the host label {', '.join(duplicates)}")
    jobs: list[dict[str, Any]] = [
        {"job_name": JOB_PROMETHEUS, "static_configs": [{"targets": ["localhost:9090"]}]},
    ]
    for job, port_of in ((JOB_NODE, lambda h: h.node_port), (JOB_DCGM, lambda h: h.dcgm_port),
                         (JOB_ENGINE, lambda h: h.engine_port)):
        static = _static(hosts, port_of)
        if static:
            jobs.append({"job_name": job, "static_configs": static})
    by_path: dict[str, list[ScrapeHost]] = {}
    for scrape_host in hosts:
        if scrape_host.gateway_port is not None:
            by_path.setdefault(scrape_host.gateway_path, []).append(scrape_host)
    for index, (path, group) in enumerate(sorted(by_path.items())):
        job: dict[str, Any] = {
            "job_name": JOB_GATEWAY if index == 0 else f"{JOB_GATEWAY}-{index}",
            "metrics_path": path, "scheme": settings.gateway_scheme,
            "static_configs": _static(group, lambda h: h.gateway_port),
        }
        if settings.gateway_scheme == "https":
            tls: dict[str, Any] = {"insecure_skip_verify": settings.gateway_insecure_skip_verify}
            if settings.gateway_ca_file:
                tls["ca_file"] = settings.gateway_ca_file
            job["tls_config"] = tls
        jobs.append(job)
    document: dict[str, Any] = {
        "global": {"scrape_interval": settings.scrape_interval,
                   "evaluation_interval": settings.evaluation_interval},
    }
    if settings.alertmanagers:
        document["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(settings.alertmanagers)}]}]}
    return document | {"rule_files": list(settings.rule_files), "scrape_configs": jobs}


# Receiver names in alertmanager.yml.
RECEIVER_DEFAULT, RECEIVER_PAGE = "deepseek-webhooks", "deepseek-webhooks-and-email"
SEVERITIES: Final = ("critical", "warning", "info")


@dataclass(frozen=True, slots=True)
class AlertmanagerSettings:
    """Where alerts go. Webhooks get every alert; email the ``email_severities`` only."""

    webhook_urls: tuple[str, ...] = ()
    email_to: tuple[str, ...] = ()
    email_from: str | None = None
    smtp_smarthost: str | None = None  # host:port
    smtp_auth_username: str | None = None
    smtp_auth_password_file: str | None = None  # on the Alertmanager host: the secret never enters the config
    smtp_require_tls: bool = True
    email_severities: tuple[str, ...] = ("critical",)
    group_by: tuple[str, ...] = ("alertname", "host")
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"


def _matcher_regex(values: Iterable[str]) -> str:
    return "|".join(re.escape(v) for v in sorted(set(values)))


def alertmanager_config(settings: AlertmanagerSettings, node_down_alert: str,
                        node_alerts: Iterable[str]) -> dict[str, Any]:
    """The alertmanager.yml document.

    One route tree: every alert to the webhooks, the email severities to webhooks and email.
    Inhibition: ``node_down_alert`` on a host silences that host's ``node_alerts`` (a node
    that is down is one page, not one per GPU), and a critical alert silences the warning
    of the same alert on the same host. With no receiver at all the alerts stay in
    Alertmanager (its UI and API): the caller says so.
    """
    webhooks = [{"url": url, "send_resolved": True} for url in settings.webhook_urls]
    receivers: list[dict[str, Any]] = [{"name": RECEIVER_DEFAULT, **({"webhook_configs": webhooks} if webhooks else {})}]
    route: dict[str, Any] = {
        "receiver": RECEIVER_DEFAULT, "group_by": list(settings.group_by), "group_wait": settings.group_wait,
        "group_interval": settings.group_interval, "repeat_interval": settings.repeat_interval,
    }
    document: dict[str, Any] = {}
    if settings.email_to:
        if not (settings.email_from and settings.smtp_smarthost):
            raise ValueError("email receivers need a sender (email_from) and a smarthost (smtp_smarthost)")
        smtp: dict[str, Any] = {"smtp_smarthost": settings.smtp_smarthost, "smtp_from": settings.email_from,
                                "smtp_require_tls": settings.smtp_require_tls}
        if settings.smtp_auth_username:
            smtp["smtp_auth_username"] = settings.smtp_auth_username
        if settings.smtp_auth_password_file:
            smtp["smtp_auth_password_file"] = settings.smtp_auth_password_file
        document["global"] = smtp
        emails = [{"to": to, "send_resolved": True} for to in settings.email_to]
        receivers.append({"name": RECEIVER_PAGE, "email_configs": emails,
                          **({"webhook_configs": [dict(w) for w in webhooks]} if webhooks else {})})
        route["routes"] = [{"matchers": [f'severity=~"{_matcher_regex(settings.email_severities)}"'],
                            "receiver": RECEIVER_PAGE}]
    silenced = sorted(set(node_alerts) - {node_down_alert})
    inhibit: list[dict[str, Any]] = [
        {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
         "equal": ["alertname", "host"]},
    ]
    if silenced:
        inhibit.insert(0, {"source_matchers": [f'alertname="{node_down_alert}"'],
                           "target_matchers": [f'alertname=~"{_matcher_regex(silenced)}"'], "equal": ["host"]})
    return document | {"route": route, "receivers": receivers, "inhibit_rules": inhibit}


def dump_yaml(document: Any, header: str = "") -> str:
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    return (f"# {header}\n" if header else "") + body


def render_rules(templates: Mapping[str, str], thresholds: Mapping[str, Any]) -> dict[str, str]:
    """Fill each rule template (name -> Jinja text) with the thresholds; missing values fail."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    rendered = {}
    for name, text in sorted(templates.items()):
        rendered[name] = env.from_string(text).render(**thresholds)
        yaml.safe_load(rendered[name])  # a template that renders to bad YAML fails here
    return rendered


def rule_expressions(rules_text: str) -> dict[str, str]:
    """alert name -> expr of a rendered rules file."""
    document = yaml.safe_load(rules_text) or {}
    return {rule["alert"]: rule["expr"] for group in document.get("groups", [])
            for rule in group.get("rules", []) if "alert" in rule}


def parse_apt_policy(lines: Iterable[str]) -> dict[str, dict[str, str | None]]:
    """``apt-cache policy <pkgs>`` -> {package: {"installed": ver|None, "candidate": ver|None}}.

    A package apt has never heard of is absent from the output, so it is absent here too.
    """
    result: dict[str, dict[str, str | None]] = {}
    current: str | None = None
    for line in lines:
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            current = line.strip()[:-1]
            result[current] = {"installed": None, "candidate": None}
            continue
        stripped = line.strip()
        if current is None:
            continue
        for key, label in (("installed", "Installed:"), ("candidate", "Candidate:")):
            if stripped.startswith(label):
                value = stripped[len(label):].strip()
                result[current][key] = None if value in ("", "(none)") else value
    return result
