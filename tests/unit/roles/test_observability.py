"""Observability roles: bad data refused naming host and key; the rendered nftables rules,
filebeat.yml and the node helper scripts behave as the roles rely on."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import jinja2
import pytest
import yaml
from pyinfra.api import Config, Inventory, State
from pyinfra.api.exceptions import DeployError

from roles import template_path
from roles.exporters import tasks as exporters
from roles.filebeat import tasks as filebeat
from roles.filebeat.defaults import FilebeatDefaults
from roles.settings import validate_inventory

ROOT = Path(__file__).resolve().parents[3]
BIN = ROOT / "roles/exporters/files/opt/deepseek/bin"

BAD_INPUTS = [
    ("cidr", {"exporters_monitoring_networks": ["10.0.0.0/33"]}, "exporters_monitoring_networks", "not a CIDR"),
    ("port", {"exporters_node_exporter_port": 70000}, "exporters_node_exporter_port", "less than or equal to 65535"),
    ("unit", {"exporters_dcgm_service": "dcgm; reboot"}, "exporters_dcgm_service", "not a systemd unit name"),
    ("engine-url", {"exporters_engine_metrics_url": "ftp://x"}, "exporters_engine_metrics_url", "http://"),
    ("duration", {"monitoring_gpu_memory_for": "5 minutes"}, "monitoring_gpu_memory_for", "Prometheus duration"),
    ("percent", {"monitoring_gpu_util_percent": 150}, "monitoring_gpu_util_percent", "less than or equal to 100"),
    ("bandwidth", {"monitoring_network_min_bytes_per_s": 0}, "monitoring_network_min_bytes_per_s", "greater than 0"),
    ("mode", {"netcheck_mode": "mesh"}, "netcheck_mode", "'ring' or 'all'"),
    ("logstash", {"filebeat_logstash_hosts": ["logstash"]}, "filebeat_logstash_hosts", "host:port"),
    ("repo", {"filebeat_apt_repo_url": "mirror/elastic"}, "filebeat_apt_repo_url", "URL"),
]


@pytest.mark.parametrize(("data", "key", "words"), [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_data_is_refused_naming_host_and_key(data, key, words):
    state = State(Inventory(([("gpu-a01", data)], {})), Config())
    with pytest.raises(DeployError) as error:
        validate_inventory(state)
    assert f"gpu-a01: {key}: " in str(error.value) and words in str(error.value), str(error.value)


def _render(role_module, destination: str, **context) -> str:
    return jinja2.Template(Path(template_path(role_module, destination)).read_text()).render(**context)


def _nft_rules(ipv4, ipv6) -> str:
    return _render(exporters.__package__, exporters.NFT_RULES, ports=[9100, 9400, 9401], ipv4=ipv4, ipv6=ipv6)


def test_nft_rules_accept_monitoring_networks_then_drop_the_metrics_ports():
    text = _nft_rules(["10.20.0.0/16"], ["fd00::/8"])
    lines = [line.strip() for line in text.splitlines()]
    accept = lines.index("ip saddr @monitoring_v4 tcp dport { 9100, 9400, 9401 } accept")
    assert lines.index("ip6 saddr @monitoring_v6 tcp dport { 9100, 9400, 9401 } accept") > accept
    assert lines.index("tcp dport { 9100, 9400, 9401 } drop") > accept
    assert "elements = { 10.20.0.0/16 }" in text
    empty = _nft_rules([], [])
    assert "monitoring_v4" not in empty and "tcp dport { 9100, 9400, 9401 } drop" in empty


@pytest.mark.parametrize(("ipv4", "ipv6"), [(["10.20.0.0/16", "192.168.1.0/24"], ["fd00::/8"]), ([], [])])
def test_nft_rules_parse_with_nft(tmp_path, ipv4, ipv6):
    if shutil.which("nft") is None:
        pytest.skip("nft missing (Debian package nftables)")
    rules = tmp_path / "rules.nft"
    rules.write_text(_nft_rules(ipv4, ipv6))
    result = subprocess.run(["nft", "-c", "-f", str(rules)], capture_output=True, text=True, check=False)
    if "Operation not permitted" in result.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN here")
    assert result.returncode == 0, result.stderr


def test_filebeat_yml_ships_the_request_log_to_every_logstash_host():
    config = FilebeatDefaults(filebeat_logstash_hosts=("ls-1.example.internal:5044", "[fd00::9]:5044"),
                              filebeat_logstash_ssl_ca="/etc/ssl/certs/site-ca.pem")
    document = yaml.safe_load(_render(filebeat.__package__, filebeat.CONFIG, **filebeat.render_context(config)))
    (request_input,) = document["filebeat.inputs"]
    assert request_input["type"] == "filestream" and request_input["paths"] == ["/var/log/deepseek/gateway/requests.jsonl"]
    assert request_input["parsers"] == [{"ndjson": {"target": "deepseek", "add_error_key": True}}]
    output = document["output.logstash"]
    assert output["hosts"] == ["ls-1.example.internal:5044", "[fd00::9]:5044"] and output["loadbalance"] is True
    assert output["ssl.certificate_authorities"] == ["/etc/ssl/certs/site-ca.pem"]
    plain = yaml.safe_load(_render(filebeat.__package__, filebeat.CONFIG, **filebeat.render_context(
        FilebeatDefaults(filebeat_logstash_hosts=("ls:5044",)))))
    assert "ssl.enabled" not in plain["output.logstash"] and plain["output.logstash"]["loadbalance"] is False


def test_node_state_script_counts_reboot_reasons(tmp_path):
    reasons = tmp_path / "state" / "reboot-required.d"
    reasons.mkdir(parents=True)
    for name in ("kernel-cmdline", "hugepages"):
        (reasons / f"{name}.json").write_text(json.dumps({"reason": name}))
    (reasons / "notes.txt").write_text("not a reason")
    subprocess.run([sys.executable, BIN / "deepseek-node-state-metrics", tmp_path / "state", tmp_path], check=True)
    text = (tmp_path / "deepseek-node-state.prom").read_text()
    assert "\ndeepseek_reboot_required 2\n" in text
    if not Path("/proc/driver/nvidia/version").exists():
        assert "deepseek_nvidia_driver_loaded 0" in text and "mismatch{" not in text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_engine_relay_exposes_only_metrics():
    class Engine(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"vllm:num_requests_running 3\n" if self.path == "/metrics" else b"secret completion API"
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    engine = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Engine)
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    port = _free_port()
    relay = subprocess.Popen([sys.executable, BIN / "deepseek-engine-metrics-relay", str(port),
                              f"http://127.0.0.1:{engine.server_address[1]}/metrics"])
    try:
        for _ in range(50):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
                break
            except urllib.error.URLError:
                time.sleep(0.1)
        assert body == b"vllm:num_requests_running 3\n"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=2)
        assert refused.value.code == 404
    finally:
        relay.terminate()
        relay.wait(5)
        engine.shutdown()


def test_elk_configuration_covers_every_field_of_the_gateway_log_line():
    """Every field the gateway logs has an Elasticsearch type; numbers are converted by Logstash."""
    import json
    import re
    from pathlib import Path

    from deepseek_node.gateway.requestlog import FIELDS

    files = Path(__file__).resolve().parents[3] / "roles" / "filebeat" / "files"
    template = json.loads((files / "elasticsearch" / "deepseek-requests-template.json").read_text())
    mapped = template["template"]["mappings"]["properties"]["deepseek"]["properties"]
    assert set(mapped) == set(FIELDS), f"mapped {sorted(mapped)}, logged {sorted(FIELDS)}"
    pipeline = (files / "logstash" / "deepseek-requests.conf").read_text()
    converted = dict(re.findall(r'"\[deepseek\]\[(\w+)\]" => "(\w+)"', pipeline))
    numeric = {name for name, spec in mapped.items() if spec["type"] in ("short", "integer", "float")}
    assert set(converted) == numeric, f"Logstash converts {sorted(converted)}, numeric fields {sorted(numeric)}"
