"""The exporters answer: node exporter on its port with node_ and deepseek_ metrics,
dcgm-exporter where DCGM is installed, the engine relay with /metrics only, and the
nftables rules that keep the ports to the monitoring network."""

import pytest

from roles.exporters import tasks as exporters
from roles.exporters.defaults import ExportersDefaults

DEFAULTS = ExportersDefaults()


def _get(host, port: int, path: str = "/metrics"):
    return host.run(f"curl -s -o /tmp/.verify-body -w '%{{http_code}}' http://127.0.0.1:{port}{path}; echo; "
                    "cat /tmp/.verify-body; rm -f /tmp/.verify-body")


def test_node_exporter_running(host):
    service = host.service(DEFAULTS.exporters_node_exporter_package)
    assert service.is_enabled and service.is_running, (
        f"{host.backend.hostname}: {DEFAULTS.exporters_node_exporter_package}: expected enabled and running, "
        f"found enabled={service.is_enabled} running={service.is_running}")


def test_node_exporter_serves_node_and_textfile_metrics(host):
    port = DEFAULTS.exporters_node_exporter_port
    result = _get(host, port)
    code, _, body = result.stdout.partition("\n")
    assert code == "200", f"{host.backend.hostname}: :{port}/metrics: expected HTTP 200, found {code!r} {result.stderr}"
    assert "\nnode_cpu_seconds_total{" in body, f"{host.backend.hostname}: :{port}: expected node_ metrics, found none"
    assert "\ndeepseek_reboot_required " in body, (
        f"{host.backend.hostname}: :{port}: expected deepseek_reboot_required from the textfile collector, found none")
    assert "\nnode_textfile_scrape_error 0" in body, (
        f"{host.backend.hostname}: {DEFAULTS.exporters_textfile_dir}: expected every textfile readable, found a scrape error")


def test_node_state_timer_active(host):
    timer = host.service(f"{exporters.NODE_STATE}.timer")
    assert timer.is_enabled and timer.is_running, f"{host.backend.hostname}: {exporters.NODE_STATE}.timer: expected active"


def test_dcgm_exporter_where_installed(host):
    package = DEFAULTS.exporters_dcgm_exporter_package
    if not host.package(package).is_installed:
        pytest.skip(f"{host.backend.hostname}: {package} not installed (not offered by this host's apt sources)")
    port = DEFAULTS.exporters_dcgm_exporter_port
    code, _, body = _get(host, port).stdout.partition("\n")
    assert code == "200" and "DCGM_FI_DEV_GPU_UTIL" in body, (
        f"{host.backend.hostname}: :{port}/metrics: expected DCGM_FI_DEV_GPU_UTIL, found HTTP {code!r}")


def test_engine_relay_exposes_only_metrics(host):
    port = DEFAULTS.exporters_engine_relay_port
    relay = host.service(f"{exporters.RELAY}.service")
    assert relay.is_running, f"{host.backend.hostname}: {exporters.RELAY}: expected running, found stopped"
    code = _get(host, port, "/v1/models").stdout.partition("\n")[0]
    assert code == "404", f"{host.backend.hostname}: :{port}/v1/models: expected 404 (metrics only), found {code!r}"
    metrics = _get(host, port).stdout.partition("\n")[0]
    assert metrics in ("200", "502"), f"{host.backend.hostname}: :{port}/metrics: expected 200 or 502 (engine down), found {metrics!r}"


def test_firewall_rules_written(host, in_container):
    rules = host.file(exporters.NFT_RULES)
    assert rules.exists, f"{host.backend.hostname}: {exporters.NFT_RULES}: expected the rules file, found none"
    for port in (DEFAULTS.exporters_node_exporter_port, DEFAULTS.exporters_dcgm_exporter_port,
                 DEFAULTS.exporters_engine_relay_port):
        assert str(port) in rules.content_string, f"{host.backend.hostname}: {exporters.NFT_RULES}: expected port {port}"
    assert host.file("/etc/nftables.conf").contains(exporters.NFT_INCLUDE.replace("*", "\\*")), (
        f"{host.backend.hostname}: /etc/nftables.conf: expected {exporters.NFT_INCLUDE}")
    if in_container:
        pytest.skip(f"{host.backend.hostname}: a container cannot load nftables rules (no CAP_NET_ADMIN)")
    loaded = host.run("nft list table inet deepseek_exporters")
    assert loaded.rc == 0, f"{host.backend.hostname}: nft table deepseek_exporters: expected loaded, found {loaded.stderr}"
