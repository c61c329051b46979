"""Lab integration of observability: a two-node fleet of its own, real measurements end to end.

One run of base + nvidia_driver + exporters + monitoring puts the NVIDIA stack, DCGM and
dcgm-exporter on both nodes from the fleet's NVIDIA mirror (lab/mirror) and Prometheus on
the first (group `monitoring`). Then: dcgm-exporter serves every GPU of each node's profile
with the values its nvidia-smi reports; node exporter serves node_ metrics read from the
node's (profile's) /proc; a second run changes nothing; deploy/netcheck.py measures every
pair with real iperf3 between the two containers, its figure reaches node exporter's
textfile collector and Prometheus, and the NetworkBandwidthLow alert fires exactly for the
pairs the report calls below its threshold; the netcheck timer that run left on each node
measures again on its own and exports the figure; with the floor raised above every figure,
the alert goes from Prometheus through Debian's Alertmanager to a webhook receiver; the gateway's real request log line, decoded
with the rendered filebeat.yml's ndjson rules, carries every field the Elasticsearch
template maps (the Filebeat binary itself is not run: Elastic's packages are not in the lab).

The fleet is DEEPSEEK_LAB_MONITORING_FLEET (default "monlab"), created fresh and brought down.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import warnings
from datetime import datetime
from functools import partial
from pathlib import Path

import jinja2
import pytest
import yaml

from lab import gateway_lab, hwsim, mirror, tiny_model
from lab.mirror import catalog
from lab.testing import fleet_run
from deepseek_infra import netcheck
from deepseek_node.gateway.requestlog import FIELDS
from deepseek_infra.monitoring import dcgm_counters
from roles import template_path
from roles.exporters import tasks as exporters
from roles.filebeat import tasks as filebeat
from roles.monitoring import tasks as monitoring
from roles.exporters.defaults import ExportersDefaults
from roles.filebeat.defaults import FilebeatDefaults
from roles.monitoring.defaults import MonitoringDefaults
from roles.netcheck import tasks as netcheck_role
from roles.netcheck.defaults import NetcheckDefaults

pytestmark = pytest.mark.lab

FLEET = os.environ.get("DEEPSEEK_LAB_MONITORING_FLEET", "monlab")  # never collides with other lab test files
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROFILES = ("hgx-h100-8x", "workstation-rtx6000ada-2x")  # 8 and 2 GPUs, NVSwitch and PCIe
EXPORTERS = ExportersDefaults()
MONITORING = MonitoringDefaults()
COUNTERS_CSV = (REPO / "roles/exporters/files" / exporters.DCGM_COUNTERS.lstrip("/")).read_text()
ROLE_FILES = REPO / "roles/filebeat/files"
PROMETHEUS = "http://127.0.0.1:9090"


run = partial(fleet_run, FLEET, timeout=900)


def on(node: str, command: str, check: bool = True, stdin: str | None = None) -> str:
    return run("docker", "exec", "-i", node, "sh", "-c", command, check=check, timeout=120, input=stdin).stdout


def pyinfra(*args: str) -> dict:
    """A pyinfra run on the fleet; its JSON results (no operation may fail)."""
    result = run(str(BIN / "pyinfra"), "-y", "--json", "inventories/lab.py", *args)
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["results"]["totals"]["error"] == 0, json.dumps(report["results"], indent=1)[-4000:]
    return report


def changed(report: dict) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for operation in report["results"]["operations"]:
        for host in operation["success"]:
            result.setdefault(host, []).append(operation["name"])
    return result


def samples(text: str, metric: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of ``metric`` in Prometheus text format."""
    found = []
    for match in re.finditer(rf"^{re.escape(metric)}(?:\{{(.*?)\}})? (\S+)$", text, re.M):
        found.append((dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1) or "")), float(match.group(2))))
    return found


def metrics(node: str, port: int) -> str:
    return on(node, f"curl -sf --max-time 20 http://127.0.0.1:{port}/metrics")


@pytest.fixture(scope="module")
def fleet():
    """node name -> profile: fresh nodes, then base + nvidia_driver + exporters + monitoring in one run."""
    up = run(str(BIN / "python"), "-m", "lab", "up", "2", "--profile", ",".join(PROFILES), "--recreate")
    nodes = {fields[0]: fields[2] for fields in (line.split("\t") for line in up.stdout.splitlines()) if len(fields) > 2}
    assert sorted(nodes) == [f"{FLEET}-node-1", f"{FLEET}-node-2"], up.stdout
    try:
        pyinfra("deploy/base.py", "deploy/nvidia_driver.py", "deploy/exporters.py", "deploy/monitoring.py")
        yield nodes
    finally:
        run(str(BIN / "python"), "-m", "lab", "down", check=False)


@pytest.fixture(scope="module")
def net_report(fleet, tmp_path_factory) -> list[dict]:
    path = tmp_path_factory.mktemp("netcheck") / "net.json"
    pyinfra("deploy/netcheck.py", "--data", f"netcheck_report={path}", "--data", "netcheck_duration_s=3")
    return json.loads(path.read_text())


def test_dcgm_and_dcgm_exporter_from_the_lab_mirror_serve_every_gpu(fleet):
    source = f"{FLEET}-mirror:{mirror.PORT}/{mirror.REPO_PATH}"
    csv_fields = dcgm_counters(COUNTERS_CSV)
    for node, profile in fleet.items():
        for unit in (EXPORTERS.exporters_dcgm_service, EXPORTERS.exporters_dcgm_exporter_service):
            state = on(node, f"systemctl is-active {unit}", check=False).strip()
            assert state == "active", f"{node}: {unit}: expected active, found {state!r}"
        policy = on(node, f"LC_ALL=C apt-cache policy {EXPORTERS.exporters_dcgm_exporter_package}")
        assert f"Installed: {catalog.DCGM_EXPORTER}" in policy and source in policy, (
            f"{node}: {EXPORTERS.exporters_dcgm_exporter_package}: expected {catalog.DCGM_EXPORTER} from {source}, "
            f"found:\n{policy}")
        body = metrics(node, EXPORTERS.exporters_dcgm_exporter_port)
        served = set(re.findall(r"^(DCGM_FI_\w+)\{", body, re.M))
        assert served <= csv_fields, f"{node}: fields served but not in the counters CSV: {sorted(served - csv_fields)}"
        smi = on(node, "nvidia-smi --query-gpu=uuid,utilization.gpu,memory.used,memory.free --format=csv,noheader,nounits")
        gpus = {uuid: (float(util), float(used), float(free))
                for uuid, util, used, free in (line.split(", ") for line in smi.splitlines())}
        expected = len(hwsim.load_profile(profile)["gpus"])
        assert len(gpus) == expected, f"{node}: nvidia-smi: expected {expected} GPUs ({profile}), found {len(gpus)}"
        for position, metric in enumerate(("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE")):
            assert metric in csv_fields, f"roles/exporters counters CSV: expected {metric}"
            found = {labels["UUID"]: value for labels, value in samples(body, metric)}
            want = {uuid: values[position] for uuid, values in gpus.items()}
            assert found == want, f"{node}: :{EXPORTERS.exporters_dcgm_exporter_port} {metric}: expected {want}, found {found}"


def test_node_exporter_serves_node_metrics_of_the_node(fleet):
    for node, profile in fleet.items():
        body = metrics(node, EXPORTERS.exporters_node_exporter_port)
        assert samples(body, "node_cpu_seconds_total"), f"{node}: :9100: expected node_cpu_seconds_total, found none"
        total = hwsim.load_profile(profile)["memory_total_kb"] * 1024
        found = [value for _, value in samples(body, "node_memory_MemTotal_bytes")]
        assert found == [total], f"{node}: node_memory_MemTotal_bytes: expected {total} ({profile}), found {found}"
        assert samples(body, "node_textfile_scrape_error") == [({}, 0.0)], (
            f"{node}: node_textfile_scrape_error: expected 0, found {samples(body, 'node_textfile_scrape_error')}")


def test_second_run_of_exporters_and_monitoring_changes_nothing(fleet):
    again = changed(pyinfra("deploy/exporters.py", "deploy/monitoring.py"))
    assert again == {}, f"second deploy/exporters.py + deploy/monitoring.py: expected no changes, found {again}"


def test_netcheck_measures_every_pair_with_iperf3(fleet, net_report):
    names = sorted(fleet)
    want = set(netcheck.pairs(names, NetcheckDefaults().netcheck_mode))
    tcp = {(row["client"], row["peer"]): row for row in net_report if row["transport"] == "tcp"}
    assert set(tcp) == want and len(want) == 2, f"netcheck report: expected TCP pairs {sorted(want)}, found {sorted(tcp)}"
    for (client, peer), row in tcp.items():
        rate, threshold = row["bytes_per_second"], row["threshold_bytes_per_second"]
        assert row["error"] is None and rate and rate > 0, f"{client} -> {peer}: expected a measured rate, found {row}"
        assert threshold == MONITORING.monitoring_network_min_bytes_per_s, f"{client} -> {peer}: threshold {threshold}"
        consistent = "ok" if rate >= threshold else f"below {threshold / 1e9:g} GB/s"
        assert row["verdict"] == consistent, f"{client} -> {peer}: {rate} B/s vs {threshold}: verdict {row['verdict']!r}"


def test_netcheck_figure_is_served_by_each_node_exporter(fleet, net_report):
    for row in (r for r in net_report if r["transport"] == "tcp"):
        body = metrics(row["client"], EXPORTERS.exporters_node_exporter_port)
        found = [value for labels, value in samples(body, netcheck.METRIC_BANDWIDTH)
                 if labels == {"peer": row["peer"], "transport": "tcp"}]
        assert found == [pytest.approx(row["bytes_per_second"], rel=1e-5)], (
            f"{row['client']}: :9100 {netcheck.METRIC_BANDWIDTH}{{peer={row['peer']}}}: "
            f"expected {row['bytes_per_second']}, found {found}")
        assert samples(body, "node_textfile_scrape_error") == [({}, 0.0)], f"{row['client']}: textfile scrape error"


def test_prometheus_alert_rule_reads_the_figure_and_fires_as_the_verdict_says(fleet, net_report):
    """On the monitoring host (first node): the measured figure in Prometheus, the rule's threshold
    the report's, NetworkBandwidthLow firing for exactly the pairs below it, dcgm targets up."""
    prometheus = sorted(fleet)[0]
    threshold = net_report[0]["threshold_bytes_per_second"]
    rule = on(prometheus, f"cat {monitoring.PROMETHEUS_DIR}/rules/deepseek-node.yml")
    expression = f"{netcheck.METRIC_BANDWIDTH} < {threshold:.0f}"
    assert expression in rule, f"{prometheus}: deepseek-node.yml: expected {expression!r}"
    tcp = {(r["client"], r["peer"]): r for r in net_report if r["transport"] == "tcp"}
    below = {pair for pair, row in tcp.items() if row["verdict"] != "ok"}
    deadline, series, firing = time.monotonic() + 120, {}, set()
    while time.monotonic() < deadline:
        query = json.loads(on(prometheus, f"curl -sf '{PROMETHEUS}/api/v1/query?query={netcheck.METRIC_BANDWIDTH}'"))
        series = {(s["metric"]["host"], s["metric"]["peer"]): float(s["value"][1]) for s in query["data"]["result"]}
        alerts = json.loads(on(prometheus, f"curl -sf {PROMETHEUS}/api/v1/alerts"))["data"]["alerts"]
        firing = {(a["labels"]["host"], a["labels"]["peer"]) for a in alerts
                  if a["labels"]["alertname"] == "NetworkBandwidthLow" and a["state"] == "firing"}
        if set(series) == set(tcp) and firing == below:
            break
        time.sleep(3)
    assert series == {pair: pytest.approx(row["bytes_per_second"], rel=1e-5) for pair, row in tcp.items()}, (
        f"{prometheus}: Prometheus {netcheck.METRIC_BANDWIDTH}: expected {tcp}, found {series}")
    assert firing == below, f"{prometheus}: NetworkBandwidthLow firing for {sorted(firing)}, report below {sorted(below)}"
    targets = json.loads(on(prometheus, f"curl -sf {PROMETHEUS}/api/v1/targets"))["data"]["activeTargets"]
    health = {(t["labels"]["job"], t["labels"]["host"]): t["health"] for t in targets if "host" in t["labels"]}
    for node in fleet:
        for job in ("node", "dcgm"):
            assert health.get((job, node)) == "up", f"{prometheus}: target {job} on {node}: expected up, found {health}"


def test_netcheck_timer_measures_on_each_node_and_exports_the_figure(fleet, net_report):
    """deploy/netcheck.py left a timer on every node: its service (the node package's
    deepseek-netcheck against the peers' persistent iperf3 servers) measures again on its own
    and rewrites the textfile node exporter serves."""
    want = netcheck.pairs(sorted(fleet), NetcheckDefaults().netcheck_mode)
    for node in sorted(fleet):
        enabled = on(node, f"systemctl is-enabled {netcheck_role.TIMER} {netcheck_role.PERSISTENT_SERVER}", check=False)
        assert enabled.split() == ["enabled", "enabled"], f"{node}: expected the timer and iperf3 server enabled, found {enabled!r}"
        before = max(value for _, value in samples(metrics(node, EXPORTERS.exporters_node_exporter_port),
                                                   netcheck.METRIC_TIMESTAMP))
        time.sleep(1.1)  # the timestamp has a one-second resolution
        on(node, f"systemctl start {netcheck_role.TIMER_SERVICE}", check=False)
        result = on(node, f"systemctl show -p Result --value {netcheck_role.TIMER_SERVICE}").strip()
        journal = on(node, f"journalctl -u {netcheck_role.TIMER_SERVICE} -o cat --no-pager | tail -20", check=False)
        assert result == "success", f"{node}: {netcheck_role.TIMER_SERVICE}: expected success, found {result!r}:\n{journal}"
        body = metrics(node, EXPORTERS.exporters_node_exporter_port)
        stamps = {labels["peer"]: value for labels, value in samples(body, netcheck.METRIC_TIMESTAMP)}
        rates = {labels["peer"]: value for labels, value in samples(body, netcheck.METRIC_BANDWIDTH)
                 if labels["transport"] == "tcp"}
        peers = {peer for client, peer in want if client == node}
        assert set(rates) == peers and all(rate > 0 for rate in rates.values()), (
            f"{node}: :9100 {netcheck.METRIC_BANDWIDTH}: expected a figure for {sorted(peers)}, found {rates}")
        assert all(stamps[peer] > before for peer in peers), (
            f"{node}: {netcheck.METRIC_TIMESTAMP}: expected newer than the deploy's {before}, found {stamps}")
        logged = [json.loads(line) for line in journal.splitlines() if line.startswith("{")]
        assert {row["peer"] for row in logged} >= peers, f"{node}: journal: expected one JSON line per peer:\n{journal}"


WEBHOOK_PORT, WEBHOOK_LOG = 9099, "/var/tmp/lab-webhook.jsonl"


def test_an_alert_reaches_a_webhook_receiver_through_alertmanager(fleet, net_report):
    """Prometheus -> Debian's Alertmanager -> a webhook on the monitoring host. With the floor set
    above every figure the network check measured, NetworkBandwidthLow fires for every pair, and
    each pair's alert reaches the receiver with its labels."""
    prometheus = sorted(fleet)[0]
    run("docker", "cp", str(REPO / "lab/webhook_receiver.py"), f"{prometheus}:/usr/local/lib/lab-webhook.py")
    on(prometheus, f"rm -f {WEBHOOK_LOG}; systemd-run --unit=lab-webhook python3 /usr/local/lib/lab-webhook.py "
                   f"--port {WEBHOOK_PORT} --out {WEBHOOK_LOG}")
    tcp = {(r["client"], r["peer"]): r for r in net_report if r["transport"] == "tcp"}
    floor = 1e13  # 10 TB/s: above any figure the timer or the run measured between two containers
    hook = f"http://127.0.0.1:{WEBHOOK_PORT}/alerts"
    pyinfra("deploy/monitoring.py", "--data", f"monitoring_network_min_bytes_per_s={floor:.0f}",
            "--data", f"monitoring_alert_webhook_urls={json.dumps([hook])}", "--data", "monitoring_alert_group_wait=1s")
    state = on(prometheus, f"systemctl is-active {monitoring.ALERTMANAGER_SERVICE}", check=False).strip()
    assert state == "active", f"{prometheus}: {monitoring.ALERTMANAGER_SERVICE}: expected active, found {state!r}"
    listening = on(prometheus, "ss -Hltn", check=False)
    assert "127.0.0.1:9093" in listening and ":9094" not in listening, (
        f"{prometheus}: Alertmanager: expected its API on loopback and no cluster port, found:\n{listening}")
    deadline, delivered = time.monotonic() + 180, set()
    while time.monotonic() < deadline and delivered != set(tcp):
        lines = on(prometheus, f"cat {WEBHOOK_LOG} 2>/dev/null || true").splitlines()
        delivered = {(alert["labels"]["host"], alert["labels"]["peer"]) for line in lines
                     for alert in json.loads(line)["body"]["alerts"]
                     if alert["labels"]["alertname"] == "NetworkBandwidthLow" and alert["status"] == "firing"}
        time.sleep(3)
    assert delivered == set(tcp), (
        f"{prometheus}: webhook {hook}: expected NetworkBandwidthLow for {sorted(tcp)} (floor {floor:.3g} B/s), "
        f"found {sorted(delivered)}")


def _filebeat_event(line: str, config: dict) -> dict:
    """What Filebeat's filestream input makes of one line under the rendered filebeat.yml:
    its ndjson parser (target, add_error_key) and fields / fields_under_root."""
    (request_input,) = config["filebeat.inputs"]
    (parser,) = request_input["parsers"]
    options = parser["ndjson"]
    event: dict = {"@timestamp": datetime.now().astimezone().isoformat()}
    fields = dict(request_input.get("fields") or {})
    event.update(fields) if request_input.get("fields_under_root") else event.update({"fields": fields})
    try:
        decoded = json.loads(line)
    except json.JSONDecodeError as error:
        if options.get("add_error_key"):
            event["error"] = {"message": str(error), "type": "json"}
        return event
    if options.get("target"):
        event[options["target"]] = decoded
    else:
        event.update(decoded)
    return event


_TYPES = {"keyword": str, "text": str, "short": int, "integer": int, "float": (int, float), "boolean": bool}


def test_filebeat_rules_decode_a_real_gateway_log_line(fleet):
    node = sorted(fleet)[-1]
    run("docker", "cp", str(gateway_lab.FAKE_ENGINE), f"{node}:/usr/local/lib/lab-fake-engine.py")
    on(node, "systemd-run --unit=lab-fake-engine -p User=nobody python3 /usr/local/lib/lab-fake-engine.py "
             f"--model {tiny_model.REPO_ID}")
    pyinfra("deploy/gateway.py", "--limit", f"@docker/{node}")
    https = f"curl -s --cacert /etc/deepseek/gateway/tls.crt --resolve {node}:8443:127.0.0.1 https://{node}:8443"
    for _ in range(60):
        if on(node, f"{https}/health -o /dev/null -w '%{{http_code}}'", check=False) == "200":
            break
        time.sleep(1)
    body = json.dumps({"model": tiny_model.REPO_ID, "messages": [{"role": "user", "content": "monitoring lab"}]})
    reply = on(node, f"{https}/v1/chat/completions -H @- -H 'Content-Type: application/json' -d '{body}' "
                     "-o /dev/null -w '%{http_code} %header{x-request-id}'",
               stdin=f"Authorization: Bearer {gateway_lab.lab_key('lab-reader')}\n")
    status, request_id = reply.split()
    assert status == "200", f"{node}: gateway chat completion: expected 200, found {reply!r}"
    log = FilebeatDefaults().filebeat_request_log
    (line,) = [text for text in on(node, f"cat {log}").splitlines() if request_id in text]

    rendered = jinja2.Template(Path(template_path(filebeat.__package__, filebeat.CONFIG)).read_text()).render(
        **filebeat.render_context(FilebeatDefaults(filebeat_logstash_hosts=("logstash.lab.invalid:5044",))))
    event = _filebeat_event(line, yaml.safe_load(rendered))
    assert "error" not in event, f"{node}: {log}: the ndjson parser would fail: {event['error']}"
    pipeline = (ROLE_FILES / "logstash/deepseek-requests.conf").read_text()
    (log_type,) = set(re.findall(r'\[fields\]\[log_type\] == "([^"]+)"', pipeline))
    assert event["fields"]["log_type"] == log_type, f"Logstash selects {log_type!r}, Filebeat sends {event['fields']}"
    template = json.loads((ROLE_FILES / "elasticsearch/deepseek-requests-template.json").read_text())
    mapping = template["template"]["mappings"]["properties"]
    (target,) = [name for name, spec in mapping.items() if "properties" in spec]
    assert set(mapping[target]["properties"]) == set(FIELDS), f"template maps {sorted(mapping[target]['properties'])}"
    for field in mapping:
        assert field in event, f"{node}: decoded event lacks {field!r} that the template maps: {sorted(event)}"
    for field, spec in mapping[target]["properties"].items():
        assert field in event[target], f"{node}: {log}: the decoded line lacks {target}.{field}: {line}"
        value = event[target][field]
        if spec["type"] == "date":
            datetime.fromisoformat(value)
        elif value is not None:
            ok = isinstance(value, _TYPES[spec["type"]]) and not (spec["type"] != "boolean" and isinstance(value, bool))
            assert ok, f"{node}: {target}.{field}: expected {spec['type']}, found {value!r}"
    decoded = event[target]
    assert (decoded["request_id"], decoded["status"], decoded["user"]) == (request_id, 200, "lab-reader"), decoded
    assert decoded["confidence"] is not None and decoded["duration_ms"] > 0, decoded
    warnings.warn(f"{node}: the gateway's request log line was decoded with filebeat.yml's ndjson rules in Python; "
                  "the Filebeat binary itself was not run (Elastic's packages are not installable in the lab)",
                  stacklevel=1)


def test_cost_report_reads_each_nodes_gpus_and_renders(fleet, tmp_path):
    """deploy/report.py on the fleet: one row per node with the GPUs and power limits its
    nvidia-smi reports, written as text, JSON and the HTML page with its chart; no host changed."""
    out = tmp_path / "report"
    result = pyinfra("deploy/report.py", "--data", f"report_output_dir={out}",
                     "--data", "report_throughput_tokens_per_s=2000", "--data", "report_cloud_price_per_million_tokens=3")
    assert changed(result) == {}, f"deploy/report.py: expected no host changed, found {changed(result)}"
    document = json.loads((out / "report.json").read_text())
    nodes = {node["host"]: node for replica in document["inputs"] for node in replica["nodes"]}
    for node in fleet:
        smi = on(node, "nvidia-smi --query-gpu=power.limit --format=csv,noheader,nounits").split()
        assert nodes[node]["count"] == len(smi), f"report: {node}: expected {len(smi)} GPUs, found {nodes[node]}"
        assert nodes[node]["power_limits_w"] == [float(w) for w in smi], f"report: {node}: power limits {nodes[node]}"
    assert document["fleet"]["break_even_months"] > 0, document["fleet"]
    html = (out / "report.html").read_text()
    assert "<svg" in html and "break-even" in html and (out / "report.txt").read_text().count(sorted(fleet)[0]) >= 1
