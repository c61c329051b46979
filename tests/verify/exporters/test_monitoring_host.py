"""On a monitoring host (Debian's prometheus installed by deploy/monitoring.py): the generated
configuration and rules are in place, valid, loaded, and Prometheus scrapes the fleet."""

import json

import pytest

from roles.monitoring import tasks as monitoring
from roles.monitoring.defaults import MonitoringDefaults

RULE_FILES = sorted(monitoring.rule_templates())


@pytest.fixture(scope="module")
def monitoring_host(host):
    package = MonitoringDefaults().monitoring_prometheus_package
    if not host.package(package).is_installed:
        pytest.skip(f"{host.backend.hostname}: not a monitoring host ({package} not installed)")
    return host


@pytest.mark.parametrize("name", RULE_FILES)
def test_rules_file_present(monitoring_host, name):
    path = f"{monitoring.PROMETHEUS_DIR}/rules/{name}"
    assert monitoring_host.file(path).exists, f"{monitoring_host.backend.hostname}: {path}: expected present, found none"


def test_config_valid_and_prometheus_running(monitoring_host):
    check = monitoring_host.run(f"promtool check config {monitoring.PROMETHEUS_DIR}/prometheus.yml")
    assert check.rc == 0, f"{monitoring_host.backend.hostname}: promtool check config: {check.stdout}{check.stderr}"
    assert monitoring_host.service("prometheus").is_running, f"{monitoring_host.backend.hostname}: prometheus: expected running"


def test_prometheus_loaded_the_rules_and_scrapes_node_exporters(monitoring_host):
    rules = json.loads(monitoring_host.check_output("curl -sf http://127.0.0.1:9090/api/v1/rules"))
    loaded = {rule["name"] for group in rules["data"]["groups"] for rule in group["rules"]}
    assert {"GpuUtilizationSustainedHigh", "GpuMemoryHigh", "NetworkBandwidthLow", "EngineDown"} <= loaded, (
        f"{monitoring_host.backend.hostname}: expected the deepseek alerts loaded, found {sorted(loaded)}")
    targets = json.loads(monitoring_host.check_output("curl -sf http://127.0.0.1:9090/api/v1/targets"))
    node_jobs = [t for t in targets["data"]["activeTargets"] if t["labels"].get("job") == "node"]
    assert node_jobs and all("host" in t["labels"] for t in node_jobs), (
        f"{monitoring_host.backend.hostname}: expected node targets with a host label, found {node_jobs}")
