"""Prometheus for the whole fleet: `pyinfra inventories/prod.py deploy/monitoring.py`.

Scrape targets come from every host of the inventory (their exporters settings; engine and
gateway on replica heads only, hosts of multi-node replicas labelled with it); hosts in
the `monitoring` group get Debian's prometheus with the generated prometheus.yml, rules
and dashboard, and Debian's Alertmanager routing the alerts to the receivers in
monitoring_alert_* (webhooks, email). For your own Prometheus, write the files locally
(alertmanager.yml too) and change no host:

    pyinfra inventories/prod.py deploy/monitoring.py --data monitoring_output_dir=./monitoring
"""

from pathlib import Path

from pyinfra import host, logger

from deepseek_infra.monitoring import host_label
from deepseek_infra.runcache import run_cache
from roles.monitoring import tasks as monitoring
from roles.settings import replica_for, settings_for

config = settings_for(host).monitoring
targets = []
for member in host.state.inventory:
    replica = replica_for(member) if monitoring.GPU_GROUP in member.groups else None
    targets.append(monitoring.scrape_host(
        host_label(member.name), member.data.get("ssh_hostname") or host_label(member.name),
        settings_for(member).exporters, monitoring.GPU_GROUP in member.groups,
        replica=replica.name if replica and len(replica.hosts) > 1 else None,  # labels multi-node replicas
        head=replica is None or replica.is_head(member.name),
        engine=settings_for(member).deployment.deepseek_engine,
    ))
fleet = monitoring.fleet_files(targets, config)

if config.monitoring_output_dir:
    written = run_cache(host.state, "monitoring.written")  # the fleet files go out once per run
    if not written:
        out = Path(config.monitoring_output_dir)
        for relative, content in fleet.items():
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            (out / relative).write_text(content)
        written[str(out)] = True
        logger.info(f"monitoring: wrote {len(fleet)} files to {out} (prometheus.yml, rules/, grafana/); no host changed")
elif "monitoring" in host.groups:
    if config.monitoring_alertmanager_enabled and not config.receivers_configured():
        logger.warning(f"{host.name}: monitoring: no alert receiver is set (monitoring_alert_webhook_urls, "
                       "monitoring_alert_email_to): alerts reach Alertmanager's UI and API only")
    monitoring.install(config, fleet)
