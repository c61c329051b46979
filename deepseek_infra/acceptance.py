"""The acceptance gate (pure): parse the tools' output, derive thresholds from the hardware, verdicts.

Tools, as their real output reads (samples in tests/fixtures/acceptance/, sources in
tests/unit/deepseek_infra/test_acceptance.py):

- ``dcgmi diag -r N``: DCGM's result table; 3.x rows ``| GPU Memory | Pass - All |`` with
  ``Fail - GPU: 0`` continuation and ``Error``/``Warning`` rows, 4.x rows ``| memory | Pass |``
  with ``GPU0: Pass`` continuations. A test fails when any of its result cells says ``Fail``.
- nccl-tests ``all_reduce_perf``: one row per message size (out-of-place and in-place time,
  algbw, busbw, #wrong), then ``# Out of bounds values`` and ``# Avg bus bandwidth``. The
  figure judged is the out-of-place busbw of the largest size (the average depends on the size
  range asked for).
- perftest ``ib_write_bw``: ``#bytes #iterations BW peak[UNIT] BW average[UNIT] MsgRate[Mpps]``
  with UNIT ``Gb/sec`` (``--report_gbits``) or ``MB/sec`` (2^20 bytes, the default).

Thresholds (defaults in roles/acceptance/defaults.py), each a fraction of a nominal figure:

- all-reduce busbw inside the node: NVLink: links per GPU pair (``NV18`` in ``nvidia-smi topo
  -m``) x 25 GB/s per link and direction (NVLink 2-4; 50 GB/s for NVLink 5, Blackwell), so
  450 GB/s for H100/H200 SXM; x 0.8 = 360 GB/s. Published DGX/HGX H100 runs reach 466-471 GB/s
  at 1-2 GB (NVLS). PCIe: a nominal per-direction link rate (Gen4 x16: 32 GB/s) x 0.6.
- ib_write_bw per HCA pair: the lower port rate of the pair (``ibstat`` Rate, Gb/s) x 0.9.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from deepseek_node.acceptance import Verdict
from deepseek_node.netcheck import ib_write_bw_gbps as parse_ib_write_bw  # one parser, shared with the network check

#: GB/s per NVLink link and direction, by GPU name (first match); NVLink 2-4 are 25.
NVLINK_LINK_GBPS: tuple[tuple[str, float], ...] = (("B200", 50.0), ("B100", 50.0), ("GB200", 50.0), ("B300", 50.0))
NVLINK_DEFAULT_LINK_GBPS = 25.0

# --- dcgmi diag -----------------------------------------------------------------------------

_CATEGORY = re.compile(r"^[|+]-----\s+(\w+)\s+-+\+")
_ROW = re.compile(r"^\|\s?(.*?)\s*\|\s?(.*?)\s*\|\s*$")
_MESSAGE_ROWS = {"Error", "Warning", "Info"}


@dataclass(frozen=True, slots=True)
class DiagTest:
    category: str
    name: str
    results: tuple[str, ...]  # "Pass - All", "Fail - GPU: 0", "GPU0: Pass" ...
    messages: tuple[str, ...] = ()  # Error/Warning text rows under it

    @property
    def failed(self) -> bool:
        return any(re.match(r"(GPU\d+:\s*)?Fail", result) for result in self.results)


@dataclass(frozen=True, slots=True)
class DiagReport:
    tests: tuple[DiagTest, ...]
    metadata: dict[str, str]
    errors: tuple[str, ...] = ()  # Error rows before any test (the run stopped there)

    @property
    def failed(self) -> tuple[DiagTest, ...]:
        return tuple(test for test in self.tests if test.failed)


def parse_dcgmi_diag(text: str) -> DiagReport:
    """``dcgmi diag -r N`` table -> its tests (only the first table when it is printed twice)."""
    tests: list[dict] = []
    metadata: dict[str, str] = {}
    errors: list[list[str]] = []
    category = ""
    message: list[str] | None = None
    tables = 0
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("| Diagnostic") and "Result" in line:
            tables += 1
            if tables > 1:
                break
            continue
        header = _CATEGORY.match(line)
        if header:
            category, message = header.group(1), None
            continue
        row = _ROW.match(line)
        if not row or line.startswith("+="):
            continue
        name, value = row.group(1), row.group(2)
        chunk = line.split("|")[2][1:46]  # a wrapped message keeps its fixed-width chunk, spaces too
        if category == "Metadata":
            if name:
                metadata[name] = value
            continue
        if name in _MESSAGE_ROWS:
            message = [chunk]
            if tests and tests[-1]["category"] == category:
                tests[-1]["messages"].append(message)
            elif name == "Error":
                errors.append(message)  # the run stopped before any test of this category
            else:
                message = None
            continue
        if not name:
            if message is not None:
                message.append(chunk)
            elif tests and value:
                tests[-1]["results"].append(value)
            continue
        message = None
        tests.append({"category": category, "name": name, "results": [value] if value else [], "messages": []})
    return DiagReport(
        tests=tuple(DiagTest(t["category"], t["name"], tuple(t["results"]),
                             tuple(_joined(m) for m in t["messages"])) for t in tests),
        metadata=metadata, errors=tuple(_joined(m) for m in errors),
    )


def _joined(chunks: list[str]) -> str:
    # dcgmi wraps a message at a fixed width, mid-word: the chunks join without a separator
    return re.sub(" {2,}", " ", "".join(chunks)).strip()


def dcgm_verdict(level: int, output: str, ok: bool) -> Verdict:
    """The ``dcgm_diag`` verdict: failed tests (threshold 0), each named with its first message."""
    name = f"dcgm_diag_r{level}"
    report = parse_dcgmi_diag(output)
    if not report.tests:
        return Verdict(name=name, passed=False, measured=None, threshold=0, unit="failed tests",
                       detail=f"dcgmi printed no diagnostic table ({'exit 0' if ok else 'failed'}): {output_tail(output)}")
    failed = report.failed
    parts = []
    for test in failed:
        fails = ", ".join(result for result in test.results if "Fail" in result)
        parts.append(f"{test.category}/{test.name}: {fails}" + (f" [{test.messages[0]}]" if test.messages else ""))
    parts += [f"Error: {error}" for error in report.errors]
    return Verdict(name=name, passed=not failed and not report.errors, measured=float(len(failed) + len(report.errors)),
                   threshold=0, unit="failed tests",
                   detail="; ".join(parts) or f"{len(report.tests)} tests, none failed")


# --- nccl-tests all_reduce_perf ---------------------------------------------------------------

_NCCL_ROW = re.compile(
    r"^\s*(\d+)\s+(\d+)\s+(\w+)\s+(\w+)\s+(-?\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\S+)\s*$"
)
_NCCL_AVG = re.compile(r"#\s*Avg bus bandwidth\s*:\s*([\d.]+)")
_NCCL_OOB = re.compile(r"#\s*Out of bounds values\s*:\s*(\d+)\s+(\w+)")


@dataclass(frozen=True, slots=True)
class NcclRow:
    size_bytes: int
    busbw_out_of_place: float  # GB/s
    busbw_in_place: float
    wrong: int  # out-of-place + in-place #wrong ("N/A" counts 0)


@dataclass(frozen=True, slots=True)
class NcclReport:
    rows: tuple[NcclRow, ...]
    avg_busbw: float | None
    out_of_bounds: int | None

    @property
    def largest(self) -> NcclRow | None:
        return max(self.rows, key=lambda row: row.size_bytes) if self.rows else None


def _wrong(text: str) -> int:
    return int(text) if text.isdigit() else 0


def parse_all_reduce_perf(text: str) -> NcclReport:
    """nccl-tests output (also with mpirun's ``[1,0]<stdout>:`` prefixes) -> rows and summary."""
    rows = []
    avg = oob = None
    for line in text.splitlines():
        line = re.sub(r"^\[\d+,\d+\]<std\w+>:", "", line)
        match = _NCCL_ROW.match(line)
        if match:
            rows.append(NcclRow(int(match.group(1)), float(match.group(8)), float(match.group(12)),
                                _wrong(match.group(9)) + _wrong(match.group(13))))
        elif (found := _NCCL_AVG.search(line)):
            avg = float(found.group(1))
        elif (found := _NCCL_OOB.search(line)):
            oob = int(found.group(1))
    return NcclReport(tuple(rows), avg, oob)


def allreduce_verdict(output: str, threshold_gbps: float, basis: str) -> Verdict:
    name = "allreduce_busbw"
    report = parse_all_reduce_perf(output)
    largest = report.largest
    if largest is None:
        return Verdict(name=name, passed=False, measured=None, threshold=threshold_gbps, unit="GB/s",
                       detail=f"all_reduce_perf printed no result rows: {output_tail(output)}")
    wrong = sum(row.wrong for row in report.rows) + (report.out_of_bounds or 0)
    measured = largest.busbw_out_of_place
    detail = f"{basis}; busbw at {largest.size_bytes} B" + (f"; {wrong} wrong values" if wrong else "")
    return Verdict(name=name, passed=measured >= threshold_gbps and not wrong, measured=measured,
                   threshold=threshold_gbps, unit="GB/s", detail=detail)


# --- perftest ib_write_bw ---------------------------------------------------------------------

# ib_write_bw: parse_ib_write_bw above, the network check's parser (deepseek_node.netcheck).


@dataclass(frozen=True, slots=True)
class HcaPair:
    server: str  # CA name, port 1
    client: str
    rate_gbps: float  # the lower port rate of the two

    @property
    def name(self) -> str:
        return f"ib_write_bw {self.client}->{self.server}"


def hca_pairs(ports: Iterable[object]) -> list[HcaPair]:
    """Active InfiniBand ports paired (0,1), (2,3), ...; an odd one out pairs with the first.

    ``ports``: ``deepseek_infra.hardware.IbPort`` values (``ca``, ``state``, ``link_layer``, ``rate_gbps``).
    """
    active = sorted((p for p in ports if getattr(p, "state", None) == "Active"
                     and getattr(p, "link_layer", None) == "InfiniBand" and getattr(p, "rate_gbps", None)),
                    key=lambda p: p.ca)
    if len(active) < 2:
        return []
    pairs = [(active[i], active[i + 1]) for i in range(0, len(active) - 1, 2)]
    if len(active) % 2:
        pairs.append((active[0], active[-1]))
    return [HcaPair(a.ca, b.ca, float(min(a.rate_gbps, b.rate_gbps))) for a, b in pairs]


def ib_verdict(pair: HcaPair, output: str, fraction: float) -> Verdict:
    threshold = round(pair.rate_gbps * fraction, 2)
    measured = parse_ib_write_bw(output)
    if measured is None:
        return Verdict(name=pair.name, passed=False, measured=None, threshold=threshold, unit="Gb/s",
                       detail=f"ib_write_bw printed no result row: {output_tail(output)}")
    return Verdict(name=pair.name, passed=measured >= threshold, measured=round(measured, 2), threshold=threshold,
                   unit="Gb/s", detail=f"{fraction:g} x {pair.rate_gbps:g} Gb/s port rate")


# --- the fabric inside the node ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fabric:
    kind: str  # "nvswitch", "nvlink" or "pcie"
    gpus: int
    nominal_gbps: float  # per GPU, one direction
    basis: str  # how nominal_gbps was derived


def nvlink_link_gbps(gpu_name: str | None) -> float:
    for marker, rate in NVLINK_LINK_GBPS:
        if marker in (gpu_name or ""):
            return rate
    return NVLINK_DEFAULT_LINK_GBPS


def fabric_of(gpu_names: Sequence[str | None], topology_links: Sequence[dict[str, str]], nvswitch: bool,
              pcie_gbps: float) -> Fabric:
    """The GPU fabric from ``nvidia-smi topo -m`` links (one dict per GPU row: peer -> cell)."""
    gpus = len(gpu_names)
    cells = [cell for links in topology_links for peer, cell in links.items()
             if re.fullmatch(r"GPU\d+", peer) and cell.strip() != "X"]
    counts = [int(m.group(1)) for cell in cells if (m := re.fullmatch(r"NV(\d+)", cell.strip()))]
    if cells and len(counts) == len(cells):
        per_link = nvlink_link_gbps(gpu_names[0] if gpu_names else None)
        links = min(counts)
        return Fabric("nvswitch" if nvswitch else "nvlink", gpus, links * per_link,
                      f"NV{links} x {per_link:g} GB/s per link ({'NVSwitch' if nvswitch else 'NVLink'})")
    return Fabric("pcie", gpus, pcie_gbps, f"PCIe, {pcie_gbps:g} GB/s nominal per direction")


def allreduce_threshold(fabric: Fabric, nvlink_fraction: float, pcie_fraction: float) -> float:
    fraction = pcie_fraction if fabric.kind == "pcie" else nvlink_fraction
    return round(fabric.nominal_gbps * fraction, 2)


def missing_tool(name: str, tool: str, threshold: float | None, unit: str, how: str) -> Verdict:
    """A check whose tool is absent fails (never a pass without a measurement)."""
    return Verdict(name=name, passed=False, measured=None, threshold=threshold, unit=unit,
                   detail=f"{tool} not found on the node; {how}")


def render_table(verdicts: Sequence[Verdict]) -> str:
    rows = [("check", "measured", "threshold", "verdict")]
    for v in verdicts:
        measured = "-" if v.measured is None else f"{v.measured:g} {v.unit}"
        threshold = "-" if v.threshold is None else f"{v.threshold:g} {v.unit}"
        rows.append((v.name, measured, threshold, "pass" if v.passed else f"FAIL {v.detail}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3] for row in rows)


def output_tail(output: str) -> str:
    return " ".join(output.strip().splitlines()[-3:])[:300] or "(no output)"


# --- GPU burn-in (deepseek_node.burnin) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpuNominal:
    memory_gbps: float  # datasheet memory bandwidth, GB/s
    bf16_tflops: float  # datasheet dense BF16 Tensor Core TFLOPS (half the "with sparsity" figure)


#: By ``nvidia-smi`` name, first match wins (so "H100 NVL" before "H100"). NVIDIA datasheets:
#: H100/H200 (nvidia.com/en-us/data-center/h100, /h200: SXM 3.35 / 4.8 TB/s, BF16 1,979 TFLOPS
#: with sparsity; H100 PCIe 2 TB/s, 1,513; H100 NVL 3.9 TB/s, 1,671; H200 NVL 4.8 TB/s, 1,671),
#: A100 (nvidia.com/en-us/data-center/a100: BF16 312 dense; 80GB SXM 2,039 GB/s, 80GB PCIe
#: 1,935, 40GB 1,555). H800 takes H100 SXM's figures. Any other GPU: set the _min_ settings.
GPU_NOMINAL: tuple[tuple[str, GpuNominal], ...] = (
    ("H200 NVL", GpuNominal(4800.0, 835.5)),
    ("H200", GpuNominal(4800.0, 989.5)),
    ("H100 NVL", GpuNominal(3900.0, 835.5)),
    ("H100 PCIe", GpuNominal(2000.0, 756.5)),
    ("H100", GpuNominal(3350.0, 989.5)),
    ("H800", GpuNominal(3350.0, 989.5)),
    ("A100-SXM4-80GB", GpuNominal(2039.0, 312.0)),
    ("A100 80GB PCIe", GpuNominal(1935.0, 312.0)),
    ("A100", GpuNominal(1555.0, 312.0)),
)


def gpu_nominal(name: str | None) -> GpuNominal | None:
    """The datasheet figures of a GPU by its ``nvidia-smi`` name; None when not in the table."""
    for marker, nominal in GPU_NOMINAL:
        if marker in (name or ""):
            return nominal
    return None


@dataclass(frozen=True, slots=True)
class BurninFloors:
    memory_fraction: float  # x datasheet memory bandwidth
    matmul_fraction: float  # x datasheet dense BF16 TFLOPS
    min_memory_gbps: float | None = None  # set: replaces the derived floor (GPUs not in the table, the CPU)
    min_tflops: float | None = None

    def memory(self, nominal: GpuNominal | None) -> tuple[float | None, str]:
        return _floor(self.min_memory_gbps, "acceptance_burnin_min_memory_gbps", self.memory_fraction,
                      nominal and nominal.memory_gbps, "GB/s datasheet")

    def matmul(self, nominal: GpuNominal | None) -> tuple[float | None, str]:
        return _floor(self.min_tflops, "acceptance_burnin_min_tflops", self.matmul_fraction,
                      nominal and nominal.bf16_tflops, "TFLOPS BF16 datasheet")


def _floor(override: float | None, setting: str, fraction: float, nominal: float | None,
           unit: str) -> tuple[float | None, str]:
    """(floor, how it was set): the setting when given, else ``fraction`` x the datasheet figure."""
    if override is not None:
        return override, setting
    if nominal is None:
        return None, ""
    return round(nominal * fraction, 1), f"{fraction:g} x {nominal:g} {unit}"


def burnin_verdicts(document: dict, floors: BurninFloors, expected_devices: int) -> list[Verdict]:
    """``burnin_memory_bw`` and ``burnin_matmul`` from ``python -m deepseek_node.burnin``'s JSON.

    Each verdict carries the device furthest below its floor (the slowest when none is set);
    a device that errored, a wrong matmul result, or fewer devices than the node's GPUs fail.
    A device without a datasheet figure and without a ``_min_`` setting is measured, not judged.
    """
    if document.get("error"):
        return [Verdict(name="burnin", passed=False, measured=None, threshold=None, unit="",
                        detail=str(document["error"]))]
    devices = list(document.get("devices") or ())
    kind = document.get("device", "cuda")
    problems = [f"{kind} {d.get('index')}: {d['error']}" for d in devices if d.get("error")]
    if kind == "cuda" and len(devices) < expected_devices:
        problems.append(f"PyTorch sees {len(devices)} of the node's {expected_devices} GPUs")
    verdicts = []
    for name, key, unit, floor_of, setting in (
            ("burnin_memory_bw", "memory_bandwidth_gbps", "GB/s", floors.memory, "acceptance_burnin_min_memory_gbps"),
            ("burnin_matmul", "matmul_tflops", "TFLOPS", floors.matmul, "acceptance_burnin_min_tflops")):
        judged = []
        for device in devices:
            figure = device.get(key)
            threshold, basis = floor_of(gpu_nominal(device.get("name")) if kind == "cuda" else None)
            if figure is not None:
                judged.append((figure / threshold if threshold else float("inf"), figure, threshold, basis, device))
        if not judged:
            verdicts.append(Verdict(name=name, passed=False, measured=None, threshold=None, unit=unit,
                                    detail="; ".join(problems) or "no device measured"))
            continue
        _, figure, threshold, basis, device = min(judged, key=lambda item: (item[0], item[1]))
        where = f"{kind} {device.get('index')} ({device.get('name')})"
        notes = [f"{where}, lowest of {len(judged)}" if len(judged) > 1 else where]
        notes.append(basis if threshold is not None else f"not judged: no datasheet figure, set {setting}")
        failed = list(problems)
        if key == "matmul_tflops":
            wrong = {d.get("index"): d.get("matmul_errors") for d in devices if d.get("matmul_errors")}
            failed += [f"{kind} {index}: {count} wrong matmul results" for index, count in wrong.items()]
        passed = not failed and (threshold is None or figure >= threshold)
        verdicts.append(Verdict(name=name, passed=passed, measured=round(float(figure), 2), threshold=threshold,
                                unit=unit, detail="; ".join(failed + notes)))
    return verdicts


# --- all-reduce across a replica's nodes (deepseek_node.replica_allreduce) -------------------------


def replica_network_gbps(ib_ports: Iterable[object], network: dict, backend: str) -> tuple[float | None, str]:
    """A node's bandwidth toward its replica, GB/s, and how it was derived.

    NCCL: the sum of the active InfiniBand ports' rates (NCCL spreads its rings over every HCA);
    without them, or with gloo (TCP), the fastest Ethernet interface that is up.
    """
    if backend == "nccl":
        active = [p for p in ib_ports if getattr(p, "state", None) == "Active" and getattr(p, "rate_gbps", None)
                  and getattr(p, "link_layer", None) == "InfiniBand"]
        if active:
            total = sum(float(p.rate_gbps) for p in active)
            return total / 8, f"{len(active)} InfiniBand port(s), {total:g} Gb/s"
    links = [(interface.speed_mbps, name) for name, interface in network.items()
             if getattr(interface, "type", None) == "ether" and getattr(interface, "state", None) == "up"
             and getattr(interface, "speed_mbps", None)]
    if not links:
        return None, "no active InfiniBand port and no Ethernet link speed"
    speed, name = max(links)
    return speed / 8000, f"{name} {speed} Mb/s"


def replica_allreduce_verdict(document: dict, threshold: float | None, basis: str, replica: str) -> Verdict:
    """``replica_allreduce_busbw``: the busbw of the largest message across the replica's nodes."""
    name = "replica_allreduce_busbw"
    if document.get("error"):
        return Verdict(name=name, passed=False, measured=None, threshold=threshold, unit="GB/s",
                       detail=f"{replica}: {document['error']}")
    rows = document.get("rows") or ()
    if not rows:
        return Verdict(name=name, passed=False, measured=None, threshold=threshold, unit="GB/s",
                       detail=f"{replica}: no result rows")
    largest = max(rows, key=lambda row: row["size_bytes"])
    wrong = sum(int(row.get("wrong") or 0) for row in rows)
    detail = (f"{replica}, {document.get('world_size')} ranks over {document.get('backend')}; "
              f"busbw at {largest['size_bytes']} B; {basis}" + (f"; {wrong} wrong values" if wrong else ""))
    measured = round(float(largest["busbw_gbps"]), 2)
    return Verdict(name=name, passed=not wrong and (threshold is None or measured >= threshold), measured=measured,
                   threshold=threshold, unit="GB/s", detail=detail)
