"""exporters: the metrics every node exposes to the monitoring network.

Prometheus node exporter (Debian package, port 9100) with a textfile directory for the
collection's own metrics (network check, weights verification, node state); NVIDIA DCGM
and dcgm-exporter (port 9400) when the configured apt sources offer them (the NVIDIA
source or site mirror), skipped with a warning otherwise; a relay that exposes only the
engine's loopback /metrics; nftables rules that keep these ports to the monitoring network.
"""

from __future__ import annotations

import ipaddress
from importlib.resources import files as resources

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import apt, files, server, systemd

from deepseek_node import paths
from deepseek_infra.operations import sync
from roles import template_path
from roles.exporters.defaults import ExportersDefaults
from roles.exporters.operations import installed, packages_if_available

BIN_DIR = f"{paths.SOFTWARE_DIR}/bin"
NODE_EXPORTER_DEFAULTS = "/etc/default/prometheus-node-exporter"
DCGM_COUNTERS = "/etc/dcgm-exporter/deepseek-counters.csv"
RELAY = "deepseek-engine-metrics-relay"
NODE_STATE = "deepseek-node-state-metrics"
NFT_RULES = "/etc/nftables.d/deepseek-exporters.nft"
NVIDIA_HINT = "add the NVIDIA CUDA repository or the site mirror of it before this role"
NFT_INCLUDE = 'include "/etc/nftables.d/*.nft"'


def _file(destination: str) -> str:
    """A role file shipped as-is, named after its destination (``files/etc/x.csv``)."""
    return str(resources(__package__) / "files" / destination.lstrip("/"))


def _unit(name: str, template: str, **context) -> bool:
    dest = f"/etc/systemd/system/{name}"
    return sync.template_synced(
        name=f"Ensure {dest} is current", src=template_path(__package__, f"/etc/systemd/system/{template}"),
        dest=dest, mode="0644", **context,
    ).changed


@deploy("exporters: install")
def install(config: ExportersDefaults) -> None:
    from deepseek_infra.facts.host import hardware_part  # no round trip once preflight has read the hardware
    from deepseek_infra.hardware import Virtualization

    in_container = bool(hardware_part(host, Virtualization).container)
    apt.packages(
        name="Ensure the node exporter (and nftables, python3 for the helpers) is installed",
        packages=[config.exporters_node_exporter_package, "python3", *(["nftables"] if config.exporters_firewall else [])],
        no_recommends=True,
    )
    files.directory(name=f"Ensure {BIN_DIR} exists", path=BIN_DIR, user="root", group="root", mode="0755")
    _node_exporter(config)
    _node_state_metrics(config)
    if config.exporters_engine_relay_port is not None:
        _engine_relay(config)
    if config.exporters_dcgm_enabled:
        _dcgm(config)
    if config.exporters_firewall:
        _firewall(config, in_container)


def _node_exporter(config: ExportersDefaults) -> None:
    args = sync.template_synced(
        name=f"Ensure {NODE_EXPORTER_DEFAULTS} sets the port and textfile directory",
        src=template_path(__package__, NODE_EXPORTER_DEFAULTS), dest=NODE_EXPORTER_DEFAULTS, mode="0644",
        port=config.exporters_node_exporter_port, textfile_dir=config.exporters_textfile_dir,
    )
    files.directory(
        name=f"Ensure {config.exporters_textfile_dir} exists", path=config.exporters_textfile_dir, mode="0755",
    )
    systemd.service(
        name="Ensure the node exporter is enabled and running", service=config.exporters_node_exporter_package,
        enabled=True, running=True, restarted=args.changed,
    )


def _node_state_metrics(config: ExportersDefaults) -> None:
    script = sync.file_synced(
        name=f"Ensure {BIN_DIR}/{NODE_STATE} is current", src=_file(f"/opt/deepseek/bin/{NODE_STATE}"),
        dest=f"{BIN_DIR}/{NODE_STATE}", mode="0755",
    )
    files.directory(
        name=f"Ensure {paths.STATE_DIR}/reboot-required.d exists", path=f"{paths.STATE_DIR}/reboot-required.d",
        user="root", group="root", mode="0755",
    )
    changed = [
        _unit(f"{NODE_STATE}.service", f"{NODE_STATE}.service", script=f"{BIN_DIR}/{NODE_STATE}",
              state_dir=paths.STATE_DIR, textfile_dir=config.exporters_textfile_dir),
        _unit(f"{NODE_STATE}.timer", f"{NODE_STATE}.timer"),
    ]
    systemd.service(
        name=f"Ensure {NODE_STATE}.timer is enabled and running", service=f"{NODE_STATE}.timer",
        enabled=True, running=True, daemon_reload=any(changed), restarted=script.changed or any(changed),
    )


def _engine_relay(config: ExportersDefaults) -> None:
    script = sync.file_synced(
        name=f"Ensure {BIN_DIR}/{RELAY} is current", src=_file(f"/opt/deepseek/bin/{RELAY}"),
        dest=f"{BIN_DIR}/{RELAY}", mode="0755",
    )
    unit = _unit(f"{RELAY}.service", f"{RELAY}.service", script=f"{BIN_DIR}/{RELAY}",
                 port=config.exporters_engine_relay_port, url=config.exporters_engine_metrics_url)
    systemd.service(
        name=f"Ensure the engine metrics relay is enabled and running on port {config.exporters_engine_relay_port}",
        service=f"{RELAY}.service", enabled=True, running=True, daemon_reload=unit,
        restarted=unit or script.changed,
    )


DCGM3 = "datacenter-gpu-manager"  # DCGM 3 (last 1:3.3.9): NVIDIA's guide purges it before DCGM 4


def _dcgm(config: ExportersDefaults) -> None:
    dcgm = tuple(config.exporters_dcgm_packages)
    exporter = (config.exporters_dcgm_exporter_package,)
    if DCGM3 not in dcgm:
        apt.packages(name="Ensure DCGM 3 is not installed (DCGM 4 and its exporter replace it)", packages=[DCGM3],
                     present=False, purge=True)
    packages_if_available(name="Ensure NVIDIA DCGM is installed (when the apt sources offer it)",
                          packages=list(dcgm), component="DCGM", hint=NVIDIA_HINT)
    systemd.service(
        name=f"Ensure {config.exporters_dcgm_service} is enabled and running", service=config.exporters_dcgm_service,
        enabled=True, running=True, _if=lambda: installed(dcgm),
    )
    packages_if_available(name="Ensure dcgm-exporter is installed (when the apt sources offer it)",
                          packages=list(exporter), component="dcgm-exporter", hint=NVIDIA_HINT)
    present = lambda: installed(dcgm + exporter)
    files.directory(name="Ensure /etc/dcgm-exporter exists", path="/etc/dcgm-exporter", mode="0755", _if=present)
    counters = sync.file_synced(
        name=f"Ensure {DCGM_COUNTERS} lists the fields the alert rules read",
        src=_file(DCGM_COUNTERS), dest=DCGM_COUNTERS, mode="0644", _if=present,
    )
    service = config.exporters_dcgm_exporter_service
    unit = _unit(f"{service}.service", "dcgm-exporter.service", _if=present,
                 port=config.exporters_dcgm_exporter_port, binary=config.exporters_dcgm_exporter_binary,
                 counters=DCGM_COUNTERS, dcgm_service=config.exporters_dcgm_service)
    systemd.service(
        name=f"Ensure {service} is enabled and running on port {config.exporters_dcgm_exporter_port}",
        service=f"{service}.service", enabled=True, running=True, daemon_reload=unit,
        restarted=unit or counters.changed, _if=present,
    )


def _firewall(config: ExportersDefaults, in_container: bool) -> None:
    networks = [ipaddress.ip_network(n) for n in config.exporters_monitoring_networks]
    ports = sorted({p for p in (config.exporters_node_exporter_port, config.exporters_engine_relay_port,
                                config.exporters_dcgm_exporter_port if config.exporters_dcgm_enabled else None)
                    if p is not None})
    files.directory(name="Ensure /etc/nftables.d exists", path="/etc/nftables.d", mode="0755")
    rules = sync.template_synced(
        name=f"Ensure {NFT_RULES} limits ports {', '.join(map(str, ports))} to the monitoring network",
        src=template_path(__package__, NFT_RULES), dest=NFT_RULES, mode="0644", ports=ports,
        ipv4=[str(n) for n in networks if n.version == 4], ipv6=[str(n) for n in networks if n.version == 6],
    )
    include = files.line(
        name="Ensure /etc/nftables.conf includes /etc/nftables.d", path="/etc/nftables.conf",
        line=NFT_INCLUDE, escape_regex_characters=True,
    )
    if in_container:
        logger.warning(f"{host.name}: exporters: in a container nftables cannot load; "
                       f"{NFT_RULES} is written and loads at boot on a real host")
        return
    systemd.service(name="Ensure nftables is enabled at boot", service="nftables", enabled=True)
    server.shell(
        name=f"Load {NFT_RULES}", commands=[f"nft -f {NFT_RULES}"], _if=lambda: rules.did_change() or include.did_change(),
    )