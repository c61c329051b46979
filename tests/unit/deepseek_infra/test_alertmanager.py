"""The generated alertmanager.yml, checked by Debian's own Alertmanager: amtool accepts it,
routes each severity to the receivers it should, and a running Alertmanager delivers an
alert to a webhook and holds back a node's GPU alerts while the node is down."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from deepseek_infra.monitoring import RECEIVER_DEFAULT, RECEIVER_PAGE, AlertmanagerSettings, alertmanager_config
from roles.exporters.defaults import ExportersDefaults
from roles.monitoring import tasks as monitoring
from roles.monitoring.defaults import MonitoringDefaults

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
needs_alertmanager = pytest.mark.skipif(
    ALERTMANAGER is None or shutil.which("amtool") is None,
    reason="Alertmanager missing: apt-get install prometheus-alertmanager (Debian ships amtool in it)",
)
EMAIL = {"monitoring_alert_email_to": ("oncall@bank.example",), "monitoring_alert_email_from": "am@bank.example",
         "monitoring_alert_smtp_smarthost": "smtp.bank.example:587"}


def _document(**settings) -> str:
    targets = [monitoring.scrape_host("gpu-a01", "10.0.0.11", ExportersDefaults(), gpu_node=True)]
    return monitoring.fleet_files(targets, MonitoringDefaults(**settings))[monitoring.ALERTMANAGER]


def _amtool(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, check=False, cwd=path.parent)


def test_a_down_node_silences_the_alerts_of_the_gpu_rules_only():
    rules = monitoring.fleet_files([], MonitoringDefaults())[f"rules/{monitoring.GPU_RULES}"]
    gpu_alerts = {rule["alert"] for group in yaml.safe_load(rules)["groups"] for rule in group["rules"]}
    (node_down, severity) = yaml.safe_load(_document())["inhibit_rules"]
    assert node_down["source_matchers"] == [f'alertname="{monitoring.NODE_DOWN_ALERT}"']
    assert node_down["equal"] == ["host"]
    silenced = set(node_down["target_matchers"][0].removeprefix('alertname=~"').removesuffix('"').split("|"))
    assert silenced == gpu_alerts and "GpuXidError" in silenced and "EngineDown" not in silenced
    assert severity["equal"] == ["alertname", "host"]


def test_email_needs_a_sender_and_a_relay_named():
    with pytest.raises(ValueError, match="also set monitoring_alert_email_from and monitoring_alert_smtp_smarthost"):
        MonitoringDefaults(monitoring_alert_email_to=("oncall@bank.example",))
    with pytest.raises(ValueError, match="email_from"):
        alertmanager_config(AlertmanagerSettings(email_to=("a@b.example",)), "NodeExporterDown", [])
    for bad in ({"monitoring_alert_webhook_urls": ("hooks.bank.example/x",)},
                {"monitoring_alert_email_to": ("oncall",)}, {"monitoring_alert_smtp_smarthost": "smtp.bank.example"},
                {"monitoring_alertmanager_listen": "9093"}, {"monitoring_alert_group_wait": "soon"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MonitoringDefaults(**bad)


def test_prometheus_sends_to_the_own_alertmanager_or_the_sites():
    targets = [monitoring.scrape_host("gpu-a01", "10.0.0.11", ExportersDefaults(), gpu_node=True)]
    def alerting(**settings):
        document = yaml.safe_load(monitoring.fleet_files(targets, MonitoringDefaults(**settings))["prometheus.yml"])
        return [t for a in document.get("alerting", {}).get("alertmanagers", []) for c in a["static_configs"]
                for t in c["targets"]]
    assert alerting() == ["127.0.0.1:9093"]
    assert alerting(monitoring_alertmanager_listen="0.0.0.0:9193") == ["localhost:9193"]
    assert alerting(monitoring_alertmanager_targets=("am1.bank.example:9093", "am2.bank.example:9093")) == [
        "am1.bank.example:9093", "am2.bank.example:9093"]
    assert alerting(monitoring_alertmanager_enabled=False) == []


@needs_alertmanager
@pytest.mark.parametrize("settings", [{}, {"monitoring_alert_webhook_urls": ("https://hooks.bank.example/a",)}, EMAIL,
                                      {**EMAIL, "monitoring_alert_smtp_username": "am",
                                       "monitoring_alert_smtp_password_file": "/etc/prometheus/smtp-password"}])
def test_amtool_accepts_the_configuration(tmp_path, settings):
    path = tmp_path / "alertmanager.yml"
    path.write_text(_document(**settings))
    result = _amtool(path, "check-config", str(path))
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


@needs_alertmanager
def test_each_severity_reaches_its_receivers(tmp_path):
    path = tmp_path / "alertmanager.yml"
    path.write_text(_document(monitoring_alert_webhook_urls=("https://hooks.bank.example/a",),
                              monitoring_alert_email_severities=("critical", "warning"), **EMAIL))
    for labels, receiver in ((("alertname=GpuXidError", "severity=critical"), RECEIVER_PAGE),
                             (("alertname=NetworkBandwidthLow", "severity=warning"), RECEIVER_PAGE),
                             (("alertname=NodeRebootRequired", "severity=info"), RECEIVER_DEFAULT)):
        result = _amtool(path, "config", "routes", "test", f"--config.file={path}", *labels)
        assert result.stdout.strip() == receiver, f"{labels}: expected {receiver}, found {result.stdout}{result.stderr}"


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _api(port: int, path: str, body: object | None = None) -> object:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2/{path}", method="POST" if body else "GET",
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as reply:
        text = reply.read()
    return json.loads(text) if text else None


@needs_alertmanager
def test_a_running_alertmanager_delivers_to_the_webhook_and_inhibits_a_down_nodes_gpus(tmp_path):
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    port = _free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(_document(monitoring_alert_webhook_urls=(f"http://127.0.0.1:{hook.server_port}/hook",),
                                monitoring_alert_group_wait="1s", monitoring_alertmanager_listen=f"127.0.0.1:{port}"))
    arguments = monitoring.alertmanager_arguments(MonitoringDefaults(monitoring_alertmanager_listen=f"127.0.0.1:{port}"))
    process = subprocess.Popen([ALERTMANAGER, f"--config.file={config}", f"--storage.path={tmp_path}",
                                *arguments.split()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            try:
                _api(port, "status")
                break
            except OSError:
                time.sleep(0.1)
        now = datetime.now(timezone.utc)
        ends = (now + timedelta(minutes=5)).isoformat()
        def alert(name, host, severity):
            return {"labels": {"alertname": name, "host": host, "severity": severity}, "startsAt": now.isoformat(),
                    "endsAt": ends, "annotations": {"summary": f"{name} on {host}"}}
        _api(port, "alerts", [alert("NodeExporterDown", "gpu-a01", "warning"),
                              alert("GpuTemperatureHigh", "gpu-a01", "warning"),
                              alert("GpuTemperatureHigh", "gpu-a02", "warning")])
        deadline = time.monotonic() + 20
        delivered: set[tuple[str, str]] = set()
        while time.monotonic() < deadline and len(delivered) < 2:
            delivered = {(a["labels"]["alertname"], a["labels"]["host"]) for body in _Receiver.received
                         for a in body["alerts"] if a["status"] == "firing"}
            time.sleep(0.2)
        states = {(a["labels"]["alertname"], a["labels"]["host"]): a["status"] for a in _api(port, "alerts")}
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=20)
        hook.shutdown()
    assert delivered == {("NodeExporterDown", "gpu-a01"), ("GpuTemperatureHigh", "gpu-a02")}, (
        f"webhook: expected the node-down alert and the other node's GPU alert, found {delivered}\n{errors[-2000:]}")
    held = states[("GpuTemperatureHigh", "gpu-a01")]
    assert held["state"] == "suppressed" and held["inhibitedBy"], f"gpu-a01's GPU alert: expected inhibited, found {held}"
    assert states[("GpuTemperatureHigh", "gpu-a02")]["state"] == "active"

