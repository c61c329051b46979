"""Capacity and cost report: what each model's replicas hold, draw and cost (pure: no pyinfra).

Inputs, per replica (``ReplicaInput``): the GPUs each of its hosts reports (``NodeGpus``,
read from the same typed hardware reading the preflight judges), the serving settings the
serve role plans with, and the prices of the replica's head host (``Costs``, from the
report role's variables). ``build_report`` plans each replica exactly as the serve role
does (``engine.plan_for_node``) and returns one ``ReplicaRow`` per replica; ``render_table``,
``report_to_json`` and ``render_html`` print it.

Capacity, per replica:

* GPUs used (the plan's TP x PP) of the GPUs installed in its nodes; the layout; the
  context every sequence gets (``max_model_len``) and the sequences planned at once;
* KV cache per GPU: what the plan reserves for those sequences, the pool the engine gets
  (GPU memory x utilization - weights - engine reserve), the headroom between the two and
  the full-length sequences the pool holds.

Cost, per replica (prices are per node; a replica of N nodes costs N times them):

* power: every installed GPU at its power limit (``nvidia-smi --query-gpu=power.limit``:
  the most it draws) plus ``node_base_power_w`` per node, times the PUE; energy per month
  at ``HOURS_PER_MONTH``. An upper bound: idle GPUs draw less.
* running per month: operations + energy x power price;
* owned per month: running + hardware / ``amortization_months``;
* tokens per month: throughput x ``busy_fraction`` x ``SECONDS_PER_MONTH``;
* cost per million tokens: owned per month / millions of tokens per month;
* cloud per month: millions of tokens per month x the cloud price;
* break-even (the ROI months): local cumulative cost ``hardware + m x running`` meets the
  cloud's ``m x cloud`` at ``m = hardware / (cloud - running)``, when the cloud costs more
  per month than running locally; otherwise never.

A value the inputs do not give is ``None`` and the row says why ("not measured", "not
priced"), never a silent zero.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from deepseek_infra.catalog import get_model
from deepseek_infra.engine import EngineConfigError, engine_on_cpu, plan_for_node
from deepseek_infra.hardware import Hardware
from deepseek_infra.preflight import summarize_gpus
from deepseek_infra.sizing import ServingPlan

HOURS_PER_MONTH: Final = 730  # 365 x 24 / 12
SECONDS_PER_MONTH: Final = HOURS_PER_MONTH * 3600
MAX_CHART_MONTHS: Final = 240  # how far the chart stretches its horizon to show a later break-even

# The design brief's cost table, the documented example of the prices: section 9 (九、成本效益分析)
# of deepseek-local-deployment-guide.zh.txt (/work/shared/brief/), "以70亿参数模型为例" (a 7B model):
# deployment style -> hardware cost, operations cost per month (USD), response latency. The brief
# adds: "本地部署的ROI在18-24个月内可达150%" (local deployment's ROI reaches 150% within 18-24 months).
# The report role's price defaults are its local row, per node.
BRIEF_SECTION_9: Final = MappingProxyType({
    "local": MappingProxyType({"hardware": 120_000, "operations_per_month": 8_000, "latency": "<10ms"}),
    "private cloud": MappingProxyType({"hardware": 85_000, "operations_per_month": 12_000, "latency": "50-100ms"}),
    "hybrid": MappingProxyType({"hardware": 65_000, "operations_per_month": 15_000, "latency": "20-50ms"}),
})

# Chart colours: the test of the page in a browser looks for them in the screenshot.
LOCAL_COLOUR: Final = "#1f77b4"
CLOUD_COLOUR: Final = "#ff7f0e"
BREAK_EVEN_COLOUR: Final = "#2ca02c"
PLOT_BACKGROUND: Final = "#eef2f8"


# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeGpus:
    """What the report reads of one host's GPUs: the preflight's summary and each power limit."""

    host: str
    count: int = 0
    name: str | None = None
    memory_mib: float | None = None
    power_limits_w: tuple[float | None, ...] = ()  # per GPU, as nvidia-smi reports it; empty before the driver
    source: str = "driver"  # "driver" (nvidia-smi) or "pci" (device table, no driver yet)

    @classmethod
    def from_hardware(cls, host: str, hardware: Hardware) -> NodeGpus:
        summary = summarize_gpus(hardware)
        return cls(host=host, count=summary.count, name=summary.name, memory_mib=summary.memory_mib,
                   power_limits_w=tuple(_number(gpu.power_limit_w) for gpu in hardware.gpus), source=summary.source)

    @property
    def power_limit_w(self) -> float | None:
        """The GPUs' power limits added up; None when a GPU does not report one."""
        if self.count == 0:
            return 0.0
        if len(self.power_limits_w) != self.count or any(limit is None for limit in self.power_limits_w):
            return None
        return float(sum(self.power_limits_w))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeGpus:
        return cls(host=str(data["host"]), count=int(data.get("count", 0)), name=data.get("name"),
                   memory_mib=data.get("memory_mib"),
                   power_limits_w=tuple(_number(limit) for limit in data.get("power_limits_w") or ()),
                   source=str(data.get("source", "driver")))


@dataclass(frozen=True, slots=True, kw_only=True)
class Costs:
    """Prices of one replica; field names are the report role's variables without ``report_``."""

    hardware_price: float | None = None  # per node
    operations_cost_per_month: float = 0.0  # per node
    power_price_per_kwh: float | None = None
    pue: float = 1.0
    node_base_power_w: float = 0.0  # per node, outside the GPUs
    throughput_tokens_per_s: float | None = None  # the replica's, measured or entered
    busy_fraction: float = 1.0  # share of the month it serves at that throughput
    cloud_price_per_million_tokens: float | None = None
    amortization_months: int = 36


COST_FIELDS: Final = tuple(item.name for item in fields(Costs))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaInput:
    """One replica as the serve role plans it, with its hosts' GPUs (head first) and prices."""

    name: str
    model: str  # a catalog name (hf_repo or alias)
    engine: str
    nodes: tuple[NodeGpus, ...]
    costs: Costs = Costs()
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    concurrency: int = 1
    use_gpus: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], costs: Costs | None = None) -> ReplicaInput:
        """From ``to_dict`` output (a saved report's ``inputs``); ``costs`` replaces its prices."""
        nodes = tuple(NodeGpus.from_dict(node) for node in data.get("nodes") or ())
        if not nodes:
            raise ValueError(f"replica {data.get('name')!r}: nodes: expected at least one host's GPUs, found none")
        return cls(
            name=str(data["name"]), model=str(data["model"]), engine=str(data["engine"]), nodes=nodes,
            costs=costs or _costs(data.get("costs") or {}, str(data["name"])),
            max_model_len=data.get("max_model_len"), gpu_memory_utilization=data.get("gpu_memory_utilization"),
            concurrency=int(data.get("concurrency", 1)), use_gpus=bool(data.get("use_gpus", True)),
        )


def _costs(data: Mapping[str, Any], replica: str) -> Costs:
    unknown = sorted(set(data) - set(COST_FIELDS))
    if unknown:
        raise ValueError(f"replica {replica!r}: costs: unknown keys {unknown}; expected some of {list(COST_FIELDS)}")
    return Costs(**data)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# --- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaRow:
    """The report's line for one replica; money in the report's currency, ``None``: not known."""

    replica: str
    hosts: tuple[str, ...]
    model: str  # hf_repo
    engine: str
    nodes: int
    gpu_name: str | None
    gpus_installed: int
    gpus_used: int
    on_cpu: bool
    fits: bool
    layout: str  # "TP 8 x PP 1", "CPU", "does not fit"
    plan_reason: str
    max_model_len: int | None
    concurrency: int
    kv_planned_gib_per_gpu: float | None
    kv_pool_gib_per_gpu: float | None
    kv_headroom_gib_per_gpu: float | None
    sequences_held: int | None  # full-length sequences the KV pool holds
    power_kw: float | None  # facility power: GPUs at their limits + node base, x PUE
    energy_kwh_per_month: float | None
    power_cost_per_month: float | None
    hardware_cost: float | None
    operations_per_month: float
    running_per_month: float  # operations + power (power left out when not priced: see notes)
    owned_per_month: float  # running + hardware amortization
    throughput_tokens_per_s: float | None
    tokens_per_month: float | None
    cost_per_million_tokens: float | None
    cloud_price_per_million_tokens: float | None
    cloud_per_month: float | None
    break_even_months: float | None
    break_even: str  # "17.1 months", "never (...)", "not measured", ...
    notes: tuple[str, ...] = ()

    @property
    def compared(self) -> bool:
        """Local and cloud cost over time are both known (the chart's lines include it)."""
        return self.cloud_per_month is not None and self.hardware_cost is not None


def _plan(replica: ReplicaInput) -> tuple[ServingPlan | None, str]:
    head = replica.nodes[0]
    try:
        plan = plan_for_node(get_model(replica.model), replica.engine, gpu_count=head.count,
                             gpu_memory_mib=head.memory_mib, nodes=len(replica.nodes),
                             max_model_len=replica.max_model_len, gpu_memory_utilization=replica.gpu_memory_utilization,
                             use_gpus=replica.use_gpus, concurrency=replica.concurrency)
    except (EngineConfigError, ValueError) as error:
        return None, str(error)
    return plan, plan.reason


def _kv(replica: ReplicaInput, plan: ServingPlan) -> tuple[float, float, float, int | None]:
    """(planned, pool, headroom) GiB per GPU and the full-length sequences the pool holds."""
    head = replica.nodes[0]
    weights = get_model(replica.model).weights_gib / plan.gpus
    pool = head.memory_mib / 1024 * plan.gpu_memory_utilization - weights - plan.reserve_gib_per_gpu
    per_sequence = plan.kv_gib_per_gpu / plan.concurrency
    held = int(pool // per_sequence) if per_sequence > 0 else None
    return plan.kv_gib_per_gpu, round(pool, 2), round(pool - plan.kv_gib_per_gpu, 2), held


def _power_w(replica: ReplicaInput) -> tuple[float | None, list[str]]:
    limits = [node.power_limit_w for node in replica.nodes]
    unknown = [node.host for node, limit in zip(replica.nodes, limits) if limit is None]
    if unknown:
        return None, [f"power: {', '.join(unknown)} report no GPU power.limit (driver not installed?)"]
    base = replica.costs.node_base_power_w * len(replica.nodes)
    return (sum(limits) + base) * replica.costs.pue, []


def replica_row(replica: ReplicaInput) -> ReplicaRow:
    """Plan ``replica`` as the serve role does and price it (module docstring: the cost model)."""
    costs, nodes = replica.costs, len(replica.nodes)
    head = replica.nodes[0]
    plan, reason = _plan(replica)
    on_cpu = engine_on_cpu(replica.engine, gpu_count=head.count, gpu_memory_mib=head.memory_mib,
                           use_gpus=replica.use_gpus)
    fits = plan is not None and plan.fits
    notes: list[str] = []
    kv: tuple[float | None, float | None, float | None, int | None] = (None, None, None, None)
    if plan is None:
        layout = "invalid"
        notes.append(f"plan: {reason}")
    elif not plan.fits:
        layout = "does not fit"
        notes.append(f"plan: {reason}")
    elif on_cpu:
        layout = "CPU"
    else:
        layout = f"TP {plan.tensor_parallel_size} x PP {plan.pipeline_parallel_size}"
        kv = _kv(replica, plan)

    power_w, power_notes = _power_w(replica)
    notes += power_notes
    power_kw = None if power_w is None else power_w / 1000
    energy = None if power_kw is None else power_kw * HOURS_PER_MONTH
    power_cost = None
    if energy is not None and costs.power_price_per_kwh is not None:
        power_cost = energy * costs.power_price_per_kwh
    elif energy is not None:
        notes.append("power: not priced (report_power_price_per_kwh unset): running cost leaves energy out")

    hardware = None if costs.hardware_price is None else costs.hardware_price * nodes
    if hardware is None:
        notes.append("hardware: not priced (report_hardware_price unset): no amortization, no break-even")
    operations = costs.operations_cost_per_month * nodes
    running = operations + (power_cost or 0.0)
    owned = running + (hardware or 0.0) / costs.amortization_months

    tokens = cost_per_million = cloud = months = None
    if costs.throughput_tokens_per_s is not None and fits:
        tokens = costs.throughput_tokens_per_s * costs.busy_fraction * SECONDS_PER_MONTH
        cost_per_million = owned / (tokens / 1e6)
        if costs.cloud_price_per_million_tokens is not None:
            cloud = tokens / 1e6 * costs.cloud_price_per_million_tokens
    if not fits:
        break_even = "does not fit"
    elif tokens is None:
        break_even = "not measured"
    elif cloud is None:
        break_even = "no cloud price"
    elif hardware is None:
        break_even = "hardware not priced"
    elif cloud <= running:
        break_even = "never"
        notes.append(f"break-even: never: the cloud costs {cloud:,.2f} per month, running locally {running:,.2f}")
    else:
        months = hardware / (cloud - running)
        break_even = f"{months:.1f} months"
    return ReplicaRow(
        replica=replica.name, hosts=tuple(node.host for node in replica.nodes), model=get_model(replica.model).hf_repo,
        engine=replica.engine, nodes=nodes, gpu_name=head.name, gpus_installed=sum(node.count for node in replica.nodes),
        gpus_used=plan.gpus if fits and not on_cpu else 0, on_cpu=on_cpu, fits=fits, layout=layout,
        plan_reason=reason, max_model_len=plan.max_model_len if fits else None,
        concurrency=replica.concurrency, kv_planned_gib_per_gpu=kv[0], kv_pool_gib_per_gpu=kv[1],
        kv_headroom_gib_per_gpu=kv[2], sequences_held=kv[3], power_kw=power_kw, energy_kwh_per_month=energy,
        power_cost_per_month=power_cost, hardware_cost=hardware, operations_per_month=operations,
        running_per_month=running, owned_per_month=owned, throughput_tokens_per_s=costs.throughput_tokens_per_s,
        tokens_per_month=tokens, cost_per_million_tokens=cost_per_million,
        cloud_price_per_million_tokens=costs.cloud_price_per_million_tokens, cloud_per_month=cloud,
        break_even_months=months, break_even=break_even, notes=tuple(notes),
    )


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CostReport:
    rows: tuple[ReplicaRow, ...]
    inputs: tuple[ReplicaInput, ...] = ()
    currency: str = "USD"
    months: int = 36  # the chart's horizon

    @property
    def compared(self) -> tuple[ReplicaRow, ...]:
        return tuple(row for row in self.rows if row.compared)

    @property
    def charted(self) -> tuple[ReplicaRow, ...]:
        """The replicas the chart adds up: those compared with the cloud, else every one."""
        return self.compared or self.rows

    def local_cost(self, month: float) -> float:
        """Cumulative local cost of the charted replicas after ``month`` months."""
        return sum((row.hardware_cost or 0.0) + month * row.running_per_month for row in self.charted)

    def cloud_cost(self, month: float) -> float | None:
        """Cumulative cloud cost of the compared replicas; None when none is compared."""
        if not self.compared:
            return None
        return sum(month * row.cloud_per_month for row in self.compared)

    @property
    def break_even_months(self) -> float | None:
        """When the compared replicas together have cost as much as the cloud; None: never."""
        if not self.compared:
            return None
        hardware = sum(row.hardware_cost for row in self.compared)
        saving = sum(row.cloud_per_month - row.running_per_month for row in self.compared)
        return hardware / saving if saving > 0 else None

    @property
    def chart_months(self) -> int:
        """The horizon, stretched (to 1.25 x, at most ``MAX_CHART_MONTHS``) to show a later break-even."""
        months = self.break_even_months
        if months is not None and self.months < months <= MAX_CHART_MONTHS:
            return min(MAX_CHART_MONTHS, math.ceil(months * 1.25))
        return self.months

    def series(self) -> list[dict[str, float | None]]:
        """Month 0..``chart_months``: cumulative local and cloud cost (the chart's points)."""
        return [{"month": month, "local": round(self.local_cost(month), 2),
                 "cloud": None if self.cloud_cost(month) is None else round(self.cloud_cost(month), 2)}
                for month in range(self.chart_months + 1)]

    def by_model(self) -> dict[tuple[str, str], list[ReplicaRow]]:
        grouped: dict[tuple[str, str], list[ReplicaRow]] = {}
        for row in self.rows:
            grouped.setdefault((row.model, row.engine), []).append(row)
        return grouped


def build_report(replicas: Sequence[ReplicaInput], *, currency: str = "USD", months: int = 36) -> CostReport:
    if not replicas:
        raise ValueError("replicas: expected at least one serving replica, found none")
    return CostReport(rows=tuple(replica_row(replica) for replica in replicas), inputs=tuple(replicas),
                      currency=currency, months=months)


def report_from_json(data: Mapping[str, Any], costs: Mapping[str, Costs] | None = None, *,
                     currency: str | None = None, months: int | None = None) -> CostReport:
    """Rebuild a report from a saved one (``report_to_json``'s ``inputs``, or a hand-written file
    of the same shape); ``costs``: replica name -> prices that replace the saved ones."""
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ValueError("inputs: expected a list of replicas (the 'inputs' of a saved report), found "
                         f"{type(inputs).__name__}")
    replicas = [ReplicaInput.from_dict(item, (costs or {}).get(str(item.get("name")))) for item in inputs]
    return build_report(replicas, currency=currency or str(data.get("currency", "USD")),
                        months=months or int(data.get("months", 36)))


# --- output: terminal table ------------------------------------------------------------------


def _money(value: float | None, cents: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if cents else f"{value:,.0f}"


def _kv_text(row: ReplicaRow) -> str:
    if row.on_cpu and row.fits:
        return "host RAM"
    if row.kv_planned_gib_per_gpu is None:
        return "-"
    return f"{row.kv_planned_gib_per_gpu:.1f} / {row.kv_pool_gib_per_gpu:.1f} (+{row.kv_headroom_gib_per_gpu:.1f})"


def _cells(row: ReplicaRow) -> list[str]:
    return [
        row.replica, f"{row.gpus_used}/{row.gpus_installed}", row.layout,
        "-" if row.max_model_len is None else f"{row.max_model_len}" + (f" x{row.concurrency}" if row.concurrency > 1 else ""),
        _kv_text(row), "-" if row.sequences_held is None else str(row.sequences_held),
        "unknown" if row.power_kw is None else f"{row.power_kw:.2f}",
        _money(row.hardware_cost), _money(row.running_per_month),
        "not measured" if row.throughput_tokens_per_s is None else f"{row.throughput_tokens_per_s:,.0f}",
        _money(row.cost_per_million_tokens, cents=True), _money(row.cloud_price_per_million_tokens, cents=True),
        row.break_even,
    ]


HEADERS: Final = ("replica", "GPUs", "layout", "context", "KV GiB/GPU plan/pool", "seqs", "power kW",
                  "hardware", "running/month", "tok/s", "per 1M tok", "cloud 1M", "break-even")


def _grid(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(cells[i]) for cells in [headers, *rows]) for i in range(len(headers))]
    line = lambda cells: "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(headers), line(["-" * width for width in widths]), *[line(cells) for cells in rows]]


def _total_cells(rows: Sequence[ReplicaRow]) -> list[str]:
    known = lambda values: None if any(v is None for v in values) else sum(values)  # noqa: E731
    power = known([row.power_kw for row in rows])
    return ["total", f"{sum(r.gpus_used for r in rows)}/{sum(r.gpus_installed for r in rows)}", "", "", "", "",
            "unknown" if power is None else f"{power:.2f}", _money(known([r.hardware_cost for r in rows])),
            _money(sum(r.running_per_month for r in rows)), "", "", "", ""]


def model_heading(model: str, engine: str, rows: Sequence[ReplicaRow]) -> str:
    replicas = f"{len(rows)} replica{'s' if len(rows) != 1 else ''}"
    return (f"{model} on {engine}: {replicas}, {sum(r.gpus_used for r in rows)} of "
            f"{sum(r.gpus_installed for r in rows)} GPUs used")


def render_table(report: CostReport) -> str:
    """One table per model (its replicas, and their total when there are several), then notes."""
    lines = [f"Capacity and cost report ({report.currency}; power at the GPUs' power limits, "
             f"{HOURS_PER_MONTH} h per month)"]
    for (model, engine), rows in report.by_model().items():
        cells = [_cells(row) for row in rows] + ([_total_cells(rows)] if len(rows) > 1 else [])
        lines += ["", model_heading(model, engine, rows), *_grid(HEADERS, cells)]
    lines += ["", _summary(report)]
    notes = [f"  {row.replica}: {note}" for row in report.rows for note in row.notes]
    if notes:
        lines += ["notes:", *notes]
    return "\n".join(lines) + "\n"


def _summary(report: CostReport) -> str:
    if not report.compared:
        return ("cloud comparison: none (needs report_throughput_tokens_per_s and "
                "report_cloud_price_per_million_tokens, and a fitting plan)")
    months = report.break_even_months
    left_out = [row.replica for row in report.rows if not row.compared]
    text = (f"break-even against the cloud: {months:.1f} months" if months is not None
            else "break-even against the cloud: never (the cloud costs less than running locally)")
    text += f" (replicas {', '.join(row.replica for row in report.compared)}"
    return text + (f"; left out: {', '.join(left_out)})" if left_out else ")")


# --- output: JSON ----------------------------------------------------------------------------


def report_to_json(report: CostReport) -> str:
    """Rows, fleet figures, the chart's series and the inputs (``report_from_json`` reads them back)."""
    data = {
        "currency": report.currency, "months": report.months, "chart_months": report.chart_months,
        "hours_per_month": HOURS_PER_MONTH,
        "rows": [{**asdict(row), "compared": row.compared} for row in report.rows],
        "fleet": {
            "compared": [row.replica for row in report.compared],
            "break_even_months": report.break_even_months,
            "hardware_cost": sum(row.hardware_cost or 0.0 for row in report.charted),
            "running_per_month": sum(row.running_per_month for row in report.charted),
            "cloud_per_month": (sum(row.cloud_per_month for row in report.compared) if report.compared else None),
        },
        "series": report.series(),
        "inputs": [replica.to_dict() for replica in report.inputs],
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- output: HTML with one SVG chart ---------------------------------------------------------

CHART_WIDTH, CHART_HEIGHT = 900, 420
_PLOT = {"left": 90, "right": 30, "top": 40, "bottom": 60}


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / ticks if span > 0 else 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= raw)


def _month_step(months: int) -> int:
    return next((step for step in (1, 2, 3, 6, 12, 24, 60) if months / step <= 10), 120)


def _axis_money(value: float) -> str:
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def render_chart(report: CostReport) -> str:
    """The SVG chart: cumulative local cost against the cloud's, and the break-even point."""
    months = report.chart_months
    local = [report.local_cost(m) for m in range(months + 1)]
    cloud = [report.cloud_cost(m) for m in range(months + 1)] if report.compared else []
    top_value = max(local + cloud) or 1.0
    step = _nice_step(top_value)
    y_max = math.ceil(top_value / step) * step
    left, top = _PLOT["left"], _PLOT["top"]
    width = CHART_WIDTH - left - _PLOT["right"]
    height = CHART_HEIGHT - top - _PLOT["bottom"]
    x = lambda month: left + width * month / months  # noqa: E731
    y = lambda value: top + height * (1 - value / y_max)  # noqa: E731
    parts = [
        f'<svg id="cost-chart" xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-label="cumulative cost, local against cloud">',
        f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="{PLOT_BACKGROUND}"/>',
    ]
    value = 0.0
    while value <= y_max + step / 2:
        parts.append(f'<line x1="{left}" x2="{left + width}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#c8cfdb"/>')
        parts.append(f'<text x="{left - 8}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="12">'
                     f'{_axis_money(value)}</text>')
        value += step
    for month in range(0, months + 1, _month_step(months)):
        parts.append(f'<text x="{x(month):.1f}" y="{top + height + 18}" text-anchor="middle" font-size="12">'
                     f'{month}</text>')
    parts.append(f'<text x="{left + width / 2}" y="{CHART_HEIGHT - 12}" text-anchor="middle" font-size="13">'
                 'months</text>')
    parts.append(f'<text x="16" y="{top + height / 2}" text-anchor="middle" font-size="13" '
                 f'transform="rotate(-90 16 {top + height / 2})">cumulative cost ({html.escape(report.currency)})</text>')

    def line(values: list[float], colour: str, name: str) -> None:
        points = " ".join(f"{x(m):.1f},{y(v):.1f}" for m, v in enumerate(values))
        parts.append(f'<polyline class="{name}" points="{points}" fill="none" stroke="{colour}" stroke-width="5" '
                     'stroke-linejoin="round"/>')

    line(local, LOCAL_COLOUR, "local")
    legend = [(LOCAL_COLOUR, "local (hardware + running)")]
    if cloud:
        line(cloud, CLOUD_COLOUR, "cloud")
        legend.append((CLOUD_COLOUR, "cloud (tokens x price)"))
    months_even = report.break_even_months
    if months_even is not None and months_even <= months:
        cx, cy = x(months_even), y(report.local_cost(months_even))
        parts.append(f'<circle class="break-even" cx="{cx:.1f}" cy="{cy:.1f}" r="9" fill="{BREAK_EVEN_COLOUR}" '
                     'stroke="#ffffff" stroke-width="2"/>')
        anchor, dx = ("end", -14) if cx > left + width * 0.75 else ("start", 14)
        parts.append(f'<text x="{cx + dx:.1f}" y="{cy + 24:.1f}" text-anchor="{anchor}" font-size="13" '
                     f'font-weight="bold">break-even: month {months_even:.1f}</text>')
        legend.append((BREAK_EVEN_COLOUR, f"break-even, month {months_even:.1f}"))
        if months != report.months:
            parts.append(f'<text x="{left + width - 8}" y="{top + height - 12}" text-anchor="end" font-size="12">'
                         f'horizon stretched from {report.months} to {months} months to show it</text>')
    elif report.compared:
        where = "never" if months_even is None else f"month {months_even:.1f}, beyond the horizon"
        parts.append(f'<text x="{left + 12}" y="{top + height - 12}" font-size="13">break-even: {where}</text>')
    else:
        parts.append(f'<text x="{left + 12}" y="{top + height - 12}" font-size="13">no cloud comparison: enter '
                     'report_throughput_tokens_per_s and report_cloud_price_per_million_tokens</text>')
    lx = left  # the legend sits above the plot area: inside it, only the lines and the marker have these colours
    for colour, label in legend:
        parts.append(f'<rect x="{lx}" y="{top - 24}" width="22" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 28}" y="{top - 15}" font-size="13">{html.escape(label)}</text>')
        lx += 28 + 8 * len(label) + 24
    parts.append("</svg>")
    return "\n".join(parts)


_STYLE = """
body { font-family: sans-serif; margin: 16px 24px; color: #1b1f24; background: #ffffff; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 16px; margin: 24px 0 6px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #d0d5dd; padding: 3px 8px; text-align: left; white-space: nowrap; }
th { background: #f2f4f7; }
p, li { font-size: 13px; }
figure { margin: 8px 0 0; }
"""


def render_html(report: CostReport, title: str = "Capacity and cost report") -> str:
    """A self-contained page (inline CSS and SVG, nothing fetched): the chart, then each model's table."""
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(_summary(report))}. Currency {html.escape(report.currency)}; power at the GPUs' power "
        f"limits x PUE, {HOURS_PER_MONTH} h per month.</p>",
        f'<figure>{render_chart(report)}</figure>',
    ]
    for (model, engine), rows in report.by_model().items():
        out.append(f"<h2>{html.escape(model_heading(model, engine, rows))}</h2>")
        out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS) + "</tr>")
        cells = [_cells(row) for row in rows] + ([_total_cells(rows)] if len(rows) > 1 else [])
        out += ["<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in cells]
        out.append("</table>")
    notes = [f"{row.replica}: {note}" for row in report.rows for note in row.notes]
    if notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(note)}</li>" for note in notes) + "</ul>")
    out.append("<h2>Serving plans</h2><ul>" + "".join(
        f"<li>{html.escape(row.replica)}: {html.escape(row.plan_reason)}</li>" for row in report.rows) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(report: CostReport, directory: Path) -> dict[str, Path]:
    """Write report.txt, report.json and report.html under ``directory``; file name -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, text in (("report.txt", render_table(report)), ("report.json", report_to_json(report)),
                       ("report.html", render_html(report))):
        (directory / name).write_text(text, encoding="utf-8")
        written[name] = directory / name
    return written


__all__ = [
    "BREAK_EVEN_COLOUR", "BRIEF_SECTION_9", "CLOUD_COLOUR", "COST_FIELDS", "CostReport", "Costs", "HOURS_PER_MONTH",
    "LOCAL_COLOUR", "NodeGpus", "PLOT_BACKGROUND", "ReplicaInput", "ReplicaRow", "SECONDS_PER_MONTH", "build_report",
    "render_chart", "render_html", "render_table", "replica_row", "report_from_json", "report_to_json", "write_report",
]
