"""deepseek_infra.facts.gpu against the real captures in tests/fixtures/hw/{topo,smi}/ (see SOURCES.md)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.exceptions import FactProcessError

from deepseek_infra.cpulist import parse_cpulist
from deepseek_infra.facts.gpu import (
    GPU_QUERY_FIELDS,
    GpuInventory,
    GpuTopology,
    NvidiaSmi,
    parse_gpu_query_csv,
    parse_smi_table,
    parse_topology,
)

HW = Path(__file__).resolve().parents[3] / "fixtures" / "hw"


def capture(relative: str) -> list[str]:
    """Output lines as pyinfra hands them over: newline split off, "\\r" and tabs kept."""
    return (HW / relative).read_bytes().decode().split("\n")


# --- nvidia-smi topo -m -------------------------------------------------------------------

_LINK_RANK = {"PIX": 0, "PXB": 1, "PHB": 2, "NODE": 3, "SYS": 4}


def nearest_nics(topology: dict, gpu: dict) -> list[str]:
    """Devices of the NICs with the best PCIe path from ``gpu`` (SOURCES.md "nearest NIC")."""
    ranks = {nic["device"]: _LINK_RANK[gpu["links"][nic["name"]]] for nic in topology["nics"]}
    return sorted(device for device, rank in ranks.items() if rank == min(ranks.values()))


def mlx(*numbers: int) -> dict[str, str]:
    return {f"NIC{n}": f"mlx5_{n}" for n in numbers}


TWO_SOCKET_224 = ["0-55,112-167"] * 4 + ["56-111,168-223"] * 4
NUMA_0_1 = [0] * 4 + [1] * 4

TOPOLOGY_CASES = [
    pytest.param(
        "puget-wrx90-rtx6000ada-x2.txt",
        {
            "cpus": ["0-23"] * 2,
            "numa": [0, 0],
            "nics": mlx(0, 1),
            "gpu_pairs": "PHB",
            "links": {("NIC0", "NIC1"): "PIX", ("GPU0", "NIC0"): "NODE", ("GPU1", "NIC1"): "NODE"},
        },
        id="puget-spaces",
    ),
    pytest.param(
        "gengwg-dgx1-topo-mp.txt",
        {
            "cpus": ["0-19,40-59"] * 4 + ["20-39,60-79"] * 4,
            "numa": NUMA_0_1,
            "nics": {f"mlx5_{n}": f"mlx5_{n}" for n in range(4)},
            "gpu_pairs": None,
            "links": {("GPU0", "GPU1"): "PIX", ("GPU2", "GPU3"): "PIX", ("GPU4", "GPU5"): "PIX",
                      ("GPU6", "GPU7"): "PIX", ("GPU0", "GPU4"): "SYS"},
            "nearest": [["mlx5_0"]] * 2 + [["mlx5_1"]] * 2 + [["mlx5_2"]] * 2 + [["mlx5_3"]] * 2,
        },
        id="dgx1-topo-mp-device-columns",
    ),
    pytest.param(
        "llmaction-a800-sxm-x8-4nic.txt",
        {
            "cpus": ["0-31,64-95"] * 4 + ["32-63,96-127"] * 4,
            "numa": NUMA_0_1,
            "nics": mlx(0, 1, 2, 3),
            "gpu_pairs": "NV8",
            "links": {("GPU1", "NIC0"): "PIX", ("GPU3", "NIC1"): "PIX", ("GPU7", "NIC2"): "PIX",
                      ("GPU7", "NIC3"): "PIX", ("NIC2", "NIC3"): "PIX", ("GPU0", "NIC0"): "NODE",
                      ("GPU0", "NIC2"): "SYS", ("GPU4", "NIC2"): "NODE"},
        },
        id="a800-crlf-spaces-no-gpu-numa-id",
    ),
    pytest.param(
        "slurmv4-aihub0007-hgx-h100-x8-12nic.txt",
        {
            "cpus": ["0-191"] * 8,
            "numa": [0] * 8,
            "nics": mlx(*range(12)),
            "gpu_pairs": "NV18",
            "links": {("NIC3", "NIC4"): "PIX", ("NIC9", "NIC10"): "PIX"},
            "nearest": [["mlx5_0"], ["mlx5_1"], ["mlx5_2"], ["mlx5_5"], ["mlx5_6"], ["mlx5_7"],
                        ["mlx5_8"], ["mlx5_11"]],
        },
        id="hgx-h100-trailing-empty-cells",
    ),
    pytest.param(
        "distributedai-dgx-h200-x8-12nic.txt",
        {
            "cpus": TWO_SOCKET_224,
            "numa": NUMA_0_1,
            "nics": mlx(*range(12)),
            "gpu_pairs": "NV18",
            "links": {("NIC1", "NIC2"): "PIX", ("NIC7", "NIC8"): "PIX"},
            "nearest": [["mlx5_0"], ["mlx5_3"], ["mlx5_4"], ["mlx5_5"], ["mlx5_6"], ["mlx5_9"],
                        ["mlx5_10"], ["mlx5_11"]],
        },
        id="dgx-h200",
    ),
    pytest.param(
        "nccl-tests-333-b200-x8-16nic-MANGLED.txt",
        {
            "cpus": TWO_SOCKET_224,
            "numa": NUMA_0_1,
            "nics": mlx(*range(16)),
            "gpu_pairs": "NV18",
            "links": {("NIC0", "NIC1"): "PIX", ("NIC0", "NIC2"): "PIX", ("NIC0", "NIC3"): "PIX",
                      ("NIC1", "NIC2"): "PIX", ("NIC1", "NIC3"): "PIX", ("NIC2", "NIC3"): "PIX",
                      ("NIC5", "NIC6"): "PIX", ("NIC11", "NIC12"): "PIX",
                      # the cells written without their tab ("PXBNODE", "SYSSYS", " X NODE")
                      ("GPU2", "NIC8"): "PXB", ("GPU2", "NIC9"): "NODE", ("GPU4", "NIC8"): "SYS",
                      ("GPU4", "NIC9"): "SYS", ("NIC8", "NIC9"): "NODE", ("NIC15", "NIC8"): "SYS"},
            "nearest": [["mlx5_4"], ["mlx5_7"], ["mlx5_8"], ["mlx5_9"], ["mlx5_10"], ["mlx5_13"],
                        ["mlx5_14"], ["mlx5_15"]],
        },
        id="b200-mangled-missing-tabs",
    ),
    pytest.param(
        "go-gpuallocator-17-rtx4090-x8-2nic-nolegend.txt",
        {
            "cpus": TWO_SOCKET_224,
            "numa": NUMA_0_1,
            "nics": {"NIC0": None, "NIC1": None},
            "gpu_pairs": "SYS",
            "links": {("NIC0", "NIC1"): "PIX", ("GPU6", "NIC0"): "PHB", ("GPU6", "NIC1"): "PHB",
                      ("GPU0", "NIC0"): "SYS", ("GPU7", "NIC1"): "SYS"},
        },
        id="rtx4090-no-legend",
    ),
    pytest.param(
        "nvgpuexp-h100-vm-x1-ansi.txt",
        {"cpus": ["0-19"], "numa": [0], "nics": {}, "gpu_pairs": None, "links": {}},
        id="h100-vm-ansi-header",
    ),
]


@pytest.mark.parametrize(("name", "expected"), TOPOLOGY_CASES)
def test_parse_topology_matches_sources(name: str, expected: dict) -> None:
    topology = parse_topology(capture(f"topo/{name}"))
    gpus = topology["gpus"]

    assert [gpu["name"] for gpu in gpus] == [f"GPU{i}" for i in range(len(expected["cpus"]))]
    assert [gpu["cpus"] for gpu in gpus] == [parse_cpulist(c) for c in expected["cpus"]]
    assert [gpu["numa_node"] for gpu in gpus] == expected["numa"]
    assert {nic["name"]: nic["device"] for nic in topology["nics"]} == expected["nics"]

    links = {device["name"]: device["links"] for device in gpus + topology["nics"]}
    for row, row_links in links.items():
        # Every other device is present exactly once, and the matrix is symmetric.
        assert sorted(row_links) == sorted(set(links) - {row}), row
        assert all(links[other][row] == cell for other, cell in row_links.items()), row
    if expected["gpu_pairs"]:
        assert {links[a["name"]][b["name"]] for a in gpus for b in gpus if a is not b} == {
            expected["gpu_pairs"]
        }
    for (first, second), cell in expected["links"].items():
        assert links[first][second] == cell, (first, second)
    if "nearest" in expected:
        assert [nearest_nics(topology, gpu) for gpu in gpus] == expected["nearest"]


def test_parse_topology_without_output_is_empty() -> None:
    assert parse_topology([]) == {"gpus": [], "nics": []}
    assert parse_topology(["No devices were found", ""]) == GpuTopology.default()


def test_parse_topology_old_driver_without_numa_column() -> None:
    lines = [
        "\tGPU0\tGPU1\tmlx5_0\tCPU Affinity",
        "GPU0\t X \tSOC\tPHB\t0-9",
        "GPU1\tSOC\t X \tSOC\t10-19",
        "mlx5_0\tPHB\tSOC\t X \t",
    ]
    topology = parse_topology(lines)
    assert topology["gpus"][1] == {
        "name": "GPU1",
        "cpus": list(range(10, 20)),
        "numa_node": None,
        "links": {"GPU0": "SOC", "mlx5_0": "SOC"},
    }
    assert topology["nics"] == [
        {"name": "mlx5_0", "device": "mlx5_0", "links": {"GPU0": "PHB", "GPU1": "SOC"}}
    ]


def test_parse_topology_not_available_affinity() -> None:
    lines = ["\tGPU0\tCPU Affinity\tNUMA Affinity\tGPU NUMA ID", "GPU0\t X \tN/A\tN/A\t\tN/A"]
    assert parse_topology(lines)["gpus"][0]["cpus"] == []
    assert parse_topology(lines)["gpus"][0]["numa_node"] is None


def test_parse_topology_rejects_unknown_cell() -> None:
    lines = ["\tGPU0\tGPU1\tCPU Affinity", "GPU0\t X \tBOGUS\t0-3", "GPU1\tSYS\t X \t0-3"]
    with pytest.raises(ValueError, match=r"row GPU0: unknown cell 'BOGUS'"):
        parse_topology(lines)
    with pytest.raises(FactProcessError, match="BOGUS"):
        GpuTopology().process(lines)


def test_parse_topology_rejects_truncated_row() -> None:
    lines = ["\tGPU0\tGPU1\tNIC0", "GPU0\t X \tNV18"]
    with pytest.raises(ValueError, match=r"row GPU0: expected 3 cells, found 2"):
        parse_topology(lines)


# --- nvidia-smi --query-gpu CSV -----------------------------------------------------------


def test_parse_query_csv_with_units_in_header() -> None:
    gpus = parse_gpu_query_csv(capture("smi/distributedai-h200-x8-query-csv.txt"))
    expected = {"name": "NVIDIA H200", "memory.total": 143771, "pcie.link.gen.max": 5,
                "pcie.link.width.max": 16}
    assert gpus == [expected] * 8


def test_parse_query_csv_wide_capture() -> None:
    (gpu,) = parse_gpu_query_csv(capture("smi/nvgpuexp-h100-vm-x1-query-csv-wide.txt"))
    assert len(gpu) == 212
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["pci.bus_id"] == "00000000:00:09.0"
    assert gpu["index"] == 0
    assert gpu["count"] == 1
    assert gpu["driver_version"] == "590.48.01"
    assert gpu["compute_cap"] == 9.0
    assert gpu["memory.total"] == 81559
    assert gpu["power.limit"] == 700.0
    assert gpu["utilization.gpu"] == 0
    assert gpu["temperature.gpu"] == 41
    assert gpu["mig.mode.current"] == "Disabled"
    assert gpu["ecc.mode.current"] == "Enabled"
    assert gpu["persistence_mode"] == "Enabled"
    # Masked identifiers stay text, leading zeros and all.
    assert gpu["serial"] == "0000000000000"
    assert gpu["uuid"] == "GPU-00000000-0000-0000-0000-000000000000"
    assert gpu["pci.domain"] == "0x0000"
    assert gpu["inforom.oem"] == "2.1"
    # "[N/A]", "N/A", "[Requested functionality has been deprecated]" and "" are all None.
    assert gpu["fan.speed"] is None
    assert gpu["fabric.health.summary"] is None
    assert gpu["display_mode"] is None
    assert gpu["platform.chassis_serial_number"] is None
    assert gpu["clocks_event_reasons.sw_power_cap"] == "Not Active"


def test_gpu_query_fields_are_valid_query_names() -> None:
    """Every field the collection asks for is in a real nvidia-smi 590 ``--query-gpu`` header."""
    (gpu,) = parse_gpu_query_csv(capture("smi/nvgpuexp-h100-vm-x1-query-csv-wide.txt"))
    assert set(GPU_QUERY_FIELDS) <= set(gpu)


def test_parse_query_csv_nounits_and_crlf() -> None:
    lines = [
        "index, name, memory.total [MiB], power.limit [W], ecc.mode.current\r",
        "0, NVIDIA H200, 143771, 700.00, [Not Supported]\r",
        "1, NVIDIA H200, 143771, 700.00, Enabled\r",
        "",
    ]
    assert parse_gpu_query_csv(lines) == [
        {"index": 0, "name": "NVIDIA H200", "memory.total": 143771, "power.limit": 700.0,
         "ecc.mode.current": None},
        {"index": 1, "name": "NVIDIA H200", "memory.total": 143771, "power.limit": 700.0,
         "ecc.mode.current": "Enabled"},
    ]


def test_parse_query_csv_rejects_short_row() -> None:
    lines = ["index, name, uuid", "0, NVIDIA H200"]
    with pytest.raises(ValueError, match="row 1: expected 3 values, found 2"):
        parse_gpu_query_csv(lines)
    with pytest.raises(FactProcessError):
        GpuInventory().process(lines)


def test_parse_query_csv_empty() -> None:
    assert parse_gpu_query_csv([]) == []
    assert parse_gpu_query_csv(["index, name"]) == []


# --- default nvidia-smi table -------------------------------------------------------------

SMI_TABLE_CASES = [
    # file, driver, CUDA, bus ids ("xx" of 00000000:xx:00.0), memory total MiB, same on all GPUs
    ("asus-esc8000a-e12-rtx6000ada-x4.txt", "575.51.03", "12.9", "01 41 C1 E1", 49140,
     {"name": "NVIDIA RTX 6000 Ada Gene...", "persistence": False, "ecc": "Off",
      "memory_used_mib": 2}),
    ("puget-wrx90-rtx6000ada-x2.txt", "575.51.03", "12.9", "C1 C2", 49140,
     {"name": "NVIDIA RTX 6000 Ada Gene...", "memory_used_mib": 4}),
    ("thamada-h100-sxm5-x8.txt", "565.57.01", "12.7", "18 2A 3A 5D 9A AB BA DB", 81559,
     {"name": "NVIDIA H100 80GB HBM3", "persistence": True, "power_cap_w": 700,
      "mig_mode": "Disabled"}),
    ("thamada-a100-sxm4-80gb-x4.txt", "555.42.02", "12.5", "68 9E C2 D4", 81920,
     {"name": "NVIDIA A100-SXM4-80GB"}),
    ("thamada-h100-nvl-x2.txt", "550.54.14", "12.4", "AD AE", 95830, {"name": "NVIDIA H100 NVL"}),
    ("thamada-l40s-x1.txt", "550.127.05", "12.4", "A1", 46068, {"name": "NVIDIA L40S"}),
    ("thamada-rtx4090-x8.txt", "550.127.05", "12.4", "01 25 41 61 81 A1 C1 E1", 24564,
     {"name": "NVIDIA GeForce RTX 4090", "persistence": True}),
    ("thamada-gls-h200-x1.txt", "550.90.12", "12.4", "03", 143771, {"name": "NVIDIA H200"}),
    ("thamada-gls-gh200-x1.txt", "550.127.05", "12.4", "DD", 97871,
     {"name": "NVIDIA GH200 480GB"}),
    ("nccl-tests-333-b200-x8.txt", "570.158.01", "12.9", "1B 43 52 61 9D C3 D1 DF", 183359,
     {"name": "NVIDIA B200", "persistence": True, "power_cap_w": 1000}),
    ("p5en48xl-h200-x8-busy.txt", "580.95.05", "13.0", "59 5A 72 73 8B 8C A4 A5", 143771,
     {"name": "NVIDIA H200"}),
    ("nvgpuexp-h100-vm-x1.txt", "590.48.01", "13.1", "00:09", 81559,
     {"name": "NVIDIA H100 80GB HBM3", "memory_used_mib": 0}),
    ("hpe-dl380a-g11-h100pcie-x2.txt", "555.42.02", "12.5", "C2 D5", 81559,
     {"name": "NVIDIA H100 PCIe", "persistence": False, "power_cap_w": 350}),
    ("gengwg-quadro-rtx8000-x10-drv470.txt", "470.63.01", "11.4",
     "12 13 14 48 49 89 8A C0 C1 C2", 48601,
     {"name": "Quadro RTX 8000", "persistence": True, "ecc": "Off"}),
]


def bus_ids(short: str) -> list[str]:
    """"18 2A" -> ["00000000:18:00.0", "00000000:2A:00.0"]; "00:09" -> "00000000:00:09.0"."""
    return [f"00000000:{item}.0" if ":" in item else f"00000000:{item}:00.0"
            for item in short.split()]


@pytest.mark.parametrize(
    ("name", "driver", "cuda", "buses", "memory_total", "uniform"),
    SMI_TABLE_CASES,
    ids=[case[0].removesuffix(".txt") for case in SMI_TABLE_CASES],
)
def test_parse_smi_table_matches_sources(
    name: str, driver: str, cuda: str, buses: str, memory_total: int, uniform: dict
) -> None:
    table = parse_smi_table(capture(f"smi/{name}"))
    assert table["driver_version"] == driver
    assert table["cuda_version"] == cuda
    gpus = table["gpus"]
    assert [gpu["index"] for gpu in gpus] == list(range(len(bus_ids(buses))))
    assert [gpu["bus_id"] for gpu in gpus] == bus_ids(buses)
    assert {gpu["memory_total_mib"] for gpu in gpus} == {memory_total}
    for field, value in uniform.items():
        assert {gpu[field] for gpu in gpus} == {value}, field


def test_parse_smi_table_memory_in_use_and_process_rows_ignored() -> None:
    gpus = parse_smi_table(capture("smi/p5en48xl-h200-x8-busy.txt"))["gpus"]
    assert [gpu["memory_used_mib"] for gpu in gpus] == [
        87321, 97399, 90717, 90237, 135846, 135852, 136106, 135872
    ]


def test_parse_smi_table_new_driver_row_is_complete() -> None:
    (gpu,) = parse_smi_table(capture("smi/nvgpuexp-h100-vm-x1.txt"))["gpus"]
    assert gpu == {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "persistence": True,
        "bus_id": "00000000:00:09.0",
        "memory_used_mib": 0,
        "memory_total_mib": 81559,
        "power_cap_w": 700,
        "ecc": "0",
        "mig_mode": "Disabled",
    }


def test_parse_smi_table_power_not_available() -> None:
    lines = [
        "| NVIDIA-SMI 535.104.05             Driver Version: 535.104.05   CUDA Version: 12.2     |",
        "|   0  NVIDIA H100 80GB HBM3          On  | 00000000:18:00.0 Off |                    0 |",
        "| N/A   30C    P0             N/A /  N/A  |      1MiB /  81559MiB |      0%      Default |",
        "|                                         |                      |                  N/A |",
    ]
    (gpu,) = parse_smi_table(lines)["gpus"]
    assert gpu["power_cap_w"] is None
    assert gpu["mig_mode"] is None
    assert gpu["memory_total_mib"] == 81559


def test_parse_smi_table_driver_failure_message() -> None:
    lines = ["NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."]
    assert parse_smi_table(lines) == NvidiaSmi.default()


# --- facts --------------------------------------------------------------------------------

FACT_CASES = [
    (GpuTopology, parse_topology, "topo/slurmv4-aihub0007-hgx-h100-x8-12nic.txt"),
    (GpuInventory, parse_gpu_query_csv, "smi/nvgpuexp-h100-vm-x1-query-csv-wide.txt"),
    (NvidiaSmi, parse_smi_table, "smi/thamada-h100-sxm5-x8.txt"),
]


@pytest.mark.parametrize(("fact", "parse", "fixture"), FACT_CASES)
def test_fact_process_is_the_parse_function(fact, parse, fixture: str) -> None:
    lines = capture(fixture)
    assert fact().process(lines) == parse(lines)


def test_fact_commands() -> None:
    assert GpuTopology().command() == "nvidia-smi topo -m"
    assert NvidiaSmi().command() == "nvidia-smi"
    assert GpuInventory().command() == (
        "nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,memory.total,memory.used,"
        "compute_cap,driver_version,persistence_mode,power.limit,ecc.mode.current,"
        "mig.mode.current,temperature.gpu,utilization.gpu --format=csv"
    )
    for fact in (GpuTopology, GpuInventory, NvidiaSmi):
        assert fact().requires_command() == "nvidia-smi"


def _local_fact(fact, path: str):
    """Collect ``fact`` from this machine through pyinfra's @local connector with ``PATH``."""
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    connect_all(state)
    host = inventory.get_host("@local")
    return host.get_fact(fact, _env={"PATH": path}), state.failed_hosts


def test_facts_through_pyinfra_with_a_fake_nvidia_smi(tmp_path: Path) -> None:
    """The fake binary answers only the documented arguments, so this checks command() too."""
    script = tmp_path / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f'  "topo -m") cat "{HW}/topo/distributedai-dgx-h200-x8-12nic.txt" ;;\n'
        f'  "--query-gpu={",".join(GPU_QUERY_FIELDS)} --format=csv")'
        f' cat "{HW}/smi/distributedai-h200-x8-query-csv.txt" ;;\n'
        f'  "") cat "{HW}/smi/thamada-h100-sxm5-x8.txt" ;;\n'
        '  *) echo "unexpected arguments: $*" >&2; exit 2 ;;\n'
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    path = f"{tmp_path}:/usr/bin:/bin"

    topology, failed = _local_fact(GpuTopology, path)
    assert not failed
    assert [nic["device"] for nic in topology["nics"]] == [f"mlx5_{n}" for n in range(12)]
    inventory, failed = _local_fact(GpuInventory, path)
    assert not failed
    assert [gpu["memory.total"] for gpu in inventory] == [143771] * 8
    table, failed = _local_fact(NvidiaSmi, path)
    assert not failed
    assert table["driver_version"] == "565.57.01"


@pytest.mark.parametrize("fact", [GpuTopology, GpuInventory, NvidiaSmi])
def test_missing_nvidia_smi_gives_default(fact, tmp_path: Path) -> None:
    # An empty directory first, then only /nonexistent: no nvidia-smi, even on a GPU host.
    value, failed = _local_fact(fact, f"{tmp_path}:/nonexistent")
    assert value == fact.default()
    assert not failed
