"""The capacity and cost report: rows from the serving plan, the lab profiles' GPUs and the
prices; the break-even arithmetic is recomputed here by hand, not by the module's formulas."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import pytest

from deepseek_infra.catalog import get_model
from deepseek_infra.cost_report import (
    BRIEF_SECTION_9, CLOUD_COLOUR, HOURS_PER_MONTH, LOCAL_COLOUR, Costs, NodeGpus, ReplicaInput, build_report,
    render_chart, render_html, render_table, replica_row, report_from_json, report_to_json, write_report,
)
from deepseek_infra.sizing import plan_serving
from lab import hwsim
from lab.hwsim.reading import profile_hardware

LAB_MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
# hardware 120000 and operations 8000: the brief's section 9 local row; the rest entered for the test
PRICED = Costs(hardware_price=120_000, operations_cost_per_month=8_000, power_price_per_kwh=0.15, pue=1.2,
               node_base_power_w=500, throughput_tokens_per_s=2_000, busy_fraction=0.5,
               cloud_price_per_million_tokens=6.0, amortization_months=36)


def node(host: str, profile: str) -> NodeGpus:
    return NodeGpus.from_hardware(host, profile_hardware(profile))


def replica(name: str, model: str, engine: str, *profiles: str, costs: Costs = PRICED, **keywords) -> ReplicaInput:
    nodes = tuple(node(f"{name}-{i}" if len(profiles) > 1 else name, profile) for i, profile in enumerate(profiles))
    return ReplicaInput(name=name, model=model, engine=engine, nodes=nodes, costs=costs, **keywords)


# --- what the report reads of the lab profiles ------------------------------------------------


@pytest.mark.parametrize("profile", hwsim.list_profiles())
def test_each_lab_profile_reports_its_gpus_power_limits_through_the_gpu_fact(profile):
    declared = hwsim.load_profile(profile)["gpus"]  # "700.00 W", as nvidia-smi prints it
    gpus = node("n", profile)
    assert gpus.count == len(declared) and gpus.source == "driver"
    assert gpus.memory_mib == int(declared[0]["memory.total"].split()[0])
    assert gpus.power_limit_w == sum(float(gpu["power.limit"].split()[0]) for gpu in declared)


def test_the_shipped_profiles_power_limits():
    expected = {"dgx-h200-8x": 5600.0, "hgx-h100-8x": 5600.0, "workstation-rtx6000ada-2x": 600.0}
    assert {name: node("n", name).power_limit_w for name in expected} == expected


def test_a_gpu_without_a_power_limit_makes_power_unknown_not_zero():
    gpus = NodeGpus(host="n", count=2, name="NVIDIA H100", memory_mib=81559, power_limits_w=(700.0, None))
    row = replica_row(ReplicaInput(name="n", model=LAB_MODEL, engine="vllm", nodes=(gpus,), costs=PRICED))
    assert row.power_kw is None and row.power_cost_per_month is None
    assert any("n report no GPU power.limit" in note for note in row.notes), row.notes
    no_driver = NodeGpus(host="fresh", count=8, name="NVIDIA H100 80GB HBM3", memory_mib=81559.0, source="pci")
    assert no_driver.power_limit_w is None


# --- capacity: the serving plan -------------------------------------------------------------------


def test_capacity_columns_are_the_serve_roles_plan_with_its_kv_headroom():
    row = replica_row(replica("h200", "deepseek-v3", "vllm", "dgx-h200-8x"))
    plan = plan_serving("deepseek-v3", gpu_memory_mib=143771, gpus_per_node=8, engine="vllm")
    assert (row.layout, row.gpus_used, row.gpus_installed, row.max_model_len) == ("TP 8 x PP 1", 8, 8, 163840)
    assert row.kv_planned_gib_per_gpu == plan.kv_gib_per_gpu
    # the pool: 90 % of 143771 MiB, less an eighth of the weights and vLLM's 4 GiB reserve
    pool = 143771 / 1024 * 0.90 - get_model("deepseek-v3").weights_gb * 1e9 / 2**30 / 8 - 4.0
    assert row.kv_pool_gib_per_gpu == pytest.approx(pool, abs=0.01)
    assert row.kv_headroom_gib_per_gpu == pytest.approx(pool - plan.kv_gib_per_gpu, abs=0.01)
    assert row.sequences_held == math.floor(pool / plan.kv_gib_per_gpu) >= 1


def test_a_multi_node_replica_plans_over_its_nodes_and_costs_each():
    row = replica_row(replica("r1", "deepseek-v3", "vllm", "hgx-h100-8x", "hgx-h100-8x"))
    assert (row.nodes, row.layout, row.gpus_used, row.gpus_installed) == (2, "TP 8 x PP 2", 16, 16)
    assert row.hosts == ("r1-0", "r1-1")
    assert row.hardware_cost == 240_000 and row.operations_per_month == 16_000
    assert row.power_kw == pytest.approx((2 * 5600 + 2 * 500) * 1.2 / 1000)


def test_a_replica_that_does_not_fit_is_priced_but_never_compared():
    row = replica_row(replica("ws", "deepseek-v3", "vllm", "workstation-rtx6000ada-2x"))
    assert (row.fits, row.layout, row.gpus_used, row.break_even) == (False, "does not fit", 0, "does not fit")
    assert row.cost_per_million_tokens is None and row.cloud_per_month is None and not row.compared
    assert row.hardware_cost == 120_000
    assert any(note.startswith("plan: DeepSeek-V3") and "needs" in note for note in row.notes), row.notes


def test_the_lab_engine_on_the_cpu_uses_no_gpu_but_its_nodes_still_draw():
    row = replica_row(replica("lab-node-1", LAB_MODEL, "transformers", "hgx-h100-8x", use_gpus=False))
    assert (row.on_cpu, row.layout, row.gpus_used, row.gpus_installed) == (True, "CPU", 0, 8)
    assert row.kv_planned_gib_per_gpu is None and row.max_model_len == get_model(LAB_MODEL).context_length
    assert row.power_kw == pytest.approx((5600 + 500) * 1.2 / 1000)


# --- cost: the arithmetic, by hand ------------------------------------------------------------------


def test_break_even_and_cost_per_million_tokens_by_hand():
    row = replica_row(replica("h100", LAB_MODEL, "vllm", "hgx-h100-8x"))
    # power: (8 x 700 W + 500 W) x PUE 1.2 = 7320 W; 7.32 kW x 730 h = 5343.6 kWh; x 0.15 = 801.54 a month
    assert row.power_kw == pytest.approx(7.32)
    assert row.energy_kwh_per_month == pytest.approx(5343.6)
    assert row.power_cost_per_month == pytest.approx(801.54)
    assert row.running_per_month == pytest.approx(8801.54)  # + 8000 operations
    assert row.owned_per_month == pytest.approx(8801.54 + 120_000 / 36)
    # tokens: 2000/s x 0.5 busy x 730 h x 3600 s = 2.628e9 a month; the cloud at 6.0 per million: 15768
    assert row.tokens_per_month == pytest.approx(2.628e9)
    assert row.cloud_per_month == pytest.approx(15768.0)
    assert row.cost_per_million_tokens == pytest.approx((8801.54 + 120_000 / 36) / 2628)
    # 120000 + m x 8801.54 = m x 15768  ->  m = 120000 / 6966.46
    assert row.break_even_months == pytest.approx(17.2254, abs=1e-4)
    assert row.break_even == "17.2 months" and row.compared


def test_the_cumulative_lines_cross_at_the_break_even_month():
    report = build_report([replica("h100", LAB_MODEL, "vllm", "hgx-h100-8x")], months=36)
    months = report.break_even_months
    assert report.local_cost(months) == pytest.approx(report.cloud_cost(months))
    series = report.series()
    assert series[0] == {"month": 0, "local": 120_000.0, "cloud": 0.0}
    before, after = series[math.floor(months)], series[math.ceil(months)]
    assert before["local"] > before["cloud"] and after["local"] < after["cloud"]
    assert len(series) == 37  # the break-even is inside the 36-month horizon: not stretched


def test_a_later_break_even_stretches_the_chart_to_show_it():
    slow = replace(PRICED, cloud_price_per_million_tokens=3.7)
    report = build_report([replica("h100", LAB_MODEL, "vllm", "hgx-h100-8x", costs=slow)], months=24)
    # 2628 M tokens x 3.7 = 9723.6 a month; 120000 / (9723.6 - 8801.54) = 130.1 months
    assert report.break_even_months == pytest.approx(120_000 / (9723.6 - 8801.54))
    assert report.chart_months == math.ceil(report.break_even_months * 1.25)
    assert "horizon stretched from 24 to" in render_chart(report)


def test_a_cloud_cheaper_than_running_locally_never_breaks_even():
    cheap = Costs(hardware_price=120_000, operations_cost_per_month=8_000, throughput_tokens_per_s=2_000,
                  cloud_price_per_million_tokens=1.0)
    row = replica_row(replica("h100", LAB_MODEL, "vllm", "hgx-h100-8x", costs=cheap))
    # 5256 M tokens x 1.0 = 5256 a month < 8000 of operations alone
    assert (row.break_even, row.break_even_months) == ("never", None)
    assert any("the cloud costs 5,256.00 per month, running locally 8,000.00" in note for note in row.notes)
    assert build_report([replica("h100", LAB_MODEL, "vllm", "hgx-h100-8x", costs=cheap)]).break_even_months is None


@pytest.mark.parametrize(("costs", "break_even", "note"), [
    (Costs(hardware_price=1, cloud_price_per_million_tokens=1.0), "not measured", None),
    (Costs(hardware_price=1, throughput_tokens_per_s=10.0), "no cloud price", None),
    (Costs(throughput_tokens_per_s=10.0, cloud_price_per_million_tokens=1.0), "hardware not priced",
     "hardware: not priced"),
    (Costs(hardware_price=1), "not measured", "power: not priced"),
])
def test_what_is_not_entered_is_said_not_counted_as_zero(costs, break_even, note):
    row = replica_row(replica("h100", LAB_MODEL, "vllm", "hgx-h100-8x", costs=costs))
    assert row.break_even == break_even
    if costs.throughput_tokens_per_s is None:
        assert row.tokens_per_month is None and row.cost_per_million_tokens is None
    if note:
        assert any(item.startswith(note) for item in row.notes), row.notes
    assert not row.compared


def test_the_brief_section_9_table_is_kept_as_written():
    assert dict(BRIEF_SECTION_9["local"]) == {"hardware": 120_000, "operations_per_month": 8_000, "latency": "<10ms"}
    assert [row["operations_per_month"] for row in BRIEF_SECTION_9.values()] == [8_000, 12_000, 15_000]


# --- output ----------------------------------------------------------------------------------------


def fleet():
    return build_report([
        replica("h200", "deepseek-v3", "vllm", "dgx-h200-8x"),
        replica("ws", "deepseek-v3", "vllm", "workstation-rtx6000ada-2x"),
        replica("h100", LAB_MODEL, "vllm", "hgx-h100-8x"),
    ])


def cells(line: str) -> list[str]:
    return re.split(r" {2,}", line.strip())


def test_the_table_has_one_section_per_model_with_a_total():
    text = render_table(fleet())
    lines = text.splitlines()
    v3 = lines.index("deepseek-ai/DeepSeek-V3 on vllm: 2 replicas, 8 of 10 GPUs used")
    assert cells(lines[v3 + 1])[:4] == ["replica", "GPUs", "layout", "context"]
    assert cells(lines[v3 + 3])[:4] == ["h200", "8/8", "TP 8 x PP 1", "163840"]
    assert cells(lines[v3 + 4])[:3] == ["ws", "0/2", "does not fit"] and cells(lines[v3 + 4])[-1] == "does not fit"
    assert cells(lines[v3 + 5])[:2] == ["total", "8/10"]
    assert f"{LAB_MODEL} on vllm: 1 replica, 1 of 8 GPUs used" in lines
    assert "break-even against the cloud:" in text and "left out: ws" in text
    assert "ws: plan: DeepSeek-V3" in text


def test_json_holds_rows_series_and_inputs_and_reads_back(tmp_path):
    report = fleet()
    data = json.loads(report_to_json(report))
    assert [row["replica"] for row in data["rows"]] == ["h200", "ws", "h100"]
    assert data["fleet"]["compared"] == ["h200", "h100"] and data["hours_per_month"] == HOURS_PER_MONTH
    assert data["series"][0]["local"] == 240_000.0  # the compared replicas' hardware
    assert report_from_json(data).rows == report.rows
    written = write_report(report, tmp_path / "out")
    assert sorted(written) == ["report.html", "report.json", "report.txt"]
    assert json.loads(written["report.json"].read_text()) == data


def test_a_saved_report_with_other_prices_reads_back_with_them():
    data = json.loads(report_to_json(fleet()))
    cheaper = Costs(hardware_price=60_000, operations_cost_per_month=4_000)
    again = report_from_json(data, {"h200": cheaper})
    assert again.rows[0].hardware_cost == 60_000 and again.rows[0].break_even == "not measured"
    assert again.rows[2] == fleet().rows[2]
    with pytest.raises(ValueError, match="unknown keys \\['price'\\]"):
        report_from_json({"inputs": [{**data["inputs"][0], "costs": {"price": 1}}]})
    with pytest.raises(ValueError, match="inputs: expected a list of replicas"):
        report_from_json({"rows": []})


def test_the_html_page_is_self_contained_with_one_chart():
    page = render_html(fleet())
    assert page.count("<svg") == 1 and page.count("<table>") == 2
    assert not re.search(r"<script|<link|src=|@import|url\(", page), "the lab has no internet: nothing is fetched"
    assert 'class="local" points=' in page and f'stroke="{LOCAL_COLOUR}"' in page
    assert 'class="cloud" points=' in page and f'stroke="{CLOUD_COLOUR}"' in page
    assert 'class="break-even"' in page


def test_without_a_comparison_the_chart_has_the_local_line_and_says_why():
    report = build_report([replica("h100", LAB_MODEL, "vllm", "hgx-h100-8x", costs=Costs(hardware_price=1))])
    chart = render_chart(report)
    assert 'class="local"' in chart and 'class="cloud"' not in chart and 'class="break-even"' not in chart
    assert "no cloud comparison: enter report_throughput_tokens_per_s" in chart
    assert report.series()[-1]["cloud"] is None


def test_a_report_needs_a_replica():
    with pytest.raises(ValueError, match="at least one serving replica"):
        build_report([])
