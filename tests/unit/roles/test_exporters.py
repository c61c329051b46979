"""The exporters role: the rendered nftables rules and the node helper scripts behave as
the role relies on (only the monitoring networks reach the metrics ports)."""

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

from roles import template_path
from roles.exporters import tasks as exporters

ROOT = Path(__file__).resolve().parents[3]
BIN = ROOT / "roles/exporters/files/opt/deepseek/bin"


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
