"""deepseek_infra/monitoring.py and the monitoring role's generated files: prometheus.yml, alert
rules (promtool check + promtool unit tests that fire and stay silent), dashboard."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deepseek_infra.monitoring import (
    ScrapeHost,
    host_label,
    is_duration,
    known_metrics,
    metric_names,
    parse_apt_policy,
    prometheus_config,
    render_rules,
    rule_expressions,
)
from roles.monitoring import tasks as monitoring
from roles.exporters.defaults import ExportersDefaults
from roles.monitoring.defaults import MonitoringDefaults

PROMTOOL_TESTS = Path(__file__).resolve().parents[2] / "fixtures" / "promtool"
COUNTERS = Path(__file__).resolve().parents[3] / "roles/exporters/files/etc/dcgm-exporter/deepseek-counters.csv"
KNOWN = known_metrics(COUNTERS.read_text())
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool missing: apt-get install prometheus (Debian ships promtool in it)",
)


def _fleet(config: MonitoringDefaults | None = None) -> dict[str, str]:
    targets = [
        monitoring.scrape_host("gpu-a01", "10.0.0.11", ExportersDefaults(), gpu_node=True),
        monitoring.scrape_host("gpu-a02", "10.0.0.12", ExportersDefaults(exporters_gateway_port=None), gpu_node=True),
        monitoring.scrape_host("mon-1", "10.0.0.2", ExportersDefaults(), gpu_node=False),
    ]
    return monitoring.fleet_files(targets, config or MonitoringDefaults())


def _write(fleet: dict[str, str], root: Path) -> Path:
    for relative, content in fleet.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(content)
    return root


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, check=False)


# --- metric names in PromQL ---------------------------------------------------------------

@pytest.mark.parametrize(("expr", "expected"), [
    ('up{job="engine"} == 0', {"up"}),
    ("100 * DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > 90",
     {"DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"}),
    ('histogram_quantile(0.95, sum by (host, le) (rate(vllm:e2e_request_latency_seconds_bucket{host=~"$host"}[5m])))',
     {"vllm:e2e_request_latency_seconds_bucket"}),
    ("a_total > 5e9 or on(host) b_total", {"a_total", "b_total"}),
])
def test_metric_names(expr, expected):
    assert metric_names(expr) == expected


def test_host_label_and_durations():
    assert host_label("@docker/obs-node-1") == "obs-node-1"
    assert host_label("gpu-a01.dc1.example.internal") == "gpu-a01.dc1.example.internal"
    assert is_duration("1h30m") and not is_duration("5 minutes")


def test_parse_apt_policy():
    lines = """\
prometheus:
  Installed: 2.42.0+ds-5+deb12u1
  Candidate: 2.42.0+ds-5+deb12u1
  Version table:
 *** 2.42.0+ds-5+deb12u1 500
        500 http://mirror.example.internal/debian bookworm/main amd64 Packages
datacenter-gpu-manager:
  Installed: (none)
  Candidate: (none)
  Version table:
""".splitlines()
    policy = parse_apt_policy(lines)
    assert policy["prometheus"] == {"installed": "2.42.0+ds-5+deb12u1", "candidate": "2.42.0+ds-5+deb12u1"}
    assert policy["datacenter-gpu-manager"] == {"installed": None, "candidate": None}
    assert "filebeat" not in policy  # apt never heard of it: no section at all


# --- prometheus.yml -------------------------------------------------------------------------

def test_prometheus_config_jobs_targets_and_host_labels():
    document = yaml.safe_load(_fleet()["prometheus.yml"])
    jobs = {job["job_name"]: job for job in document["scrape_configs"]}
    assert set(jobs) == {"prometheus", "node", "dcgm", "engine", "gateway"}
    node_targets = {c["labels"]["host"]: c["targets"] for c in jobs["node"]["static_configs"]}
    assert node_targets == {"gpu-a01": ["10.0.0.11:9100"], "gpu-a02": ["10.0.0.12:9100"], "mon-1": ["10.0.0.2:9100"]}
    # GPU, engine and gateway targets only on GPU nodes; gpu-a02 has no gateway
    assert [c["labels"]["host"] for c in jobs["dcgm"]["static_configs"]] == ["gpu-a01", "gpu-a02"]
    assert [c["targets"] for c in jobs["engine"]["static_configs"]] == [["10.0.0.11:9401"], ["10.0.0.12:9401"]]
    assert [c["targets"] for c in jobs["gateway"]["static_configs"]] == [["10.0.0.11:8443"]]
    assert jobs["gateway"]["scheme"] == "https" and jobs["gateway"]["tls_config"] == {"insecure_skip_verify": False}
    assert document["rule_files"] == ["rules/*.yml"]


def test_a_replica_worker_is_scraped_for_node_and_gpus_only_with_its_replica_label():
    """A worker of a multi-node replica has no API: no engine or gateway target, so no
    EngineDown or GatewayDown can fire for it; the head carries the replica's."""
    targets = [
        monitoring.scrape_host("gpu-a01", "10.0.0.11", ExportersDefaults(), gpu_node=True, replica="r1", head=True),
        monitoring.scrape_host("gpu-a02", "10.0.0.12", ExportersDefaults(), gpu_node=True, replica="r1", head=False),
    ]
    jobs = {job["job_name"]: job for job in yaml.safe_load(monitoring.fleet_files(targets, MonitoringDefaults())["prometheus.yml"])["scrape_configs"]}
    assert [c["labels"] for c in jobs["engine"]["static_configs"]] == [{"host": "gpu-a01", "replica": "r1"}]
    assert [c["labels"]["host"] for c in jobs["gateway"]["static_configs"]] == ["gpu-a01"]
    assert [c["labels"] for c in jobs["node"]["static_configs"]] == [
        {"host": "gpu-a01", "replica": "r1"}, {"host": "gpu-a02", "replica": "r1"}]
    assert [c["labels"]["host"] for c in jobs["dcgm"]["static_configs"]] == ["gpu-a01", "gpu-a02"]


def test_serving_hosts_carry_their_engine_so_the_gpu_memory_rule_fits_it():
    """vLLM and SGLang preallocate the framebuffer: the brief's 90% rule is for the transformers
    engine, the KV-cache rule for them; the rules tell them apart by the targets' engine label."""
    targets = [
        monitoring.scrape_host("gpu-a01", "10.0.0.11", ExportersDefaults(), gpu_node=True, engine="vllm"),
        monitoring.scrape_host("gpu-a02", "10.0.0.12", ExportersDefaults(), gpu_node=True, engine="transformers"),
        monitoring.scrape_host("mon-1", "10.0.0.2", ExportersDefaults(), gpu_node=False, engine="vllm"),
    ]
    fleet = monitoring.fleet_files(targets, MonitoringDefaults())
    jobs = {job["job_name"]: job for job in yaml.safe_load(fleet["prometheus.yml"])["scrape_configs"]}
    assert [c["labels"] for c in jobs["dcgm"]["static_configs"]] == [
        {"host": "gpu-a01", "engine": "vllm"}, {"host": "gpu-a02", "engine": "transformers"}]
    assert [c["labels"] for c in jobs["node"]["static_configs"]][-1] == {"host": "mon-1"}  # serves nothing
    rules = rule_expressions(fleet["rules/deepseek-gpu.yml"]) | rule_expressions(fleet["rules/deepseek-serving.yml"])
    assert 'DCGM_FI_DEV_FB_USED{engine!~"vllm|sglang"}' in rules["GpuMemoryHigh"]
    assert "vllm:kv_cache_usage_perc" in rules["EngineKvCacheHigh"] and "> 95" in rules["EngineKvCacheHigh"]


def test_prometheus_config_ipv6_and_duplicate_labels():
    document = prometheus_config([ScrapeHost(name="v6", address="fd00::5", dcgm_port=None, engine_port=None,
                                             gateway_port=None)])
    assert document["scrape_configs"][1]["static_configs"][0]["targets"] == ["[fd00::5]:9100"]
    with pytest.raises(ValueError, match="share the host label n1"):
        prometheus_config([ScrapeHost(name="n1", address="a"), ScrapeHost(name="n1", address="b")])


def test_scrape_address_override_wins():
    target = monitoring.scrape_host("n1", "n1", ExportersDefaults(exporters_scrape_address="192.0.2.7"), gpu_node=True)
    assert target.address == "192.0.2.7"


@needs_promtool
def test_generated_config_and_rules_pass_promtool_check(tmp_path):
    root = _write(_fleet(), tmp_path)
    result = _promtool("check", "config", "prometheus.yml", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 3 rule files found" in result.stdout


# --- alert rules ------------------------------------------------------------------------------

def test_rules_carry_the_design_brief_thresholds():
    exprs = {name: expr for path, text in _fleet().items() if path.startswith("rules/")
             for name, expr in rule_expressions(text).items()}
    assert exprs["GpuUtilizationSustainedHigh"] == "DCGM_FI_DEV_GPU_UTIL > 95"
    assert exprs["GpuMemoryHigh"].endswith("> 90")
    assert exprs["NetworkBandwidthLow"] == "deepseek_network_bandwidth_bytes_per_second < 5000000000"
    gpu = yaml.safe_load(_fleet()["rules/deepseek-gpu.yml"])["groups"][0]["rules"]
    assert {r["alert"]: r.get("for") for r in gpu}["GpuMemoryHigh"] == "5m"


def test_thresholds_come_from_host_data():
    fleet = _fleet(MonitoringDefaults(monitoring_gpu_util_percent=80, monitoring_gpu_memory_for="10m"))
    exprs = rule_expressions(fleet["rules/deepseek-gpu.yml"])
    assert exprs["GpuUtilizationSustainedHigh"] == "DCGM_FI_DEV_GPU_UTIL > 80"
    assert "for: 10m" in fleet["rules/deepseek-gpu.yml"]


def test_a_template_without_its_threshold_fails():
    with pytest.raises(Exception, match="not_a_threshold"):
        render_rules({"x.yml": "groups: [{name: x, rules: [{alert: X, expr: 'up > {{ not_a_threshold }}'}]}]"}, {})


def test_every_rule_reads_metrics_an_exporter_exposes():
    for path, text in _fleet().items():
        if not path.startswith("rules/"):
            continue
        for alert, expr in rule_expressions(text).items():
            unknown = metric_names(expr) - KNOWN
            assert not unknown, f"{path}: {alert}: expected metrics the exporters expose, found unknown {sorted(unknown)}"


def test_every_alert_has_a_promtool_test_that_fires_and_one_that_stays_silent():
    for path, text in _fleet().items():
        if not path.startswith("rules/"):
            continue
        cases = yaml.safe_load((PROMTOOL_TESTS / path.removeprefix("rules/").replace(".yml", ".test.yml")).read_text())
        checks = [c for test in cases["tests"] for c in test["alert_rule_test"]]
        for alert in rule_expressions(text):
            mine = [c for c in checks if c["alertname"] == alert]
            assert any(c["exp_alerts"] for c in mine), f"{path}: {alert}: expected a firing test, found none"
            silent = any(not c["exp_alerts"] for c in mine) or any(
                len(c["exp_alerts"]) == 1 for c in mine)  # one of two input series fires, the other stays silent
            assert silent, f"{path}: {alert}: expected a case where it does not fire"


@needs_promtool
def test_promtool_unit_tests_of_the_rules(tmp_path):
    root = _write({k: v for k, v in _fleet().items() if k.startswith("rules/")}, tmp_path)
    for test_file in sorted(PROMTOOL_TESTS.glob("*.test.yml")):
        shutil.copy(test_file, root / "rules" / test_file.name)
    result = _promtool("test", "rules", *sorted(p.name for p in PROMTOOL_TESTS.glob("*.test.yml")), cwd=root / "rules")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 3, result.stdout


@needs_promtool
def test_promtool_tests_catch_a_wrong_threshold(tmp_path):
    """The unit tests are not vacuous: rules rendered with another threshold fail them."""
    fleet = _fleet(MonitoringDefaults(monitoring_gpu_util_percent=99.5))
    root = _write({k: v for k, v in fleet.items() if k.startswith("rules/")}, tmp_path)
    shutil.copy(PROMTOOL_TESTS / "deepseek-gpu.test.yml", root / "rules")
    result = _promtool("test", "rules", "deepseek-gpu.test.yml", cwd=root / "rules")
    assert result.returncode != 0 and "GpuUtilizationSustainedHigh" in result.stdout + result.stderr


# --- dashboard --------------------------------------------------------------------------------

def test_dashboard_is_valid_json_with_the_fleet_panels():
    dashboard = json.loads(_fleet()["grafana/deepseek-fleet.json"])
    titles = " | ".join(panel["title"] for panel in dashboard["panels"])
    for needed in ("GPU utilization", "GPU memory", "GPU temperature", "Engine throughput", "Engine request latency",
                   "Gateway requests by user, model, status"):
        assert needed in titles, f"dashboard: expected a panel {needed!r}, found {titles}"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), f"dashboard: panel ids repeat: {ids}"


def test_every_dashboard_expression_reads_known_metrics():
    dashboard = json.loads(_fleet()["grafana/deepseek-fleet.json"])
    for panel in dashboard["panels"]:
        assert panel["targets"], f"dashboard: {panel['title']}: expected queries, found none"
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, f"dashboard: {panel['title']}: expected a metric in {target['expr']!r}"
            unknown = names - KNOWN
            assert not unknown, f"dashboard: {panel['title']}: expected known metrics, found {sorted(unknown)}"
