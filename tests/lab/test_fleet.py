"""Lab integration: the whole pipeline against the local fleet of systemd containers.

Order matters and is the story a user lives: bring up a fleet, refuse a bad inventory
without touching any host, deploy, verify every node, deploy again with zero changes,
bring up again without rebuilding the image, tear down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from lab.testing import changed_by_host, fleet_run

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# One node of each shipped profile, so every profile's preflight verdict is checked.
PROFILES = ("hgx-h100-8x", "workstation-rtx6000ada-2x", "dgx-h200-8x")
NODES = int(os.environ.get("DEEPSEEK_LAB_NODES", str(len(PROFILES))))
# This file's fleet, passed explicitly: other lab test files run fleets of their own.
FLEET = os.environ.get("DEEPSEEK_LAB_FLEET", "ds")
# DeepSeek-V3 needs 16 H100s (2 nodes); 2x 48 GB cannot hold it and 24 cores miss the bar;
# 8x H200 141 GB hold it on one node.
EXPECTED_V3_FAILURES = {
    "hgx-h100-8x": ["serving plan"],
    "workstation-rtx6000ada-2x": ["cpu cores", "serving plan", "weights storage"],  # 2 TB NVMe
    "dgx-h200-8x": [],
}


run = partial(fleet_run, FLEET, timeout=1800)


def lab(*args: str) -> subprocess.CompletedProcess:
    return run(str(BIN / "python"), "-m", "lab", *args)


def pyinfra_json(inventory: str, deploy: str) -> dict:
    """Run a deploy through pyinfra's CLI and return its JSON results."""
    result = run(str(BIN / "pyinfra"), "-y", "--json", inventory, deploy)
    start = result.stdout.index("{")
    return json.loads(result.stdout[start:])


@pytest.fixture(scope="module")
def fleet():
    # Fresh nodes: the refused run must find them untouched.
    up = lab("up", str(NODES), "--profile", ",".join(PROFILES), "--recreate")
    names = [line.split("\t")[0] for line in up.stdout.splitlines() if "\t" in line]
    assert len(names) == NODES, f"lab up {NODES}: expected {NODES} nodes, found {up.stdout}"
    yield names
    lab("down")


def node_has(name: str, path: str) -> bool:
    return run("docker", "exec", name, "test", "-e", path, check=False).returncode == 0


def test_bad_inventory_is_refused_before_any_change(fleet, tmp_path):
    inventory = tmp_path / "bad_inventory.py"
    inventory.write_text(
        f"gpu_nodes = [('@docker/{fleet[0]}', {{'base_ntp_server': ['ntp.example'], '_sudo_usr': 'root'}}),\n"
        f"             ('@docker/{fleet[-1]}', {{'base_apt_cache_valid_s': 'an hour', 'gateway_port': 8000}})]\n"
    )
    result = run(str(BIN / "pyinfra"), "-y", str(inventory), "deploy/full.py", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"a bad inventory was accepted:\n{output[-3000:]}"
    assert f"@docker/{fleet[0]}: base_ntp_server: unknown host data key; did you mean base_ntp_servers" in output
    assert f"@docker/{fleet[-1]}: base_apt_cache_valid_s:" in output
    assert f"@docker/{fleet[0]}: _sudo_usr: unknown pyinfra global argument; did you mean _sudo_user" in output
    assert f"@docker/{fleet[-1]}: gateway_port: port 8000 is already serve_port's on this host" in output
    for name in fleet:
        assert not node_has(name, "/etc/deepseek"), f"{name}: changed by a refused run"


# Requests no host of the fleet can meet: refused while preparing, naming host and field.
IMPOSSIBLE = [
    ("deploy/cuda.py", ["nvidia_driver_branch=550", "nvidia_driver_version=550.90.12", "cuda_version=12.8.1",
                        "cuda_cudnn_version=9.8.0.87-1", "cuda_nccl_version=2.25.1-1+cuda12.8"],
     "CUDA 12.8.1 needs NVIDIA driver >= 570.124.06; found 550.90.12"),
    ("deploy/kernel.py", ["kernel_hugepages_count=2000000"], "kernel_hugepages_count: 2000000 x 2M hugepages"),
    # hardware the nodes do not have (issue 23): no lab profile has a 10th GPU
    ("deploy/tuning.py", ["tuning_gpu_indices=[0,9]"], "tuning_gpu_indices: GPU index(es) 9 not on this host"),
]


@pytest.mark.parametrize(("deploy", "data", "words"), IMPOSSIBLE, ids=["cuda-vs-driver", "hugepages", "gpu-index"])
def test_impossible_request_is_refused_before_any_change(fleet, deploy, data, words):
    arguments = [item for pair in data for item in ("--data", pair)]
    result = run(str(BIN / "pyinfra"), "-y", "inventories/lab.py", deploy, *arguments, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{deploy} {data} was accepted:\n{output[-3000:]}"
    assert words in output and "@docker/" in output, output[-3000:]
    for name in fleet:
        assert not node_has(name, "/etc/deepseek"), f"{name}: changed by a refused run"


def test_deploy_then_verify_then_no_changes(fleet):
    first = pyinfra_json("inventories/lab.py", "deploy/full.py")
    assert first["results"]["totals"]["error"] == 0, json.dumps(first["results"], indent=1)[-4000:]
    assert set(changed_by_host(first)) == {f"@docker/{name}" for name in fleet}

    hosts = ",".join(f"docker://{name}" for name in fleet)
    verify = run(str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "tests/verify", f"--hosts={hosts}", check=False)
    assert verify.returncode == 0, f"verify suite failed:\n{verify.stdout[-6000:]}"

    second = pyinfra_json("inventories/lab.py", "deploy/full.py")
    assert second["results"]["totals"]["error"] == 0
    assert changed_by_host(second) == {}, f"second run changed: {changed_by_host(second)}"

    # The engine answers a real completion from the tiny checkpoint on every node.
    health = run(str(BIN / "pyinfra"), "-y", "inventories/lab.py", "deploy/health.py", check=False)
    assert health.returncode == 0, f"health gates failed:\n{(health.stdout + health.stderr)[-4000:]}"


def test_second_lab_up_reuses_the_image(fleet):
    again = lab("up", str(NODES), "--profile", ",".join(PROFILES))
    assert "up to date, reused" in again.stdout, again.stdout
    assert "building" not in again.stdout
    assert all(f"{name}: running" in again.stdout for name in fleet), again.stdout


def test_preflight_verdicts_for_deepseek_v3_with_production_thresholds(fleet, tmp_path):
    """What a person reading each profile's captures would say about DeepSeek-V3 (FP8, 689 GB)."""
    report_path = tmp_path / "preflight.json"
    result = run(
        str(BIN / "pyinfra"), "-y", "--dry", "inventories/lab.py", "deploy/preflight.py",
        "--data", "deepseek_model=deepseek-ai/DeepSeek-V3", "--data", "deepseek_engine=vllm",
        "--data", "preflight_min_cpu_cores=32", "--data", f"preflight_report={report_path}",
        check=False,
    )
    reports = {entry["host"]: entry for entry in json.loads(report_path.read_text())["hosts"]}
    profiles = dict(zip(fleet, PROFILES * NODES))
    for name, profile in profiles.items():
        report = reports[f"@docker/{name}"]
        failed = sorted(check["name"] for check in report["checks"] if check["verdict"] == "fail")
        assert failed == EXPECTED_V3_FAILURES[profile], f"{name} ({profile}): {report['checks']}\n{result.stderr[-3000:]}"


def test_kvm_guest_is_pinned_and_read_back(fleet):
    """libvirt in the workstation node: a QEMU/TCG guest defined (not started) and pinned.

    libvirt checks pins against the container's real CPUs, not the simulated profile, so
    the guest is one vCPU with one housekeeping CPU per node (the lab's 2-CPU kernel).
    """
    node = fleet[PROFILES.index("workstation-rtx6000ada-2x")]
    guest = '[{"name":"ds-guest-0","vcpus":1,"memory_mib":1024,"gpus":["0000:c1:00.0"]}]'
    arguments = ["--limit", f"@docker/{node}", "--data", "kvm_domain_type=qemu",
                 "--data", "kvm_reserved_cpus_per_node=1", "--data", f"kvm_guests={guest}"]
    run(str(BIN / "pyinfra"), "-y", "inventories/lab.py", "deploy/kvm.py", *arguments)
    second = run(str(BIN / "pyinfra"), "-y", "--json", "inventories/lab.py", "deploy/kvm.py", *arguments)
    report = json.loads(second.stdout[second.stdout.index("{"):])
    assert changed_by_host(report) == {}, f"second kvm run changed: {changed_by_host(report)}"
    pins = run("docker", "exec", node, "virsh", "vcpupin", "ds-guest-0", "--config").stdout
    assert pins.strip(), "virsh vcpupin printed nothing for the guest"
    verify = run(str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "tests/verify/kvm", f"--hosts=docker://{node}",
                 check=False)
    assert verify.returncode == 0, f"kvm verify failed:\n{verify.stdout[-4000:]}"
