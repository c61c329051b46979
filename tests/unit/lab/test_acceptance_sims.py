"""LAB SIMULATION tests: the acceptance tools (dcgmi, all_reduce_perf, ib_write_bw) on rendered overlays.

Their output goes through the collection's own parsers (deepseek_infra/acceptance.py), which
are tested on real captures: healthy profiles pass every check, the degraded one fails the
all-reduce check only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepseek_infra import acceptance as acc
from lab import hwsim

HEALTHY = ["hgx-h100-8x", "dgx-h200-8x", "workstation-rtx6000ada-2x"]


@pytest.fixture(scope="module")
def overlays(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("acc-overlays")
    for name in [*HEALTHY, "hgx-h100-8x-degraded"]:
        hwsim.render_node_overlay(name, root / name)
        (root / name / hwsim.HW_DIR / "driver-loaded").touch()
    return {name: root / name for name in [*HEALTHY, "hgx-h100-8x-degraded"]}


def env(overlay: Path) -> dict[str, str]:
    return {**os.environ, "DEEPSEEK_LAB_HW_DIR": str(overlay / hwsim.HW_DIR), "DEEPSEEK_LAB_RUN_DIR": str(overlay / "run")}


def run(overlay: Path, tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(overlay / hwsim.TOOL_PATHS[tool]), *args], capture_output=True,
                          text=True, env=env(overlay), check=False, timeout=60)


def fabric(name: str) -> acc.Fabric:
    profile = hwsim.load_profile(name)
    topo = (hwsim.PROFILES_DIR / profile["captures_from"] / profile["captures"]["nvidia-smi-topo-m"]).read_text()
    header = topo.splitlines()[0].split("\t")
    links = [dict(zip(header[1:], (c.strip() for c in line.split("\t")[1:])))
             for line in topo.splitlines()[1:] if line.startswith("GPU")]
    return acc.fabric_of([g["name"] for g in profile["gpus"]], links, profile["nvswitch"], 32.0)


@pytest.mark.parametrize("name", [*HEALTHY, "hgx-h100-8x-degraded"])
def test_all_reduce_perf_against_the_threshold(overlays, name):
    f = fabric(name)
    result = run(overlays[name], "all_reduce_perf", "-b", "8M", "-e", "2G", "-f", "2", "-g", str(f.gpus))
    assert result.returncode == 0, result.stdout + result.stderr
    verdict = acc.allreduce_verdict(result.stdout, acc.allreduce_threshold(f, 0.8, 0.6), f.basis)
    assert verdict.passed is (name != "hgx-h100-8x-degraded"), verdict.summary()
    if name == "hgx-h100-8x-degraded":
        assert (verdict.threshold, round(verdict.measured)) == (360.0, 281)


def test_all_reduce_perf_without_driver_fails(overlays, tmp_path):
    (overlays["workstation-rtx6000ada-2x"] / hwsim.HW_DIR / "driver-loaded").unlink()
    try:
        result = run(overlays["workstation-rtx6000ada-2x"], "all_reduce_perf", "-g", "2")
        assert result.returncode == 1 and "CUDA driver version is insufficient" in result.stdout
    finally:
        (overlays["workstation-rtx6000ada-2x"] / hwsim.HW_DIR / "driver-loaded").touch()


@pytest.mark.parametrize("name", HEALTHY)
def test_dcgmi_diag_passes_on_healthy_profiles(overlays, name):
    result = run(overlays[name], "dcgmi", "diag", "-r", "2")
    verdict = acc.dcgm_verdict(2, result.stdout, result.returncode == 0)
    assert result.returncode == 0 and verdict.passed, verdict.summary()
    assert [t.name for t in acc.parse_dcgmi_diag(result.stdout).tests] == ["software", "memory", "pcie"]


def test_dcgmi_failure_from_the_profile(overlays, tmp_path):
    overlay = tmp_path / "bad"
    import shutil
    import json
    shutil.copytree(overlays["hgx-h100-8x"], overlay)
    path = overlay / hwsim.HW_DIR / "profile.json"
    profile = json.loads(path.read_text())
    profile["acceptance"] = {"dcgm_failures": {"memory": [3]}}
    path.write_text(json.dumps(profile))
    result = run(overlay, "dcgmi", "diag", "-r", "3")
    verdict = acc.dcgm_verdict(3, result.stdout, result.returncode == 0)
    assert result.returncode != 0 and not verdict.passed
    assert verdict.detail.startswith("Hardware/memory: Fail, GPU3: Fail [GPU 3 memory test failed")


def test_ib_write_bw_pair(overlays):
    overlay = overlays["hgx-h100-8x"]
    server = subprocess.Popen([sys.executable, str(overlay / hwsim.TOOL_PATHS["ib_write_bw"]), "-d", "mlx5_0",
                               "--report_gbits", "-D", "1"], env=env(overlay), stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    client = run(overlay, "ib_write_bw", "-d", "mlx5_3", "--report_gbits", "-D", "1", "127.0.0.1")
    server.wait(timeout=30)
    verdict = acc.ib_verdict(acc.HcaPair("mlx5_0", "mlx5_3", 400.0), client.stdout, 0.9)
    assert verdict.passed and verdict.measured == 388.0, verdict.summary()
    mbytes = run(overlay, "ib_write_bw", "-d", "mlx5_3", "127.0.0.1")  # no server any more
    assert mbytes.returncode == 1 and "Couldn't connect" in mbytes.stdout


def test_degraded_profile_extends_the_healthy_one():
    degraded, healthy = hwsim.load_profile("hgx-h100-8x-degraded"), hwsim.load_profile("hgx-h100-8x")
    assert degraded["captures_from"] == "hgx-h100-8x" and degraded["gpus"] == healthy["gpus"]
    assert degraded["acceptance"] == {"allreduce_busbw_gbps": 290.0} and "acceptance" not in healthy
