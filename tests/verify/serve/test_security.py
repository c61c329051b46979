"""deepseek-engine.service passes systemd's own checks: `systemd-analyze verify` is clean and
`systemd-analyze security` rates its exposure at most engine.SECURITY_EXPOSURE_MAX ("OK")."""

from __future__ import annotations

import re

import pytest

from deepseek_infra import engine

UNIT_FILE = f"/etc/systemd/system/{engine.UNIT}"
EXPOSURE = re.compile(r"Overall exposure level for \S+:\s*([0-9]+(?:\.[0-9]+)?)\s+(\S+)")


def test_systemd_analyze_verify_is_clean(host):
    with host.sudo():
        result = host.run(f"systemd-analyze verify {UNIT_FILE}")
    # Lines about other units (a container's own quirks) are not this unit's problem.
    ours = [line for line in (result.stdout + result.stderr).splitlines() if engine.UNIT in line or UNIT_FILE in line]
    assert result.rc == 0 and not ours, (
        f"{host.backend.hostname}: systemd-analyze verify {UNIT_FILE}: expected rc 0 and no findings, "
        f"found rc {result.rc}: {ours or (result.stdout + result.stderr).strip()[-1000:]}"
    )


def test_security_exposure_is_ok(host):
    with host.sudo():
        result = host.run(f"systemd-analyze security --no-pager {engine.UNIT}")
    found = EXPOSURE.search(result.stdout + result.stderr)
    assert found, (f"{host.backend.hostname}: systemd-analyze security {engine.UNIT}: expected an "
                   f"'Overall exposure level' line, found rc {result.rc}: {(result.stdout + result.stderr)[-500:]}")
    score = float(found.group(1))
    assert score <= engine.SECURITY_EXPOSURE_MAX, (
        f"{host.backend.hostname}: {engine.UNIT} exposure: expected <= {engine.SECURITY_EXPOSURE_MAX}, "
        f"found {score} {found.group(2)}; worst settings:\n"
        + "\n".join(line for line in result.stdout.splitlines() if line.startswith("✗"))[:2000]
    )


def test_served_weights_pass_the_start_check(host, engine_config):
    """The fast check the unit runs before start passes on the weights now served (when they carry a manifest)."""
    path = engine_config["model_path"]
    if not host.file(f"{path}/MANIFEST.dsw.json").exists:
        pytest.skip(f"{host.backend.hostname}: {path} carries no manifest; the weights role's check covers it")
    with host.sudo():
        result = host.run(f"{engine.HEALTH_TOOL} weights --path {path} --require")
    assert result.rc == 0, (f"{host.backend.hostname}: weights check of {path}: expected pass, "
                            f"found rc {result.rc}: {(result.stdout + result.stderr).strip()}")


def test_device_policy_reaches_every_nvidia_device_node(host):
    """DevicePolicy=closed with the unit's DeviceAllow= groups still lets the engine open each
    /dev/nvidia* node (groups resolve through /proc/devices, as systemd resolves them)."""
    name = host.backend.hostname
    allowed = [line.partition("=")[2] for line in host.file(UNIT_FILE).content_string.splitlines()
               if line.startswith("DeviceAllow=")]
    if not allowed:
        pytest.skip(f"{name}: {engine.UNIT} opens no GPU itself (CPU engine or Docker client): no DeviceAllow=")
    found = host.run("find /dev -maxdepth 2 -name 'nvidia*' -type c -exec stat -c '%n %t' {} +")
    nodes = {path: int(major, 16) for path, major in (line.split() for line in found.stdout.splitlines())}
    if not nodes:
        pytest.skip(f"{name}: no /dev/nvidia* device nodes here (simulated GPUs have none)")
    uncovered = engine.uncovered_device_nodes(allowed, host.file("/proc/devices").content_string, nodes)
    assert not uncovered, (f"{name}: {engine.UNIT} DeviceAllow={allowed}: expected every NVIDIA device node "
                           f"allowed, found {uncovered} outside them")
