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
from deepseek_infra.host_memory import HostMemoryInputs
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


def evaluate(host: str, sections: dict, *rest, **keywords):
    """Preflight of a host whose sections are what the facts' parsers return."""
    return evaluate_hardware(host, Hardware.from_sections(sections), *rest, **keywords)


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


# --- fixes: every failing check names the setting to change and, where computable, the value ---

def failing(report, name: str):
    (check,) = [check for check in report.failures if check.name == name]
    assert check.fix, check
    return check


def test_v3_on_one_h100_node_is_told_to_use_two_nodes_and_two_pass():
    report = evaluate("hgx", hgx_h100_without_driver(), NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements())
    assert failing(report, "serving plan").fix == "deepseek_nodes = 2"
    assert report.fixes == ["deepseek_nodes = 2"]
    assert [check["fix"] for check in report.to_dict()["checks"] if check["verdict"] == "fail"] == ["deepseek_nodes = 2"]
    table = report.render_table()
    assert table.endswith("  change:\n    serving plan: deepseek_nodes = 2"), table
    assert all(not check.fix for check in report.checks if check.verdict != "fail")


def test_a_too_long_context_is_told_the_most_that_fits_or_more_nodes():
    report = evaluate("ws", workstation_rtx6000ada(), NVME_30TB, get_model("r1-distill-qwen-32b"), "vllm",
                      Requirements(min_cpu_cores=16, max_model_len=131072))
    fix = failing(report, "serving plan").fix
    assert fix == "deepseek_max_model_len = 70656 (the most that fits on 1 node), or deepseek_nodes = 2"
    for applied in (Requirements(min_cpu_cores=16, max_model_len=70656),
                    Requirements(min_cpu_cores=16, max_model_len=131072, nodes=2)):
        again = evaluate("ws", workstation_rtx6000ada(), NVME_30TB, get_model("r1-distill-qwen-32b"), "vllm", applied)
        assert verdicts(again)["serving plan"] == "pass", again.render_table()


def test_transformers_on_one_gpu_is_told_the_sharding_engines():
    report = evaluate("ws", workstation_rtx6000ada(), NVME_30TB, get_model("r1-distill-qwen-32b"), "transformers",
                      Requirements(min_cpu_cores=16))
    assert failing(report, "serving plan").fix == "deepseek_engine = vllm, or deepseek_engine = sglang"


def test_no_node_count_fits_names_the_largest_catalog_model_that_fits_one_node():
    report = evaluate("ws", workstation_rtx6000ada(), NVME_30TB, get_model("r1-distill-llama-70b"), "transformers",
                      Requirements(min_cpu_cores=16))
    fix = failing(report, "serving plan").fix
    assert fix.startswith("deepseek_model = deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct "), fix
    alternative = evaluate("ws", workstation_rtx6000ada(), NVME_30TB, get_model("coder-v2-lite"), "transformers",
                           Requirements(min_cpu_cores=16))
    assert alternative.passed, alternative.render_table()


def test_an_invalid_plan_names_the_engine_or_the_context():
    engine = evaluate("dgx", dgx_h200(), NVME_30TB, get_model("deepseek-v3"), "transformers", Requirements())
    assert failing(engine, "serving plan").fix == "deepseek_engine = sglang or vllm"
    context = evaluate("dgx", dgx_h200(), NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements(max_model_len=200000))
    assert failing(context, "serving plan").fix == "deepseek_max_model_len = 163840 or less, or unset it"


def test_fp8_on_ampere_names_a_model_the_gpus_run():
    a100 = {**hgx_h100_without_driver(), "nvidia_pci": pci_gpus("20b2", 8)}
    report = evaluate("a100", a100, NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements())
    fix = failing(report, "compute capability").fix
    # the largest catalog model these GPUs run: DeepSeek-V2 (236B, BF16) on all eight
    assert fix == ("deepseek_model = deepseek-ai/DeepSeek-V2-Chat (needs 8), "
                   "or GPUs of compute capability >= 8.9")
    assert evaluate("a100", a100, NVME_30TB, get_model("deepseek-ai/DeepSeek-V2-Chat"), "vllm", Requirements()).passed


def test_a_site_bar_above_the_model_need_is_lowered_after_the_hardware_fix():
    report = evaluate("ws", workstation_rtx6000ada(), NVME_30TB, get_model("r1-distill-qwen-7b"), "vllm",
                      Requirements(min_cpu_cores=16, min_compute_capability=9.0))
    assert failing(report, "compute capability").fix == (
        "GPUs of compute capability >= 9.0, or lower preflight_min_compute_capability to 8.9")


def test_threshold_fixes_pass_when_applied():
    """The value a threshold fix names is one the host passes: apply it and the check passes."""
    rtx4090 = {**workstation_rtx6000ada(), "nvidia_pci": pci_gpus("2684", 8), "meminfo": {"mem_total_mb": 60_000},
               "network": {"eno1": {"state": "up", "speed_mbps": 1000, "mtu": 1500, "mac": "x", "type": "ether"}}}
    model = get_model("r1-distill-qwen-7b")
    report = evaluate("g", rtx4090, NVME_30TB, model, "vllm", Requirements())
    fixes = {check.name: check.fix for check in report.failures}
    assert fixes == {
        "gpu memory": "GPUs of >= 40 GiB, or lower preflight_min_gpu_memory_gib to 23 (the serving plan fits these GPUs)",
        "cpu cores": "a host with >= 32 physical cores, or lower preflight_min_cpu_cores to 24",
        "memory": "a host with >= 64 GiB of RAM, or lower preflight_min_memory_gib to 58",
        "network": "a NIC or InfiniBand port of >= 10 Gb/s, or lower preflight_min_network_gbps to 1",
    }
    lowered = Requirements(min_gpu_memory_gib=23, min_cpu_cores=24, min_memory_gib=58, min_network_gbps=1)
    assert evaluate("g", rtx4090, NVME_30TB, model, "vllm", lowered).passed


def test_a_multi_node_replica_without_fabric_is_told_one_node_when_the_model_fits_one():
    no_ib = {**hgx_h100_without_driver(), "ibstat": []}
    small = evaluate("hgx", no_ib, NVME_30TB, get_model("r1-distill-qwen-7b"), "vllm", Requirements(nodes=2))
    assert failing(small, "infiniband").fix.startswith("deepseek_nodes = 1 (the model fits one node), or an InfiniBand HCA")
    big = evaluate("hgx", no_ib, NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements(nodes=2))
    assert failing(big, "infiniband").fix == "an InfiniBand HCA with an active port of >= 200 Gb/s on this node"
    slow = evaluate("hgx", hgx_h100_without_driver(), NVME_30TB, get_model("deepseek-v3"), "vllm",
                    Requirements(nodes=2, min_ib_gbps_multinode=800))
    assert failing(slow, "infiniband").fix == (
        "InfiniBand ports of >= 800 Gb/s, or lower preflight_min_ib_gbps_multinode to 400")


def test_storage_fix_names_the_filesystem_and_fewer_kept_releases_when_they_fit():
    two_tb = {**NVME_30TB, "size_bytes": 2_000_000_000_000}
    report = evaluate("dgx", dgx_h200(), two_tb, get_model("deepseek-v3"), "vllm", Requirements())
    assert failing(report, "weights storage").fix == (
        "weights_models_dir and preflight_weights_path on a filesystem of >= 2,273 GB, "
        "or preflight_kept_releases = 1 and weights_keep_releases = 1 (fewer releases to roll back to)")
    assert evaluate("dgx", dgx_h200(), two_tb, get_model("deepseek-v3"), "vllm", Requirements(kept_releases=1)).passed
    one_tb = {**NVME_30TB, "size_bytes": 1_000_000_000_000}  # not even two copies: only a bigger filesystem
    report = evaluate("dgx", dgx_h200(), one_tb, get_model("deepseek-v3"), "vllm", Requirements())
    assert failing(report, "weights storage").fix == (
        "weights_models_dir and preflight_weights_path on a filesystem of >= 2,273 GB")


def test_no_gpus_names_the_cpu_engine_or_a_model_it_serves():
    no_gpu = {**workstation_rtx6000ada(), "nvidia_pci": []}
    distill = evaluate("cpu", no_gpu, NVME_30TB, get_model("r1-distill-qwen-1.5b"), "vllm", Requirements(min_cpu_cores=8))
    assert failing(distill, "gpus").fix == "deepseek_engine = transformers (serves on the CPU), or a host with NVIDIA GPUs"
    v3 = evaluate("cpu", no_gpu, NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements(min_cpu_cores=8))
    assert failing(v3, "gpus").fix == (
        "a host with NVIDIA GPUs (DeepSeek-V3 runs on sglang or vllm only), or deepseek_engine = transformers "
        "with deepseek_model = deepseek-ai/deepseek-coder-1.3b-instruct")  # the smallest the CPU engine serves


def test_every_failing_check_has_a_fix_without_the_message_separator():
    rtx4090 = {**workstation_rtx6000ada(), "nvidia_pci": pci_gpus("2684", 8), "meminfo": {"mem_total_mb": 60_000}}
    report = evaluate("g", rtx4090, {**NVME_30TB, "size_bytes": 10**12}, get_model("deepseek-r1"), "sglang",
                      Requirements(nodes=2, model_path="/srv/m",
                                   weights_endpoint=("weights_hf_endpoint", "https://hf.internal")),
                      preconditions={"model_path": "missing", "endpoint": {"reachable": False, "error": "x"}},
                      hardware_references=[("kernel_isolated_cpus", "CPU 99 is not online")])
    assert len(report.failures) >= 8, report.render_table()
    assert all(check.fix and ";" not in check.fix for check in report.failures), report.render_table()


# --- what later roles assume: an explicit checkpoint path, a reachable weights source ---

MIRROR = ("weights_mirror_url", "http://mirror.dc1:8080/models")


def preconditions_report(preconditions=None, **requirements):
    return evaluate("dgx", dgx_h200(), NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements(**requirements),
                    preconditions=preconditions)


def test_nothing_assumed_adds_no_rows():
    report = preconditions_report({"model_path": "missing"})
    assert {"model path", "weights source"}.isdisjoint(verdicts(report))
    assert report.passed


@pytest.mark.parametrize(("state", "verdict", "found"), [
    ("checkpoint", "pass", "config.json present"),
    ("no-config", "fail", "a directory without config.json"),
    ("not-a-directory", "fail", "not a directory"),
    ("missing", "fail", "nothing there"),
])
def test_an_explicit_model_path_must_hold_a_checkpoint(state, verdict, found):
    report = preconditions_report({"model_path": state}, model_path="/srv/ckpt")
    (check,) = [check for check in report.checks if check.name == "model path"]
    assert (check.verdict, check.found) == (verdict, found)
    assert "serve_model_path" in check.needed
    expected = "place the checkpoint at /srv/ckpt or unset serve_model_path (the weights role's release is used)"
    assert check.fix == ("" if verdict == "pass" else expected)


def test_an_unread_model_path_warns():
    report = preconditions_report(None, model_path="/srv/ckpt")
    assert verdicts(report)["model path"] == "warn" and report.passed


def test_the_weights_source_must_answer_from_the_node():
    reached = preconditions_report({"endpoint": {"reachable": True, "error": None}}, weights_endpoint=MIRROR)
    assert verdicts(reached)["weights source"] == "pass"
    refused = preconditions_report({"endpoint": {"reachable": False, "error": "Connection refused"}},
                                   weights_endpoint=MIRROR)
    check = failing(refused, "weights source")
    assert (check.needed, check.found) == ("TCP to mirror.dc1:8080 (weights_mirror_url)", "Connection refused")
    assert check.fix == ("weights_mirror_url = a URL this node reaches, or open mirror.dc1:8080 to it "
                         "(route, firewall, DNS)")
    untried = preconditions_report({"endpoint": {"reachable": None, "error": "bash or timeout not found on the node"}},
                                   weights_endpoint=MIRROR)
    assert verdicts(untried)["weights source"] == "warn" and untried.passed


def test_an_unreachable_source_only_warns_when_the_release_is_on_disk_already():
    report = preconditions_report({"endpoint": {"reachable": False, "error": "Connection refused"},
                                   "release_present": True}, weights_endpoint=MIRROR,
                                  release_path="/var/lib/deepseek/models/deepseek-ai--DeepSeek-V3/v1")
    (check,) = [check for check in report.checks if check.name == "weights source"]
    assert (check.verdict, check.fix) == ("warn", "")
    assert check.detail == ("/var/lib/deepseek/models/deepseek-ai--DeepSeek-V3/v1 is on disk already; only a new "
                            "weights_revision needs http://mirror.dc1:8080/models")
    assert report.passed
    absent = preconditions_report({"endpoint": {"reachable": False, "error": "Connection refused"},
                                   "release_present": False}, weights_endpoint=MIRROR, release_path="/x/v1")
    assert not absent.passed


def test_a_url_without_a_usable_port_fails_naming_its_setting():
    report = preconditions_report({}, weights_endpoint=("weights_hf_endpoint", "https://hf.internal:99999/"))
    check = failing(report, "weights source")
    assert check.fix == "weights_hf_endpoint = http(s)://HOST[:PORT]/..."


def test_url_endpoint_defaults_the_port_by_scheme():
    from deepseek_infra.preflight import url_endpoint

    assert url_endpoint("https://user:pw@hf.internal/x") == ("hf.internal", 443)
    assert url_endpoint("http://mirror") == ("mirror", 80)
    assert url_endpoint("http://[fd00::5]:8080/m") == ("fd00::5", 8080)
    assert url_endpoint("http://m:notaport/") is None and url_endpoint("ftp://m/") is None


# --- settings that name hardware the host lacks (computed elsewhere, shown here) ---

def test_hardware_references_fail_naming_each_setting():
    references = [("tuning_gpu_indices", "GPU 9 is not on this host (it has 0-7)"),
                  ("kernel_isolated_cpus", "CPU 200 is not online"),
                  ("tuning_gpu_indices", "GPU 12 is not on this host (it has 0-7)")]
    report = evaluate("dgx", dgx_h200(), NVME_30TB, get_model("deepseek-v3"), "vllm", Requirements(),
                      hardware_references=references)
    check = failing(report, "hardware references")
    assert check.found == "3 not on this host (tuning_gpu_indices, kernel_isolated_cpus)"
    assert check.detail == ("tuning_gpu_indices: GPU 9 is not on this host (it has 0-7); "
                            "kernel_isolated_cpus: CPU 200 is not online; "
                            "tuning_gpu_indices: GPU 12 is not on this host (it has 0-7)")
    assert check.fix == "set tuning_gpu_indices, kernel_isolated_cpus to what this host has"
    assert "hardware references" not in verdicts(evaluate("dgx", dgx_h200(), NVME_30TB, get_model("deepseek-v3"),
                                                          "vllm", Requirements(), hardware_references=()))


# --- host memory: the plan's terms against MemTotal (deepseek_infra/host_memory.py) ----------

ENCRYPTED = HostMemoryInputs(weights_encrypted=True)


def with_memory(sections: dict, mem_total_mb: int) -> dict:
    return {**sections, "meminfo": {"mem_total_mb": mem_total_mb}}


def test_an_encrypted_v3_does_not_fit_a_512_gib_host_and_the_check_names_each_term():
    report = evaluate("dgx", with_memory(dgx_h200(), 524_288), NVME_30TB, get_model("deepseek-v3"), "vllm",
                      Requirements(host_memory=ENCRYPTED))
    assert [check.name for check in report.failures] == ["memory"]
    memory = failing(report, "memory")
    assert (memory.needed, memory.found) == (">= 685 GiB (serving plan), site bar 64 GiB", "512 GiB")
    assert memory.detail.startswith("decrypted weights (tmpfs) 641.3 GiB (weights_encrypt: tmpfs_size of the "
                                    "688.6 GB checkpoint) + engine processes 35.0 GiB (vllm: 3 GiB front end + "
                                    "8 GPU processes x 4 GiB) + OS reserve 8.0 GiB")
    assert memory.detail.endswith("= 684.3 GiB")
    assert memory.fix == ("a host with >= 685 GiB of RAM, or weights_encrypt = false "
                          "(no 641.3 GiB tmpfs of decrypted weights)")
    assert "641.3 GiB" in report.render_table()
    # Each change it names passes: the host it asks for, or the release left unencrypted.
    assert evaluate("dgx", with_memory(dgx_h200(), 685 * 1024), NVME_30TB, get_model("deepseek-v3"), "vllm",
                    Requirements(host_memory=ENCRYPTED)).passed
    assert evaluate("dgx", with_memory(dgx_h200(), 524_288), NVME_30TB, get_model("deepseek-v3"), "vllm",
                    Requirements()).passed


def test_an_encrypted_v3_fits_a_2_tb_host():
    report = evaluate("dgx", dgx_h200(), NVME_30TB, get_model("deepseek-v3"), "vllm",
                      Requirements(host_memory=ENCRYPTED))  # 2,047,941 MB
    assert report.passed, report.render_table()
    (memory,) = [check for check in report.checks if check.name == "memory"]
    assert memory.found == "2,000 GiB" and "641.3 GiB" in memory.detail


def test_a_hugepage_pool_the_host_cannot_spare_is_told_the_count_that_fits():
    inputs = HostMemoryInputs(weights_encrypted=True, hugepages_count=64, hugepages_size="1G")
    report = evaluate("dgx", with_memory(dgx_h200(), 720 * 1024), NVME_30TB, get_model("deepseek-v3"), "vllm",
                      Requirements(host_memory=inputs))
    fix = failing(report, "memory").fix
    assert "hugepage pool 64.0 GiB (kernel_hugepages_count 64 x 1G)" in failing(report, "memory").detail
    assert fix == ("a host with >= 749 GiB of RAM, or weights_encrypt = false (no 641.3 GiB tmpfs of decrypted "
                   "weights), or kernel_hugepages_count = 35 (the pool holds 64.0 GiB now)")
    fewer = HostMemoryInputs(weights_encrypted=True, hugepages_count=35, hugepages_size="1G")
    assert evaluate("dgx", with_memory(dgx_h200(), 720 * 1024), NVME_30TB, get_model("deepseek-v3"), "vllm",
                    Requirements(host_memory=fewer)).passed


def test_a_cpu_engines_kv_cache_is_told_the_concurrency_that_fits():
    no_gpu = with_memory({**workstation_rtx6000ada(), "nvidia_pci": []}, 32 * 1024)
    model = get_model("r1-distill-qwen-1.5b")
    report = evaluate("cpu", no_gpu, NVME_30TB, model, "transformers",
                      Requirements(min_cpu_cores=8, min_memory_gib=16, target_concurrency=8))
    memory = failing(report, "memory")
    assert "CPU engine KV cache 28.0 GiB (8 x 131072 tokens x 28,672 B)" in memory.detail
    assert memory.fix.endswith("serve_target_concurrency = 5 (the CPU engine's KV cache holds 28.0 GiB for 8 sequences)")
    assert evaluate("cpu", no_gpu, NVME_30TB, model, "transformers",
                    Requirements(min_cpu_cores=8, min_memory_gib=16, target_concurrency=5)).passed


def test_memory_unknown_is_a_warning_that_still_lists_the_terms():
    report = evaluate("dgx", {**dgx_h200(), "meminfo": {}}, NVME_30TB, get_model("deepseek-v3"), "vllm",
                      Requirements(host_memory=ENCRYPTED))
    (memory,) = [check for check in report.checks if check.name == "memory"]
    assert (memory.verdict, memory.found) == ("warn", "unknown") and "641.3 GiB" in memory.detail


def test_a_concurrency_target_the_gpus_cannot_hold_is_told_the_most_they_do():
    report = evaluate("hgx", hgx_h100_without_driver(), NVME_30TB, get_model("deepseek-v3"), "vllm",
                      Requirements(nodes=2, max_model_len=163840, target_concurrency=32))
    plan = failing(report, "serving plan")
    assert "serve_target_concurrency 32 is more than these GPUs hold" in plan.detail
    assert plan.fix == ("deepseek_max_model_len = 25600 (the most that fits on 2 nodes for 32 concurrent sequences), "
                        "or serve_target_concurrency = 5 (the most that fit on 2 nodes), or deepseek_nodes = 7")
    for fixed in (Requirements(nodes=2, max_model_len=25600, target_concurrency=32),
                  Requirements(nodes=2, max_model_len=163840, target_concurrency=5)):
        assert evaluate("hgx", hgx_h100_without_driver(), NVME_30TB, get_model("deepseek-v3"), "vllm", fixed).passed
    fits = evaluate("hgx", hgx_h100_without_driver(), NVME_30TB, get_model("deepseek-v3"), "vllm",
                    Requirements(nodes=2, target_concurrency=32))
    assert fits.passed and [c.found for c in fits.checks if c.name == "serving plan"] == [
        "TP 8 x PP 2, len 25600, 32 sequences"]
