"""The report role: its variables refuse bad prices naming the host and the field, the lab
inventory's hosts become replicas with their profiles' GPUs, the deploy writes its files
once per run, and ``python -m roles.report`` renders a saved report with other prices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.exceptions import DeployError

from deepseek_infra.cost_report import BRIEF_SECTION_9, render_table, report_to_json
from lab.fleet import DEFAULT_PROFILES
from lab.hwsim.reading import profile_hardware
from roles.report import tasks
from roles.report.__main__ import main
from roles.report.defaults import ReportDefaults
from roles.settings import validate_inventory

LAB_MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"  # inventories/lab_settings.py
LAB = {"deepseek_model": LAB_MODEL, "deepseek_engine": "transformers", "serve_transformers_device": "cpu"}
BRIEF = Path("/work/shared/brief/deepseek-local-deployment-guide.zh.txt")


def lab_state(count: int = 2, profiles=DEFAULT_PROFILES, **data) -> tuple[State, dict[str, str]]:
    """The lab inventory's shape: ``count`` nodes in gpu_nodes, profiles round-robin as
    ``python -m lab up`` assigns them, the lab settings (and ``data``, as ``--data`` adds)."""
    assigned = {f"lab-node-{i + 1}": profiles[i % len(profiles)] for i in range(count)}
    inventory = Inventory((list(assigned), {**LAB, **data}), gpu_nodes=(list(assigned), {}))
    return State(inventory, Config()), assigned


def read(assigned):
    return lambda host: profile_hardware(assigned[host.name])


# --- variables ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "words"), [
    ("report_hardware_price", -1, "greater than or equal to 0"),
    ("report_operations_cost_per_month", -8000, "greater than or equal to 0"),
    ("report_power_price_per_kwh", -0.1, "greater than or equal to 0"),
    ("report_power_price_per_kwh", "cheap", "valid number"),
    ("report_cloud_price_per_million_tokens", float("inf"), "finite number"),
    ("report_cloud_price_per_million_tokens", -2, "greater than or equal to 0"),
    ("report_throughput_tokens_per_s", 0, "greater than 0"),
    ("report_throughput_tokens_per_s", True, "expected a number, found the boolean True"),
    ("report_pue", 0.5, "greater than or equal to 1"),
    ("report_busy_fraction", 1.5, "less than or equal to 1"),
    ("report_node_base_power_w", float("nan"), "finite number"),
    ("report_amortization_months", 0, "greater than or equal to 1"),
    ("report_months", 1000, "less than or equal to 240"),
    ("report_currency", "U S D", "should match pattern"),
    ("report_hardware_prise", 1, "did you mean report_hardware_price"),
])
def test_bad_report_data_is_refused_naming_host_and_field(key, value, words):
    state = State(Inventory(([("node-1", {key: value})], {})), Config())
    with pytest.raises(DeployError) as caught:
        validate_inventory(state)
    message = str(caught.value)
    assert f"node-1: {key}: " in message and words in message, message


def test_the_price_defaults_are_the_brief_section_9_local_deployment():
    config = ReportDefaults()
    local = BRIEF_SECTION_9["local"]
    assert (config.report_hardware_price, config.report_operations_cost_per_month) == (120_000, 8_000)
    assert (config.report_hardware_price, config.report_operations_cost_per_month) == (
        local["hardware"], local["operations_per_month"])
    assert config.report_currency == "USD"
    unset = (config.report_power_price_per_kwh, config.report_throughput_tokens_per_s,
             config.report_cloud_price_per_million_tokens)
    assert unset == (None, None, None)  # not in the brief: unset, and the report says so
    if BRIEF.exists():  # the brief itself, where the checkout has it beside
        text = BRIEF.read_text()
        section = text[text.index("九、成本效益分析"):text.index("十、")]
        assert "| 本地部署 | $120,000 | $8,000/月|" in section
        assert "| 私有云部署 | $85,000 | $12,000/月|" in section and "| 混合部署 | $65,000 | $15,000/月|" in section


def test_costs_carry_every_price_field():
    config = ReportDefaults(report_power_price_per_kwh=0.2, report_throughput_tokens_per_s=50)
    costs = config.costs()
    assert (costs.hardware_price, costs.power_price_per_kwh, costs.throughput_tokens_per_s) == (120_000, 0.2, 50)


# --- the lab inventory -------------------------------------------------------------------------


def test_the_lab_inventory_report_table():
    state, assigned = lab_state()
    report = tasks.fleet_report(state, list(assigned), read(assigned), state.inventory.get_host("lab-node-1"))
    assert assigned == {"lab-node-1": "hgx-h100-8x", "lab-node-2": "workstation-rtx6000ada-2x"}
    lines = render_table(report).splitlines()
    heading = lines.index(f"{LAB_MODEL} on transformers: 2 replicas, 0 of 10 GPUs used")
    rows = [line.split() for line in lines[heading + 3:heading + 6]]
    # the lab engine is on the CPU (serve_transformers_device: cpu): no GPU used, every one still draws
    assert rows[0] == ["lab-node-1", "0/8", "CPU", "131072", "host", "RAM", "-", "5.60", "120,000", "8,000",
                       "not", "measured", "-", "-", "not", "measured"]
    assert rows[1] == ["lab-node-2", "0/2", "CPU", "131072", "host", "RAM", "-", "0.60", "120,000", "8,000",
                       "not", "measured", "-", "-", "not", "measured"]
    assert rows[2] == ["total", "0/10", "6.20", "240,000", "16,000"]
    assert "lab-node-1: power: not priced (report_power_price_per_kwh unset)" in "\n".join(lines)


def test_the_lab_inventory_with_entered_throughput_and_cloud_price_breaks_even():
    state, assigned = lab_state(report_power_price_per_kwh=0.15, report_throughput_tokens_per_s=2000,
                                report_cloud_price_per_million_tokens=3.0)
    report = tasks.fleet_report(state, list(assigned), read(assigned), state.inventory.get_host("lab-node-1"))
    first = report.rows[0]
    # 5.6 kW x 730 h x 0.15 = 613.2; 2000 tok/s x 2.628e6 s = 5256 M tokens x 3.0 = 15768 a month
    assert first.running_per_month == pytest.approx(8613.2)
    assert first.break_even_months == pytest.approx(120_000 / (15768 - 8613.2))
    both = 2 * 120_000 / (2 * 15768 - 8613.2 - (8000 + 0.6 * 730 * 0.15))
    assert report.break_even_months == pytest.approx(both)


def test_a_multi_node_replica_is_one_row_with_both_hosts_gpus():
    state, assigned = lab_state(count=2, profiles=("hgx-h100-8x",), deepseek_model="deepseek-v3",
                                deepseek_engine="vllm", deepseek_nodes=2)
    report = tasks.fleet_report(state, list(assigned), read(assigned), state.inventory.get_host("lab-node-1"))
    (row,) = report.rows
    assert (row.replica, row.hosts, row.layout, row.gpus_used) == (
        "lab-node-1", ("lab-node-1", "lab-node-2"), "TP 8 x PP 2", 16)
    # limited to the worker (--limit lab-node-2), the replica is still read whole
    only_worker = tasks.replica_inputs(state, ["lab-node-2"], read(assigned))
    assert [node.host for node in only_worker[0].nodes] == ["lab-node-1", "lab-node-2"]


def test_replica_heads_in_different_currencies_are_refused():
    state = State(Inventory((["a", "b"], LAB), gpu_nodes=(["a", "b"], {}), eu=(["b"], {"report_currency": "EUR"})),
                  Config())
    with pytest.raises(DeployError, match=r"report_currency: .*\(a USD, b EUR\)"):
        tasks.fleet_report(state, ["a", "b"], lambda host: profile_hardware("hgx-h100-8x"), state.inventory.get_host("a"))


def test_the_deploy_reports_once_per_run_and_writes_its_files(tmp_path, monkeypatch):
    state, assigned = lab_state(report_output_dir=str(tmp_path / "report"))
    for name in assigned:
        state.activate_host(state.inventory.get_host(name))
    monkeypatch.setattr(tasks, "prepared_hardware", read(assigned))  # the fact, as a lab node answers it
    first = tasks.report_once(state.inventory.get_host("lab-node-1"))
    assert first is not None and [row.replica for row in first.rows] == ["lab-node-1", "lab-node-2"]
    assert tasks.report_once(state.inventory.get_host("lab-node-2")) is None
    assert sorted(path.name for path in (tmp_path / "report").iterdir()) == ["report.html", "report.json", "report.txt"]
    assert (tmp_path / "report" / "report.txt").read_text() == render_table(first)


# --- python -m roles.report ---------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path) -> Path:
    state, assigned = lab_state(report_throughput_tokens_per_s=2000)
    report = tasks.fleet_report(state, list(assigned), read(assigned), state.inventory.get_host("lab-node-1"))
    path = tmp_path / "report.json"
    path.write_text(report_to_json(report))
    return path


def test_the_cli_renders_a_saved_report_with_an_entered_cloud_price(saved, tmp_path, capsys):
    out = tmp_path / "what-if"
    assert main([str(saved), "--set", "report_cloud_price_per_million_tokens=3", "--set", "report_currency=EUR",
                 "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Capacity and cost report (EUR;" in printed and "15.4 months" in printed  # 120000 / (15768 - 8000)
    data = json.loads((out / "report.json").read_text())
    assert data["currency"] == "EUR" and data["fleet"]["compared"] == ["lab-node-1", "lab-node-2"]
    assert all(item["costs"]["cloud_price_per_million_tokens"] == 3 for item in data["inputs"])


@pytest.mark.parametrize(("setting", "words"), [
    ("report_hardware_price=-5", "report_hardware_price: Input should be greater than or equal to 0"),
    ("report_hardware_prise=3", "report_hardware_prise: unknown host data key; did you mean report_hardware_price"),
    ("report_pue=null", "report_pue: Input should be a valid number"),
])
def test_the_cli_refuses_a_bad_setting_naming_it(saved, capsys, setting, words):
    assert main([str(saved), "--set", setting]) == 2
    error = capsys.readouterr().err
    assert f"{saved} --set: {words}" in error and "no host" not in error, error
