"""The lab mirror's simulated dcgm-exporter (lab/mirror/sim/dcgm-exporter) against a rendered
node overlay: it serves the role's counters CSV for every GPU of the profile with the values
the simulated nvidia-smi reports, and refuses what the real exporter refuses."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lab import hwsim
from lab.mirror import catalog
from deepseek_infra.monitoring import dcgm_counters

COUNTERS = Path(__file__).resolve().parents[3] / "roles/exporters/files/etc/dcgm-exporter/deepseek-counters.csv"
PROFILES = ("hgx-h100-8x", "workstation-rtx6000ada-2x")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _exporter_script(tmp_path: Path) -> Path:
    (package,) = [p for p in catalog.packages() if p.name == "datacenter-gpu-manager-exporter"]
    content, mode = package.files["usr/bin/dcgm-exporter"]
    script = tmp_path / "dcgm-exporter"
    script.write_text(content)
    script.chmod(mode)
    return script


def _environment(tmp_path: Path, profile: str) -> dict[str, str]:
    """PATH with the simulated nvidia-smi of ``profile``, its driver "loaded"."""
    root = tmp_path / profile
    hwsim.render_node_overlay(profile, root)
    (root / hwsim.HW_DIR / "driver-loaded").touch()
    bin_dir = tmp_path / f"{profile}-bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\nexec {sys.executable} {hwsim.BIN_DIR / 'nvidia-smi'} \"$@\"\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DEEPSEEK_LAB_HW_DIR": str(root / hwsim.HW_DIR)}


def _scrape(port: int, process: subprocess.Popen) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                return response.read().decode()
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dcgm-exporter did not serve: {process.communicate(timeout=5)}") from None
            time.sleep(0.2)


@pytest.mark.parametrize("profile", PROFILES)
def test_serves_every_counter_for_every_gpu_of_the_profile(tmp_path, profile):
    env = _environment(tmp_path, profile)
    gpus = hwsim.load_profile(profile)["gpus"]
    engine = socket.create_server(("127.0.0.1", 0))  # the DCGM host engine's port
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(_exporter_script(tmp_path)), "--address", f"127.0.0.1:{port}", "--collectors",
         str(COUNTERS), "--remote-hostengine-info", f"127.0.0.1:{engine.getsockname()[1]}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        body = _scrape(port, process)
    finally:
        process.terminate()
        process.wait(5)
        engine.close()
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            samples.setdefault(name_labels.split("{")[0], []).append((name_labels, float(value)))
    for name in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_GPU_TEMP",
                 "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_XID_ERRORS"):
        assert name in dcgm_counters(COUNTERS.read_text()), f"{name} is not in the role's counters CSV"
        assert len(samples.get(name, [])) == len(gpus), f"{profile}: {name}: expected {len(gpus)} samples, found {samples.get(name)}"
    for gpu in gpus:
        (used,) = [v for labels, v in samples["DCGM_FI_DEV_FB_USED"] if f'UUID="{gpu["uuid"]}"' in labels]
        assert used == float(gpu["memory.used"].split()[0]), f"{profile}: GPU {gpu['index']}: FB_USED {used}"
        (temp,) = [v for labels, v in samples["DCGM_FI_DEV_GPU_TEMP"] if f'gpu="{gpu["index"]}"' in labels]
        assert temp == float(gpu["temperature.gpu"]), f"{profile}: GPU {gpu['index']}: GPU_TEMP {temp}"
    driver = hwsim.load_profile(profile)["driver_version"]
    assert all(f'DCGM_FI_DRIVER_VERSION="{driver}"' in labels for labels, _ in samples["DCGM_FI_DEV_GPU_UTIL"])
    ecc_enabled = gpus[0].get("ecc.mode.current") == "Enabled"
    assert ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" in samples) == ecc_enabled, f"{profile}: ECC counters vs ECC mode"


def test_refuses_an_unknown_field_and_a_missing_host_engine(tmp_path):
    env = _environment(tmp_path, PROFILES[1])
    script = _exporter_script(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("DCGM_FI_DEV_NOT_A_FIELD, gauge, nothing\n")
    result = subprocess.run([sys.executable, str(script), "-f", str(bad)], env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode != 0 and "could not find DCGM field DCGM_FI_DEV_NOT_A_FIELD" in result.stderr
    closed = _free_port()
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(script), "-f", str(COUNTERS), "-r", f"127.0.0.1:{closed}", "-a", f"127.0.0.1:{_free_port()}"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0 and "cannot connect to the DCGM host engine" in result.stderr, result.stderr
    assert time.monotonic() - started >= 9, "gave up on the host engine without waiting for it to start"
