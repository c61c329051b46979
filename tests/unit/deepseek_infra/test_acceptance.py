"""Acceptance gate parsing and thresholds, on real outputs of dcgmi, nccl-tests and perftest.

The fixtures in tests/fixtures/acceptance/ are the tools' output as published (indentation
of the Markdown they were quoted in removed), from:
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deepseek_infra import acceptance as acc
from deepseek_infra.hardware import IbPort, NetInterface

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "acceptance"
SOURCES = {
    # DCGM 3.3.9, 2 GPUs, level 3 with the GPU tests skipped (the table printed twice by srun):
    # https://github.com/gnosia93/slurm-on-aws (lesson on GPU checks, `sudo dcgmi diag -r 3`)
    "dcgmi-diag-r3-dcgm339-2gpu-pass.txt": "github.com/gnosia93/slurm-on-aws lesson",
    # DCGM 3, level 4, Persistence Mode failing with its wrapped Error row:
    # public page "Memtest for NVIDIA GPUs" (permalink /gpu-memtest), `dcgmi diag --gpuList 0 -r 4`
    "dcgmi-diag-r4-dcgm3-persistence-fail.txt": "page /gpu-memtest",
    # DCGM 3, `-r 2` on a faulty node (excerpt): GPU 0 failing GPU Memory, Warning row:
    # https://github.com/stas00/ml-engineering/blob/master/compute/accelerator/nvidia/debug.md
    "dcgmi-diag-r2-dcgm3-gpu-memory-fail-excerpt.txt": "stas00/ml-engineering debug.md",
    # DCGM 4.0.0, 4 GPUs, level 3: NVIDIA's DCGM user guide, feature overview (diagnostics):
    # https://docs.nvidia.com/datacenter/dcgm/latest/user-guide/feature-overview.html
    "dcgmi-diag-r3-dcgm400-4gpu-pass.txt": "docs.nvidia.com DCGM user guide",
    # 8x H100 80GB HBM3 in one node (NVSwitch), `all_reduce_perf -b 256M -e 2G -f 2 -g 8`:
    # public README "Single Node NCCL Test" (driver 550.90.07, CUDA 12.4)
    "all_reduce_perf-h100x8-1node.txt": "README Single Node NCCL Test",
    # 2 nodes x 8 H100 (GCP A3 Mega), mpirun -np 16, 8 B .. 8 GB:
    # https://github.com/lessizzmore/create-a3mega-ztan-fork/blob/main/ztan-NCCL-test-result
    "all_reduce_perf-h100-2node-16gpu-mpirun.txt": "lessizzmore/create-a3mega-ztan-fork",
    # ib_write_bw -b -a --report_gbits between two NICs of one node (localhost):
    # ROCm docs, "Multi-node network configuration for AMD Instinct accelerators"
    "ib_write_bw-bidirectional-loopback-gbits.txt": "ROCm multi-node-config",
    # ib_write_bw --report_gbits client, one size: compliance doc "ib-bw: Test InfiniBand bandwidth"
    "ib_write_bw-client-65536-gbits.txt": "ib-bw compliance doc",
    # ib_write_bw default units (MB/sec), 64 KiB: https://github.com/alogfans/RDMA101 (chapter 1.2)
    "ib_write_bw-client-65536-mbytes.txt": "alogfans/RDMA101",
}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_every_fixture_has_a_source():
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(SOURCES)


# --- dcgmi ----------------------------------------------------------------------------------

def test_dcgm3_pass_reads_tests_and_metadata_from_the_first_table():
    report = acc.parse_dcgmi_diag(fixture("dcgmi-diag-r3-dcgm339-2gpu-pass.txt"))
    assert report.metadata["DCGM Version"] == "3.3.9"
    assert len(report.tests) == 15, [t.name for t in report.tests]  # second copy of the table ignored
    assert {t.category for t in report.tests} == {"Deployment", "Integration", "Hardware", "Stress"}
    assert report.failed == ()
    verdict = acc.dcgm_verdict(3, fixture("dcgmi-diag-r3-dcgm339-2gpu-pass.txt"), True)
    assert (verdict.passed, verdict.measured, verdict.threshold) == (True, 0.0, 0)


def test_dcgm3_failing_test_carries_its_unwrapped_error():
    verdict = acc.dcgm_verdict(4, fixture("dcgmi-diag-r4-dcgm3-persistence-fail.txt"), True)
    assert not verdict.passed and verdict.measured == 1.0 and verdict.name == "dcgm_diag_r4"
    assert verdict.detail.startswith("Deployment/Persistence Mode: Fail [Persistence mode for GPU 0 is currently "
                                     "disabled. The DCGM diagnostic requires peristence mode to be enabled.")


def test_dcgm3_per_gpu_failure_in_a_continuation_row():
    text = ("+-----  Hardware  ----------+------------------------------------------------+\n"
            + fixture("dcgmi-diag-r2-dcgm3-gpu-memory-fail-excerpt.txt"))
    (test,) = acc.parse_dcgmi_diag(text).tests
    assert test.results == ("Pass - GPUs: 1, 2, 3, 4, 5, 6, 7", "Fail - GPU: 0") and test.failed
    assert test.messages[0].startswith("GPU 0 Thermal violations totaling 13.3 seconds started at 9.7 seconds")


def test_dcgm4_format():
    report = acc.parse_dcgmi_diag(fixture("dcgmi-diag-r3-dcgm400-4gpu-pass.txt"))
    assert [t.name for t in report.tests] == ["software", "memory", "diagnostic", "pcie", "memory_bandwidth",
                                              "targeted_stress", "targeted_power"]
    assert report.tests[1].results == ("Pass", "GPU0: Pass", "GPU1: Pass", "GPU2: Pass", "GPU3: Pass")
    failing = fixture("dcgmi-diag-r3-dcgm400-4gpu-pass.txt").replace(
        "| memory_bandwidth          | Pass  ", "| memory_bandwidth          | Fail  ").replace(
        "|                           | GPU3: Pass                                     |\n| targeted_stress",
        "|                           | GPU3: Fail                                     |\n| targeted_stress")
    verdict = acc.dcgm_verdict(3, failing, False)
    assert not verdict.passed and "Stress/memory_bandwidth: Fail, GPU3: Fail" in verdict.detail


def test_dcgm_error_before_any_test_fails():
    text = ("|-----  Deployment  --------+------------------------------------------------|\n"
            "| Error                     | GPU 3 has uncorrectable memory errors and row  |\n"
            "|                           |  remappings are pending                        |\n")
    verdict = acc.dcgm_verdict(2, "| Diagnostic | Result |\n" + text + "| Denylist | Pass |\n", False)
    assert not verdict.passed and "GPU 3 has uncorrectable memory errors and row remappings are pending" in verdict.detail


def test_dcgm_without_table_fails_with_the_output():
    verdict = acc.dcgm_verdict(2, "Error: unable to establish a connection to the specified host: localhost\n", False)
    assert not verdict.passed and verdict.measured is None and "unable to establish" in verdict.detail


# --- all_reduce_perf ------------------------------------------------------------------------

def test_all_reduce_single_node_h100():
    report = acc.parse_all_reduce_perf(fixture("all_reduce_perf-h100x8-1node.txt"))
    assert [r.size_bytes for r in report.rows] == [268435456, 536870912, 1073741824, 2147483648]
    assert report.largest.busbw_out_of_place == 470.73 and report.avg_busbw == 448.212 and report.out_of_bounds == 0
    verdict = acc.allreduce_verdict(fixture("all_reduce_perf-h100x8-1node.txt"), 360.0, "NV18")
    assert verdict.passed and verdict.measured == 470.73 and verdict.unit == "GB/s"


def test_all_reduce_two_nodes_and_a_low_figure_fails():
    text = fixture("all_reduce_perf-h100-2node-16gpu-mpirun.txt")
    report = acc.parse_all_reduce_perf(text)
    assert len(report.rows) == 31 and report.largest.size_bytes == 8589934592 and report.avg_busbw == 70.742
    verdict = acc.allreduce_verdict(text, 360.0, "NV18")
    assert not verdict.passed and (verdict.measured, verdict.threshold) == (338.82, 360.0)
    prefixed = "".join(f"[1,0]<stdout>:{line}\n" for line in text.splitlines())
    assert acc.parse_all_reduce_perf(prefixed) == report


def test_all_reduce_wrong_values_fail_and_no_rows_fail():
    text = fixture("all_reduce_perf-h100x8-1node.txt").replace("470.73      0", "470.73      3")
    assert not acc.allreduce_verdict(text, 100.0, "x").passed
    verdict = acc.allreduce_verdict("all_reduce_perf: Test CUDA failure common.cu:891 'no CUDA-capable device'\n", 1, "x")
    assert not verdict.passed and verdict.measured is None and "no CUDA-capable device" in verdict.detail


# --- ib_write_bw ----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "gbps"), [
    ("ib_write_bw-bidirectional-loopback-gbits.txt", 204.59),
    ("ib_write_bw-client-65536-gbits.txt", 51.04),
    ("ib_write_bw-client-65536-mbytes.txt", 44276.64 * 2**20 * 8 / 1e9),  # 371.4 Gb/s
])
def test_ib_write_bw_units(name, gbps):
    assert acc.parse_ib_write_bw(fixture(name)) == pytest.approx(gbps)


def port(ca, rate=400, state="Active", layer="InfiniBand"):
    return IbPort(ca=ca, port=1, state=state, rate_gbps=rate, link_layer=layer)


def test_hca_pairs_only_active_infiniband():
    ports = [port("mlx5_0"), port("mlx5_1", 200), port("mlx5_2"), port("mlx5_3", state="Down"),
             port("mlx5_4", 100, layer="Ethernet"), port("mlx5_5")]
    pairs = acc.hca_pairs(ports)
    assert [(p.server, p.client, p.rate_gbps) for p in pairs] == [
        ("mlx5_0", "mlx5_1", 200.0), ("mlx5_2", "mlx5_5", 400.0)]
    assert acc.hca_pairs([port("mlx5_0"), port("mlx5_1"), port("mlx5_2")])[-1].name == "ib_write_bw mlx5_2->mlx5_0"
    assert acc.hca_pairs([port("mlx5_0")]) == []


def test_ib_verdict_threshold_is_a_fraction_of_the_port_rate():
    pair = acc.HcaPair("mlx5_0", "mlx5_1", 400.0)
    verdict = acc.ib_verdict(pair, fixture("ib_write_bw-client-65536-mbytes.txt"), 0.9)
    assert verdict.passed and verdict.threshold == 360.0 and verdict.measured == 371.42
    low = acc.ib_verdict(pair, fixture("ib_write_bw-bidirectional-loopback-gbits.txt"), 0.9)
    assert not low.passed and low.summary() == ("ib_write_bw mlx5_1->mlx5_0: measured 204.59 Gb/s, threshold "
                                                "360.00 Gb/s (0.9 x 400 Gb/s port rate)")
    assert not acc.ib_verdict(pair, " Couldn't connect to 127.0.0.1:18515\n", 0.9).passed


# --- thresholds from the hardware ---------------------------------------------------------------

def _links(n, cell):
    return [{f"GPU{j}": ("X" if i == j else cell) for j in range(n)} for i in range(n)]


def test_nvswitch_h100_threshold():
    fabric = acc.fabric_of(["NVIDIA H100 80GB HBM3"] * 8, _links(8, "NV18"), True, 32.0)
    assert (fabric.kind, fabric.nominal_gbps) == ("nvswitch", 450.0)
    assert acc.allreduce_threshold(fabric, 0.8, 0.6) == 360.0
    b200 = acc.fabric_of(["NVIDIA B200"] * 8, _links(8, "NV18"), True, 64.0)
    assert b200.nominal_gbps == 900.0


def test_pcie_threshold_and_mixed_links():
    fabric = acc.fabric_of(["NVIDIA RTX 6000 Ada Generation"] * 2, _links(2, "PHB"), False, 32.0)
    assert (fabric.kind, acc.allreduce_threshold(fabric, 0.8, 0.6)) == ("pcie", 19.2)
    mixed = _links(4, "NV4")
    mixed[0]["GPU3"] = "SYS"
    assert acc.fabric_of(["A"] * 4, mixed, False, 32.0).kind == "pcie"


def test_render_table_names_failures():
    verdicts = [acc.missing_tool("allreduce_busbw", "/opt/nccl-tests/build/all_reduce_perf", 360.0, "GB/s", "ship it")]
    table = acc.render_table(verdicts)
    assert "FAIL /opt/nccl-tests/build/all_reduce_perf not found on the node; ship it" in table


# --- burn-in ---------------------------------------------------------------------------------

H100 = "NVIDIA H100 80GB HBM3"
FLOORS = acc.BurninFloors(memory_fraction=0.7, matmul_fraction=0.5)


def burnin_document(*devices: tuple[float | None, float | None, int | None], name: str = H100, **extra) -> dict:
    return {"device": "cuda", "torch": "2.5.1", "devices": [
        {"index": i, "name": name, "memory_bandwidth_gbps": bw, "matmul_tflops": tf, "matmul_errors": errors}
        for i, (bw, tf, errors) in enumerate(devices)], **extra}


@pytest.mark.parametrize(("name", "memory", "tflops"), [
    ("NVIDIA H100 80GB HBM3", 3350.0, 989.5), ("NVIDIA H100 PCIe", 2000.0, 756.5), ("NVIDIA H100 NVL", 3900.0, 835.5),
    ("NVIDIA H200", 4800.0, 989.5), ("NVIDIA H200 NVL", 4800.0, 835.5), ("NVIDIA H800", 3350.0, 989.5),
    ("NVIDIA A100-SXM4-80GB", 2039.0, 312.0), ("NVIDIA A100 80GB PCIe", 1935.0, 312.0), ("NVIDIA A100-SXM4-40GB", 1555.0, 312.0),
])
def test_gpu_datasheet_figures_by_nvidia_smi_name(name, memory, tflops):
    assert acc.gpu_nominal(name) == acc.GpuNominal(memory, tflops)


def test_a_gpu_not_in_the_table_has_no_figures():
    assert acc.gpu_nominal("NVIDIA RTX 6000 Ada Generation") is None and acc.gpu_nominal(None) is None


def test_healthy_h100s_pass_with_the_slowest_gpu_reported():
    verdicts = acc.burnin_verdicts(burnin_document(*[(2900.0, 700.0, 0)] * 7, (2600.0, 650.0, 0)), FLOORS, 8)
    memory, matmul = verdicts
    assert [v.name for v in verdicts] == ["burnin_memory_bw", "burnin_matmul"] and all(v.passed for v in verdicts)
    assert (memory.measured, memory.threshold, memory.unit) == (2600.0, 2345.0, "GB/s")
    assert (matmul.measured, matmul.threshold, matmul.unit) == (650.0, 494.8, "TFLOPS")
    assert "cuda 7 (NVIDIA H100 80GB HBM3), lowest of 8" in memory.detail and "0.7 x 3350 GB/s" in memory.detail


def test_a_slow_gpu_fails_the_memory_check_with_its_figure_and_the_floor():
    memory, matmul = acc.burnin_verdicts(burnin_document((2900.0, 700.0, 0), (1800.0, 690.0, 0)), FLOORS, 2)
    assert not memory.passed and matmul.passed
    assert memory.summary().startswith("burnin_memory_bw: measured 1800.00 GB/s, threshold 2345.00 GB/s"), memory.summary()
    assert "cuda 1" in memory.detail


def test_wrong_matmul_results_fail_however_fast():
    memory, matmul = acc.burnin_verdicts(burnin_document((2900.0, 700.0, 0), (2900.0, 720.0, 3)), FLOORS, 2)
    assert memory.passed and not matmul.passed and "cuda 1: 3 wrong matmul results" in matmul.detail


def test_missing_gpus_and_device_errors_fail():
    seven = acc.burnin_verdicts(burnin_document(*[(2900.0, 700.0, 0)] * 7), FLOORS, 8)
    assert not any(v.passed for v in seven) and all("PyTorch sees 7 of the node's 8 GPUs" in v.detail for v in seven)
    document = burnin_document((2900.0, 700.0, 0), (None, None, None))
    document["devices"][1]["error"] = "RuntimeError: CUDA error: uncorrectable ECC error encountered"
    verdicts = acc.burnin_verdicts(document, FLOORS, 2)
    assert not any(v.passed for v in verdicts) and all("cuda 1: RuntimeError: CUDA error: uncorrectable ECC" in v.detail
                                                        for v in verdicts)


def test_a_run_that_measured_nothing_fails_with_its_error():
    (verdict,) = acc.burnin_verdicts({"devices": [], "device": "cuda", "error": "no CUDA device visible to PyTorch"},
                                     FLOORS, 8)
    assert verdict.name == "burnin" and not verdict.passed and "no CUDA device" in verdict.detail


def test_without_a_datasheet_figure_the_figures_are_measured_not_judged_unless_a_floor_is_set():
    document = burnin_document((800.0, 300.0, 0), name="NVIDIA RTX 6000 Ada Generation")
    memory, matmul = acc.burnin_verdicts(document, FLOORS, 1)
    assert memory.passed and memory.threshold is None and "set acceptance_burnin_min_memory_gbps" in memory.detail
    assert matmul.passed and "set acceptance_burnin_min_tflops" in matmul.detail
    floors = acc.BurninFloors(0.7, 0.5, min_memory_gbps=850.0, min_tflops=250.0)
    memory, matmul = acc.burnin_verdicts(document, floors, 1)
    assert not memory.passed and memory.threshold == 850.0 and matmul.passed and matmul.threshold == 250.0


def test_a_cpu_run_is_judged_by_the_set_floors_only():
    document = {"device": "cpu", "devices": [{"index": 0, "name": "cpu", "memory_bandwidth_gbps": 20.0,
                                              "matmul_tflops": 0.1, "matmul_errors": 0}]}
    assert all(v.passed and v.threshold is None for v in acc.burnin_verdicts(document, FLOORS, 8))  # GPUs not asked for
    memory, _ = acc.burnin_verdicts(document, acc.BurninFloors(0.7, 0.5, min_memory_gbps=25.0), 8)
    assert not memory.passed and memory.threshold == 25.0


# --- all-reduce across a replica's nodes -----------------------------------------------------


def test_the_replica_network_is_every_active_ib_port_for_nccl():
    ports = [IbPort(ca=f"mlx5_{i}", port=1, state="Active", rate_gbps=400, link_layer="InfiniBand") for i in range(8)]
    ports.append(IbPort(ca="mlx5_8", port=1, state="Down", rate_gbps=400, link_layer="InfiniBand"))
    network = {"eth0": NetInterface(state="up", speed_mbps=100000, type="ether")}
    assert acc.replica_network_gbps(ports, network, "nccl") == (400.0, "8 InfiniBand port(s), 3200 Gb/s")
    # gloo speaks TCP: the fastest Ethernet link that is up
    network["eth1"] = NetInterface(state="down", speed_mbps=200000, type="ether")
    assert acc.replica_network_gbps(ports, network, "gloo") == (12.5, "eth0 100000 Mb/s")
    assert acc.replica_network_gbps([], {}, "nccl") == (None, "no active InfiniBand port and no Ethernet link speed")


def replica_rows(busbw_at_largest: float, wrong: int = 0) -> dict:
    return {"backend": "nccl", "world_size": 16, "nodes": 2, "rows": [
        {"size_bytes": 8 << 20, "time_us": 500.0, "algbw_gbps": 16.0, "busbw_gbps": 30.0, "wrong": 0},
        {"size_bytes": 1 << 30, "time_us": 6000.0, "algbw_gbps": 178.0, "busbw_gbps": busbw_at_largest, "wrong": wrong}]}


def test_replica_allreduce_judges_the_largest_message():
    passed = acc.replica_allreduce_verdict(replica_rows(338.82), 200.0, "0.5 x 8 InfiniBand port(s)", "replica 'r1'")
    assert passed.passed and passed.measured == 338.82 and passed.threshold == 200.0
    assert "replica 'r1', 16 ranks over nccl; busbw at 1073741824 B" in passed.detail
    slow = acc.replica_allreduce_verdict(replica_rows(150.0), 200.0, "b", "r1")
    assert not slow.passed and slow.summary().startswith("replica_allreduce_busbw: measured 150.00 GB/s, threshold 200.00")
    wrong = acc.replica_allreduce_verdict(replica_rows(338.0, wrong=4), 200.0, "b", "r1")
    assert not wrong.passed and "4 wrong values" in wrong.detail


def test_replica_allreduce_that_did_not_run_fails_with_why():
    failed = acc.replica_allreduce_verdict({"error": "rendezvous timed out"}, 200.0, "b", "replica 'r1'")
    assert not failed.passed and failed.measured is None and "replica 'r1': rendezvous timed out" in failed.detail
