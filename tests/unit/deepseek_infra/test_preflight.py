"""Preflight verdicts on machines built from real captures: the verdict a person reading
the capture would give for the configured model."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepseek_infra.catalog import get_model
from deepseek_infra.facts.cpu import parse_lscpu
from deepseek_infra.facts.gpu import parse_gpu_query_csv
from deepseek_infra.facts.infiniband import parse_ibstat
from deepseek_infra.facts.numa import parse_numactl_hardware
from deepseek_infra.hardware import Hardware
from deepseek_infra.preflight import Requirements, reports_to_json
from deepseek_infra.preflight import evaluate as evaluate_hardware

HW = Path(__file__).resolve().parents[2] / "fixtures" / "hw"


def lines(relative: str) -> list[str]:
    return (HW / relative).read_text().splitlines()


def pci_gpus(device_id: str, count: int) -> list[dict]:
    return [{"slot": f"0000:{0x18 + i:02x}:00.0", "class_id": "0302", "class_name": "3D controller",
             "vendor_id": "10de", "device_id": device_id, "description": "NVIDIA Corporation"} for i in range(count)]


NVME_30TB = {"existing_path": "/var/lib", "device": "/dev/nvme0n1p1", "size_bytes": 30_000_000_000_000,
             "free_bytes": 29_000_000_000_000, "mountpoint": "/"}
ETH_100G = {"eth0": {"state": "up", "speed_mbps": 100000, "mtu": 1500, "mac": "x", "type": "ether"}}


def dgx_h200() -> dict:
    """8x H200 (nvidia-smi CSV capture), 2x Xeon 8488C, 2 TB RAM, the 12-CA ibstat capture."""
    return {
        "gpu_inventory": parse_gpu_query_csv(lines("smi/distributedai-h200-x8-query-csv.txt")),
        "nvidia_pci": pci_gpus("2335", 8),
        "cpu": parse_lscpu(lines("lscpu/p5en48xl-h200x8-xeon8488c-kvm.txt")),
        "numa": parse_numactl_hardware(lines("numactl/p5en48xl-h200x8.txt")),
        "meminfo": {"mem_total_mb": 2_047_941},
        "ibstat": parse_ibstat(lines("ib/gpud-h100-node-ibstat-12ca-some-down.txt")),
        "network": ETH_100G,
    }


def hgx_h100_without_driver() -> dict:
    return {**dgx_h200(), "gpu_inventory": [], "nvidia_pci": pci_gpus("2330", 8)}


def workstation_rtx6000ada() -> dict:
    """Puget WRX90: 2x RTX 6000 Ada (no driver yet), 24 cores, 128 GB."""
    return {
        "gpu_inventory": [],
        "nvidia_pci": pci_gpus("26b1", 2),
        "cpu": {"cpus": 24, "sockets": 1, "cores_per_socket": 24, "threads_per_core": 1},
        "numa": parse_numactl_hardware(lines("numactl/puget-wrx90-tr7965wx-rtx6000ada-x2.txt")),
        "meminfo": {"mem_total_mb": 128295},
        "ibstat": [],
        "network": ETH_100G,
    }


def evaluate(host: str, sections: dict, *rest):
    """Preflight of a host whose sections are what the facts' parsers return."""
    return evaluate_hardware(host, Hardware.from_sections(sections), *rest)


def verdicts(report) -> dict[str, str]:
    return {check.name: check.verdict for check in report.checks}


def test_deepseek_v3_fits_one_h200_node():
    report = evaluate("dgx", dgx_h200(), NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements())
    assert report.passed, report.render_table()
    assert report.gpus.source == "driver" and report.gpus.memory_mib == 143771
    assert report.gpus.compute_capability == 9.0  # not in the CSV: from the product table
    assert report.plan.tensor_parallel_size == 8 and report.plan.pipeline_parallel_size == 1


def test_deepseek_v3_does_not_fit_one_h100_node_but_two_with_ib():
    one = evaluate("hgx", hgx_h100_without_driver(), NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements())
    assert not one.passed
    assert [check.name for check in one.failures] == ["serving plan"]
    assert "16 GPUs" in one.failures[0].detail
    assert verdicts(one)["nvidia driver"] == "warn"  # from lspci: the stack role installs it

    two = evaluate("hgx", hgx_h100_without_driver(), NVME_30TB, get_model("deepseek-v3"), "vllm",
                   Requirements(nodes=2))
    assert two.passed, two.render_table()
    assert verdicts(two)["infiniband"] == "pass"  # 400 Gb/s NDR ports are Active in the capture


def test_multi_node_without_infiniband_fails():
    hardware = {**hgx_h100_without_driver(), "ibstat": []}
    report = evaluate("hgx", hardware, NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements(nodes=2))
    assert [check.name for check in report.failures] == ["infiniband"]


def test_workstation_fails_the_brief_bar_for_v3():
    report = evaluate("ws", workstation_rtx6000ada(), NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements())
    found = verdicts(report)
    assert found["gpu memory"] == "pass"  # 48 GB >= 40 GB
    assert found["serving plan"] == "fail"
    assert found["cpu cores"] == "fail"  # 24 < 32
    assert found["compute capability"] == "pass"  # Ada 8.9 runs FP8


def test_workstation_serves_a_small_distill_with_lab_thresholds():
    report = evaluate("ws", workstation_rtx6000ada(), NVME_30TB, get_model("r1-distill-qwen-1.5b"),
                      "transformers", Requirements(min_cpu_cores=16))
    assert report.passed, report.render_table()


def test_small_gpu_fails_memory_bar():
    hardware = {**workstation_rtx6000ada(), "nvidia_pci": pci_gpus("2684", 8)}  # RTX 4090 24 GB
    report = evaluate("g", hardware, NVME_30TB, get_model("r1-distill-qwen-7b"), "vllm", Requirements())
    assert verdicts(report)["gpu memory"] == "fail"


def test_storage_must_hold_kept_releases_plus_one():
    small_disk = {**NVME_30TB, "size_bytes": 1_000_000_000_000}
    report = evaluate("dgx", dgx_h200(), small_disk, get_model("deepseek-v3"), "vllm", Requirements())
    assert [check.name for check in report.failures] == ["weights storage"]
    assert "2 kept + 1 new" in report.failures[0].needed


def test_no_gpu_blocks_vllm_but_not_transformers():
    hardware = {**workstation_rtx6000ada(), "nvidia_pci": []}
    blocked = evaluate("cpu", hardware, NVME_30TB, get_model("r1-distill-qwen-1.5b"), "vllm",
                       Requirements(min_cpu_cores=8))
    assert [check.name for check in blocked.failures] == ["gpus"]
    allowed = evaluate("cpu", hardware, NVME_30TB, get_model("r1-distill-qwen-1.5b"), "transformers",
                       Requirements(min_cpu_cores=8))
    assert allowed.passed and verdicts(allowed)["gpus"] == "warn"


def test_unknown_data_gives_warnings_not_exceptions():
    report = evaluate("bare", {}, None, get_model("r1-distill-qwen-1.5b"), "transformers", Requirements())
    assert report.passed
    assert set(verdicts(report).values()) == {"warn"}


def test_report_json_and_table_name_the_host_and_each_requirement():
    report = evaluate("hgx-1", hgx_h100_without_driver(), NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements())
    table = report.render_table()
    assert table.startswith("preflight hgx-1: deepseek-ai/DeepSeek-V3 on vllm: FAIL")
    assert "serving plan" in table and "FAIL" in table
    document = reports_to_json([report])
    assert '"passed": false' in document and '"host": "hgx-1"' in document
    # A host of a multi-node replica: the table and the report name the replica it stops.
    from dataclasses import replace

    of_replica = replace(report, replica="replica 'r1' (hgx-1 head, hgx-2)")
    assert of_replica.render_table().startswith("preflight hgx-1 (replica 'r1' (hgx-1 head, hgx-2)): deepseek-ai/DeepSeek-V3")
    assert '"replica": "replica \'r1\' (hgx-1 head, hgx-2)"' in reports_to_json([of_replica])


@pytest.mark.parametrize("device_id", ["1af1", "22a3"])  # NVSwitch bridges of HGX boards are not GPUs
def test_nvswitch_functions_are_not_counted_as_gpus(device_id):
    switch = {"slot": "0000:05:00.0", "class_id": "0680", "class_name": "Bridge", "vendor_id": "10de",
              "device_id": device_id, "description": "NVIDIA Corporation NVSwitch"}
    hardware = {**hgx_h100_without_driver(), "nvidia_pci": pci_gpus("2330", 8) + [switch]}
    report = evaluate("hgx", hardware, NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements(nodes=2))
    assert report.gpus.count == 8


# The kernel's RDMA sysfs (drivers/infiniband/core/sysfs.c): state_show "%d: %s" (DOWN, INIT,
# ARMED, ACTIVE), phys_state_show "%u: %s" (Polling, LinkUp, ...), rate_show "%d%s Gb/sec (%dX%s)".
SYSFS_STATE = {"Down": "1: DOWN", "Initializing": "2: INIT", "Armed": "3: ARMED", "Active": "4: ACTIVE"}
SYSFS_PHYS = {"Sleep": "1: Sleep", "Polling": "2: Polling", "Disabled": "3: Disabled", "LinkUp": "5: LinkUp"}
SYSFS_SPEED = {400: "4X NDR", 200: "4X HDR", 100: "4X EDR", 40: "4X QDR", 25: "1X EDR", 10: "4X"}


def sysfs_lines(ports: list[dict]) -> list[str]:
    """What IB_SYSFS_COMMAND prints for these ports, in the kernel's own formats."""
    return ["\t".join([p["ca"], str(p["port"]), SYSFS_STATE[p["state"]], SYSFS_PHYS[p["physical_state"]],
                       f"{p['rate_gbps']} Gb/sec ({SYSFS_SPEED[p['rate_gbps']]})", p["link_layer"],
                       p["ca_type"], p["firmware"]]) for p in ports]


def test_sysfs_reads_the_same_ports_as_ibstat():
    from deepseek_infra.facts.infiniband import parse_ib_sysfs

    ibstat = parse_ibstat(lines("ib/gpud-h100-node-ibstat-12ca-some-down.txt"))
    from_sysfs = parse_ib_sysfs(list(reversed(sysfs_lines(ibstat))))  # glob order is the kernel's
    assert from_sysfs == sorted(ibstat, key=lambda p: (p["ca"], p["port"]))
    assert parse_ib_sysfs(["mlx4_0\t1\t4: ACTIVE\t5: LinkUp\t2.5 Gb/sec (1X)\tInfiniBand\tMT4099\t2.10.0"])[0][
        "rate_gbps"] == 2.5
    with pytest.raises(ValueError, match="not a sysfs RDMA port line"):
        parse_ib_sysfs(["mlx5_0 1 ACTIVE"])


def test_a_fresh_node_passes_the_fabric_check_from_sysfs_before_ibstat_is_installed():
    ports = parse_ibstat(lines("ib/gpud-h100-node-ibstat-12ca-some-down.txt"))
    fresh = {**hgx_h100_without_driver(), "ibstat": [], "unavailable": {"ibstat": "ibstat not found"},
             "ib_sysfs": ports}
    report = evaluate("hgx-1", fresh, NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements(nodes=2))
    assert report.passed, report.render_table()
    (fabric,) = [check for check in report.checks if check.name == "infiniband"]
    assert fabric.found.endswith("best 400 Gb/s (sysfs)") and "of 12 port(s) active" in fabric.found, fabric


def test_the_kernels_view_wins_over_ibstat():
    ports = parse_ibstat(lines("ib/gpud-h100-node-ibstat-12ca-some-down.txt"))
    down = [{**port, "state": "Down", "physical_state": "Polling"} for port in ports]
    hardware = {**hgx_h100_without_driver(), "ib_sysfs": down}  # ibstat (stale) says Active
    report = evaluate("hgx-1", hardware, NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements(nodes=2))
    assert [check.name for check in report.failures] == ["infiniband"]
    assert report.failures[0].found.startswith("0 of 12 port(s) active"), report.failures[0]


def test_no_rdma_device_says_so_instead_of_blaming_the_fabric():
    fresh = {**hgx_h100_without_driver(), "ibstat": [], "unavailable": {"ibstat": "ibstat not found"}}
    report = evaluate("hgx-1", fresh, NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements(nodes=2))
    assert [check.found for check in report.failures] == [
        "no RDMA device in /sys/class/infiniband (HCA driver not loaded?)"]
