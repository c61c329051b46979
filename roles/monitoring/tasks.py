"""monitoring: Prometheus configuration, alert rules and the Grafana dashboard for the fleet.

``fleet_files`` builds every file from the inventory (one scrape target per host and
exporter, ``host`` label) and the alert thresholds; ``install`` puts them on a host of the
``monitoring`` group running Debian's prometheus package; deploy/monitoring.py writes them
to a controller directory instead for sites that run their own Prometheus.
"""

from __future__ import annotations

from importlib.resources import files as resources
from io import StringIO

from pyinfra.api import deploy
from pyinfra.operations import apt, files, server, systemd

from deepseek_node import paths
from deepseek_infra.monitoring import (
    AlertmanagerSettings,
    PrometheusSettings,
    ScrapeHost,
    alertmanager_config,
    dump_yaml,
    prometheus_config,
    render_rules,
    rule_expressions,
)
from deepseek_infra.operations import sync
from roles.exporters.defaults import ExportersDefaults
from roles.monitoring.defaults import MonitoringDefaults
from roles.settings import SERVING_GROUP

PROMETHEUS_DIR = "/etc/prometheus"
DASHBOARD = "grafana/deepseek-fleet.json"
ALERTMANAGER = "alertmanager.yml"  # Debian's prometheus-alertmanager reads /etc/prometheus/alertmanager.yml
ALERTMANAGER_SERVICE = "prometheus-alertmanager"
ALERTMANAGER_DEFAULTS = "/etc/default/prometheus-alertmanager"  # the unit's EnvironmentFile: ARGS
NODE_DOWN_ALERT = "NodeExporterDown"
GPU_RULES = "deepseek-gpu.yml"  # its alerts are the ones a down node silences
GPU_GROUP = SERVING_GROUP  # hosts that run GPUs, the engine and the gateway
HEADER = "Managed by deepseek-infra (roles/monitoring): generated from the inventory."


def rule_templates() -> dict[str, str]:
    folder = resources(__package__) / "templates" / "etc" / "prometheus" / "rules"
    return {item.name.removesuffix(".j2"): item.read_text() for item in folder.iterdir() if item.name.endswith(".yml.j2")}


def dashboard() -> str:
    return (resources(__package__) / "files" / DASHBOARD).read_text()


def scrape_host(label: str, address: str, exporters: ExportersDefaults, gpu_node: bool,
                replica: str | None = None, head: bool = True, engine: str | None = None) -> ScrapeHost:
    """One host's targets. The engine and gateway are scraped on replica heads only: a worker
    of a multi-node replica serves no API (never an EngineDown or GatewayDown of its own);
    its node and GPU exporters are, with the replica's name as a label. A serving host's
    targets carry its ``engine`` (deepseek_engine): which GPU memory rule applies depends on it."""
    serves_api = gpu_node and head
    return ScrapeHost(
        name=label, address=exporters.exporters_scrape_address or address,
        node_port=exporters.exporters_node_exporter_port,
        dcgm_port=exporters.exporters_dcgm_exporter_port if gpu_node and exporters.exporters_dcgm_enabled else None,
        engine_port=exporters.exporters_engine_relay_port if serves_api else None,
        gateway_port=exporters.exporters_gateway_port if serves_api else None,
        gateway_path=exporters.exporters_gateway_metrics_path,
        labels={**({"replica": replica} if replica else {}), **({"engine": engine} if gpu_node and engine else {})},
    )


def fleet_files(targets: list[ScrapeHost], config: MonitoringDefaults) -> dict[str, str]:
    """Relative path -> content: prometheus.yml, rules/*.yml, grafana/deepseek-fleet.json."""
    settings = PrometheusSettings(
        scrape_interval=config.monitoring_scrape_interval,
        evaluation_interval=config.monitoring_evaluation_interval,
        gateway_scheme=config.monitoring_gateway_scheme,
        gateway_ca_file=config.monitoring_gateway_ca_file,
        gateway_insecure_skip_verify=config.monitoring_gateway_insecure_skip_verify,
        alertmanagers=config.alertmanagers(),
    )
    result = {"prometheus.yml": dump_yaml(prometheus_config(targets, settings), HEADER)}
    for name, text in render_rules(rule_templates(), config.thresholds()).items():
        result[f"rules/{name}"] = text
    result[DASHBOARD] = dashboard()
    result[ALERTMANAGER] = dump_yaml(alertmanager_config(
        alertmanager_settings(config), NODE_DOWN_ALERT, rule_expressions(result[f"rules/{GPU_RULES}"]),
    ), HEADER)
    return result


def alertmanager_settings(config: MonitoringDefaults) -> AlertmanagerSettings:
    return AlertmanagerSettings(
        webhook_urls=config.monitoring_alert_webhook_urls, email_to=config.monitoring_alert_email_to,
        email_from=config.monitoring_alert_email_from, smtp_smarthost=config.monitoring_alert_smtp_smarthost,
        smtp_auth_username=config.monitoring_alert_smtp_username,
        smtp_auth_password_file=config.monitoring_alert_smtp_password_file,
        smtp_require_tls=config.monitoring_alert_smtp_require_tls,
        email_severities=config.monitoring_alert_email_severities, group_wait=config.monitoring_alert_group_wait,
        group_interval=config.monitoring_alert_group_interval, repeat_interval=config.monitoring_alert_repeat_interval,
    )


def alertmanager_arguments(config: MonitoringDefaults) -> str:
    """ARGS of Debian's unit: the configured address, and no cluster port (one Alertmanager
    per monitoring host; Debian's default would listen for peers on 0.0.0.0:9094)."""
    return f"--web.listen-address={config.monitoring_alertmanager_listen} --cluster.listen-address="


@deploy("monitoring: install")
def install(config: MonitoringDefaults, fleet: dict[str, str]) -> None:
    apt.packages(
        name="Ensure Prometheus (and promtool) is installed", packages=[config.monitoring_prometheus_package],
        no_recommends=True,
    )
    files.directory(name=f"Ensure {PROMETHEUS_DIR}/rules exists", path=f"{PROMETHEUS_DIR}/rules", mode="0755")
    files.directory(name=f"Ensure {paths.CONFIG_DIR}/monitoring exists", path=f"{paths.CONFIG_DIR}/monitoring",
                    mode="0755")
    changed = []
    for relative, content in sorted(fleet.items()):
        if relative == ALERTMANAGER:
            continue
        dest = (f"{paths.CONFIG_DIR}/monitoring/{relative.rsplit('/', 1)[-1]}" if relative == DASHBOARD
                else f"{PROMETHEUS_DIR}/{relative}")
        put = sync.file_synced(name=f"Ensure {dest} is current", src=StringIO(content), dest=dest, mode="0644")
        if relative != DASHBOARD:
            changed.append(put)
    server.shell(
        name="Check the Prometheus configuration and rules (promtool)",
        commands=[f"promtool check config {PROMETHEUS_DIR}/prometheus.yml"],
        _if=lambda: any(op.did_change() for op in changed),
    )
    systemd.service(
        name="Ensure Prometheus is enabled and running", service="prometheus", enabled=True, running=True,
        reloaded=any(op.changed for op in changed),
    )
    if config.monitoring_alertmanager_enabled:
        install_alertmanager(config, fleet[ALERTMANAGER])


@deploy("monitoring: alertmanager")
def install_alertmanager(config: MonitoringDefaults, document: str) -> None:
    apt.packages(
        name="Ensure Alertmanager (and amtool) is installed", packages=[config.monitoring_alertmanager_package],
        no_recommends=True,
    )
    arguments = sync.file_synced(
        name=f"Ensure {ALERTMANAGER_DEFAULTS} sets Alertmanager's addresses",
        src=StringIO(f"# {HEADER}\nARGS=\"{alertmanager_arguments(config)}\"\n"), dest=ALERTMANAGER_DEFAULTS, mode="0644",
    )
    # 0640 root:prometheus: receiver URLs can carry tokens
    routes = sync.file_synced(name=f"Ensure {PROMETHEUS_DIR}/{ALERTMANAGER} is current", src=StringIO(document),
                              dest=f"{PROMETHEUS_DIR}/{ALERTMANAGER}", mode="0640", group="prometheus")
    server.shell(
        name="Check the Alertmanager configuration (amtool)",
        commands=[f"amtool check-config {PROMETHEUS_DIR}/{ALERTMANAGER}"],
        _if=routes.did_change,
    )
    systemd.service(
        name="Ensure Alertmanager is enabled and running", service=ALERTMANAGER_SERVICE, enabled=True, running=True,
        # a restart, not a reload: a SIGHUP that lands while it starts kills it (no handler yet);
        # silences and the notification log persist in its storage across the restart
        restarted=arguments.changed or routes.changed,
    )
