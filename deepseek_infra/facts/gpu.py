"""NVIDIA GPU discovery: ``nvidia-smi topo -m``, ``--query-gpu`` CSV and the default table.

The ``parse_*`` functions are pure (lines in, data out) so that a batched fact can feed
them the output of the ``*_COMMAND`` constants; the facts below only wrap them.
"""

from __future__ import annotations

import csv
import re
from typing import TypedDict

from pyinfra.api import FactBase
from pyinfra.api.exceptions import FactProcessError
from typing_extensions import override

from deepseek_infra.cpulist import parse_cpulist
from deepseek_infra.text import clean_line

GPU_QUERY_FIELDS: tuple[str, ...] = (
    "index",
    "name",
    "uuid",
    "pci.bus_id",
    "memory.total",
    "memory.used",
    "compute_cap",
    "driver_version",
    "persistence_mode",
    "power.limit",
    "ecc.mode.current",
    "mig.mode.current",
    "temperature.gpu",
    "utilization.gpu",
)
GPU_TOPOLOGY_COMMAND = "nvidia-smi topo -m"
GPU_INVENTORY_COMMAND = f"nvidia-smi --query-gpu={','.join(GPU_QUERY_FIELDS)} --format=csv"
NVIDIA_SMI_COMMAND = "nvidia-smi"


# --- nvidia-smi topo -m -------------------------------------------------------------------

# One matrix cell. Cells are matched back to back because some drivers drop the tab after
# a 3-character cell ("PXBNODE", "SYSSYS"; NVIDIA/nccl-tests#333). Old drivers print SOC.
_TOPO_CELL = re.compile(r"NODE|SYS|SOC|PHB|PXB|PIX|NV\d+|N/A|X")
_TRAILING_COLUMNS = ("CPU Affinity", "NUMA Affinity", "GPU NUMA ID")
_NIC_LEGEND = re.compile(r"^\s*(NIC\d+):\s*(\S+)\s*$")


class TopologyGpu(TypedDict):
    name: str
    cpus: list[int]
    numa_node: int | None
    links: dict[str, str]


class TopologyNic(TypedDict):
    name: str
    device: str | None
    links: dict[str, str]


class TopologyDict(TypedDict):
    gpus: list[TopologyGpu]
    nics: list[TopologyNic]


def _split_topology_header(header: str) -> tuple[list[str], list[str]]:
    """Device column names, then the trailing column names present, in order."""
    trailing = sorted((name for name in _TRAILING_COLUMNS if name in header), key=header.find)
    device_part = header[: header.find(trailing[0])] if trailing else header
    return device_part.split(), trailing


def _is_topology_header(line: str) -> bool:
    """The header starts with GPU0; a data row has a matrix cell ("X", "NV18") after its label."""
    tokens = line.split()
    return bool(tokens) and tokens[0] == "GPU0" and (
        len(tokens) == 1 or not _TOPO_CELL.match(tokens[1])
    )


def _split_topology_row(tokens: list[str], width: int, row: str) -> tuple[list[str], list[str]]:
    """Split a row's tokens (label excluded) into ``width`` matrix cells and trailing values."""
    cells: list[str] = []
    trailing: list[str] = []
    for token in tokens:
        position = 0
        while len(cells) < width and (match := _TOPO_CELL.match(token, position)):
            cells.append(match.group())
            position = match.end()
        if position < len(token):
            if len(cells) < width:
                raise ValueError(f"nvidia-smi topo: row {row}: unknown cell {token!r}")
            trailing.append(token[position:])
    if len(cells) < width:
        raise ValueError(f"nvidia-smi topo: row {row}: expected {width} cells, found {len(cells)}")
    return cells, trailing


def _numa_node(text: str | None) -> int | None:
    """A single NUMA node number; None for "N/A" or a span of nodes."""
    nodes = parse_cpulist(text) if text else []
    return nodes[0] if len(nodes) == 1 else None


def parse_topology(lines: list[str]) -> TopologyDict:
    """Parse ``nvidia-smi topo -m`` (or ``-mp``) into per-GPU affinity and per-device links.

    Tab-separated and terminal-copied (tabs expanded to spaces) output both work, with or
    without the NIC legend and the ``GPU NUMA ID`` column. Older drivers name NIC columns
    by device (``mlx5_0``); then ``name`` and ``device`` are both that name. The self cell
    ("X") is left out of ``links``.

    Sample return value::

        {
            "gpus": [
                {"name": "GPU0", "cpus": [0, 1, ..., 55, 112, ..., 167], "numa_node": 0,
                 "links": {"GPU1": "NV18", ..., "NIC0": "PXB", "NIC1": "NODE", ...}},
            ],
            "nics": [{"name": "NIC0", "device": "mlx5_0", "links": {"GPU0": "PXB", ...}}],
        }
    """
    cleaned = [clean_line(line) for line in lines]
    header_index = next((i for i, line in enumerate(cleaned) if _is_topology_header(line)), None)
    if header_index is None:
        return {"gpus": [], "nics": []}
    columns, trailing_columns = _split_topology_header(cleaned[header_index])
    legend = {
        match.group(1): match.group(2) for line in cleaned if (match := _NIC_LEGEND.match(line))
    }

    gpus: list[TopologyGpu] = []
    nics: list[TopologyNic] = []
    for line in cleaned[header_index + 1 :]:
        if line.strip().startswith("Legend"):
            break
        tokens = line.split()
        if not tokens or tokens[0] not in columns:
            continue
        label = tokens[0]
        cells, trailing = _split_topology_row(tokens[1:], len(columns), label)
        links = {column: cell for column, cell in zip(columns, cells) if column != label}
        if re.fullmatch(r"GPU\d+", label):
            values = dict(zip(trailing_columns, trailing))
            gpus.append(
                {
                    "name": label,
                    "cpus": parse_cpulist(values.get("CPU Affinity", "")),
                    "numa_node": _numa_node(values.get("NUMA Affinity")),
                    "links": links,
                }
            )
        else:
            device = legend.get(label) or (None if re.fullmatch(r"NIC\d+", label) else label)
            nics.append({"name": label, "device": device, "links": links})
    return {"gpus": gpus, "nics": nics}


# --- nvidia-smi --query-gpu=... --format=csv ----------------------------------------------

_NOT_AVAILABLE = re.compile(
    r"^(n/a|\[n/a\]|\[not supported\]|\[unknown error\]|\[insufficient permissions\]"
    r"|\[gpu is lost\]|\[requested functionality has been deprecated\]|)$",
    re.IGNORECASE,
)
_NUMBER_WITH_UNIT = re.compile(r"^(-?(?:0|[1-9]\d*)(?:\.\d+)?)(?:\s*(MiB|W|%|MHz|C|us|ms))?$")
_HEADER_UNIT = re.compile(r"\s*\[[^\]]*\]$")
# Identifiers that look numeric ("1654423001593", "2.1") but must keep their exact text.
_TEXT_FIELDS = ("serial", "uuid", "driver_version", "vbios_version", "pci.", "inforom.")


def _csv_value(field: str, text: str) -> str | int | float | None:
    text = text.strip()
    if _NOT_AVAILABLE.match(text):
        return None
    if field.startswith(_TEXT_FIELDS):
        return text
    match = _NUMBER_WITH_UNIT.match(text)
    if not match:
        return text
    number = match.group(1)
    return float(number) if "." in number else int(number)


def parse_gpu_query_csv(lines: list[str]) -> list[dict[str, str | int | float | None]]:
    """Parse ``nvidia-smi --query-gpu=... --format=csv[,nounits]`` (header line required).

    Keys are the query field names without the unit suffix ("memory.total [MiB]" ->
    "memory.total"); numbers lose their unit and become int/float; "[N/A]"-like
    values become None. Identifiers (uuid, serial, pci.*, versions) stay text.

    Sample return value::

        [{"index": 0, "name": "NVIDIA H200", "pci.bus_id": "00000000:59:00.0",
          "memory.total": 143771, "power.limit": 700.0, "compute_cap": 9.0,
          "mig.mode.current": "Disabled", "ecc.mode.current": "Enabled", ...}]
    """
    rows = list(csv.reader((clean_line(line) for line in lines if line.strip()), skipinitialspace=True))
    if not rows:
        return []
    fields = [_HEADER_UNIT.sub("", name.strip()) for name in rows[0]]
    gpus = []
    for number, row in enumerate(rows[1:], start=1):
        if len(row) != len(fields):
            raise ValueError(
                f"nvidia-smi --query-gpu: row {number}: expected {len(fields)} values, "
                f"found {len(row)}"
            )
        gpus.append({field: _csv_value(field, value) for field, value in zip(fields, row)})
    return gpus


# --- default nvidia-smi table ------------------------------------------------------------

_BUS_ID = re.compile(r"^\s*([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])\b")
_GPU_CELL = re.compile(r"^\s*(\d+)\s+(.*?)\s+(On|Off)\s*$")
_MEMORY_CELL = re.compile(r"(\d+)MiB\s*/\s*(\d+)MiB")
_POWER_CAP = re.compile(r"/\s*(\d+)W\b")


def _table_cells(line: str) -> list[str]:
    """Inner cells of a ``| a | b | c |`` row."""
    return line.strip().strip("|").split("|")


def parse_smi_table(lines: list[str]) -> dict:
    """Parse the default ``nvidia-smi`` table: versions and one entry per GPU.

    Works for the 79-column (<= 470) and the 89-column (>= 525) layouts. ``ecc`` is the
    "Volatile Uncorr. ECC" cell ("Off", or the error count as text) and ``mig_mode`` the
    "MIG M." cell; unavailable values are None.

    Sample return value::

        {"driver_version": "570.158.01", "cuda_version": "12.9",
         "gpus": [{"index": 0, "name": "NVIDIA B200", "persistence": True,
                   "bus_id": "00000000:1B:00.0", "memory_used_mib": 0,
                   "memory_total_mib": 183359, "power_cap_w": 1000, "ecc": "0",
                   "mig_mode": "Disabled"}]}
    """
    cleaned = [clean_line(line) for line in lines]
    result: dict = {"driver_version": None, "cuda_version": None, "gpus": []}
    for line in cleaned:
        if match := re.search(r"Driver Version:\s*(\S+)", line):
            result["driver_version"] = match.group(1)
            cuda = re.search(r"CUDA Version:\s*(\S+)", line)
            result["cuda_version"] = cuda.group(1) if cuda else None
            break
    for position, line in enumerate(cleaned):
        cells = _table_cells(line)
        if len(cells) < 3 or not (gpu := _GPU_CELL.match(cells[0])):
            continue
        if not (bus := _BUS_ID.match(cells[1])):
            continue
        usage = _table_cells(cleaned[position + 1]) if position + 1 < len(cleaned) else []
        modes = _table_cells(cleaned[position + 2]) if position + 2 < len(cleaned) else []
        memory = _MEMORY_CELL.search(usage[1]) if len(usage) > 1 else None
        power_cap = _POWER_CAP.search(usage[0]) if usage else None
        ecc = cells[2].strip()
        mig_mode = modes[2].strip() if len(modes) > 2 else ""
        result["gpus"].append(
            {
                "index": int(gpu.group(1)),
                "name": gpu.group(2),
                "persistence": gpu.group(3) == "On",
                "bus_id": bus.group(1),
                "memory_used_mib": int(memory.group(1)) if memory else None,
                "memory_total_mib": int(memory.group(2)) if memory else None,
                "power_cap_w": int(power_cap.group(1)) if power_cap else None,
                "ecc": None if _NOT_AVAILABLE.match(ecc) else ecc,
                "mig_mode": None if _NOT_AVAILABLE.match(mig_mode) else mig_mode,
            }
        )
    return result


# --- facts --------------------------------------------------------------------------------


def _as_fact_error(parse, lines: list[str]):
    """Report unparseable output as a fact error (host marked failed), not a crash."""
    try:
        return parse(lines)
    except ValueError as error:
        raise FactProcessError(str(error)) from error


class GpuTopology(FactBase[TopologyDict]):
    """GPU/NIC affinity and link matrix from ``nvidia-smi topo -m``; see ``parse_topology``.

    .. code:: python

        {"gpus": [{"name": "GPU0", "cpus": [0, 1, 2], "numa_node": 0,
                   "links": {"GPU1": "NV18", "NIC0": "PIX"}}],
         "nics": [{"name": "NIC0", "device": "mlx5_0", "links": {"GPU0": "PIX"}}]}
    """

    @override
    @staticmethod
    def default() -> TopologyDict:
        return {"gpus": [], "nics": []}

    @override
    def requires_command(self) -> str:
        return "nvidia-smi"

    @override
    def command(self) -> str:
        return GPU_TOPOLOGY_COMMAND

    @override
    def process(self, output: list[str]) -> TopologyDict:
        return _as_fact_error(parse_topology, output)


class GpuInventory(FactBase[list[dict]]):
    """One dict per GPU with the ``GPU_QUERY_FIELDS``; see ``parse_gpu_query_csv``.

    .. code:: python

        [{"index": 0, "name": "NVIDIA H200", "uuid": "GPU-...", "memory.total": 143771,
          "compute_cap": 9.0, "power.limit": 700.0, "mig.mode.current": "Disabled", ...}]
    """

    default = list

    @override
    def requires_command(self) -> str:
        return "nvidia-smi"

    @override
    def command(self) -> str:
        return GPU_INVENTORY_COMMAND

    @override
    def process(self, output: list[str]) -> list[dict]:
        return _as_fact_error(parse_gpu_query_csv, output)


class NvidiaSmi(FactBase[dict]):
    """Driver/CUDA versions and per-GPU summary from plain ``nvidia-smi``.

    .. code:: python

        {"driver_version": "575.51.03", "cuda_version": "12.9",
         "gpus": [{"index": 0, "name": "NVIDIA RTX 6000 Ada Gene...", "persistence": False,
                   "bus_id": "00000000:01:00.0", "memory_used_mib": 2,
                   "memory_total_mib": 49140, "power_cap_w": 300, "ecc": "Off",
                   "mig_mode": None}]}
    """

    @override
    @staticmethod
    def default() -> dict:
        return {"driver_version": None, "cuda_version": None, "gpus": []}

    @override
    def requires_command(self) -> str:
        return "nvidia-smi"

    @override
    def command(self) -> str:
        return NVIDIA_SMI_COMMAND

    @override
    def process(self, output: list[str]) -> dict:
        return parse_smi_table(output)
