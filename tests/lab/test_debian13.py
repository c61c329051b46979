"""Lab integration: a Debian 13 (trixie) node, the second real OS of the lab.

The node image is built with mmdebstrap from Debian's trixie packages (its python3 is 3.13,
its apt 3.0); the NVIDIA stack comes from the mirror's debian13 repository (the inventory's
mirror URL names ``{distro}``). The full deploy passes, the verify suites pass on it, and a
second run changes nothing.
"""

from __future__ import annotations

import json
import os
import sys
from functools import partial
from pathlib import Path

import pytest

from lab.testing import fleet_run

pytestmark = pytest.mark.lab

BIN = Path(sys.executable).parent
FLEET = os.environ.get("DEEPSEEK_LAB_FLEET", "d13")
run = partial(fleet_run, FLEET, timeout=1800, env={"DEEPSEEK_LAB_OS": "debian13"})


def changed(result) -> dict[str, list[str]]:
    report = json.loads(result.stdout[result.stdout.index("{"):])
    found: dict[str, list[str]] = {}
    for operation in report["results"]["operations"]:
        for name in operation["success"]:
            found.setdefault(name, []).append(operation["name"])
    return found


@pytest.fixture(scope="module")
def node():
    up = run(str(BIN / "python"), "-m", "lab", "up", "1", "--profile", "hgx-h100-8x", "--recreate")
    names = [line.split("\t")[0] for line in up.stdout.splitlines() if "\t" in line]
    assert len(names) == 1, up.stdout
    yield names[0]
    run(str(BIN / "python"), "-m", "lab", "down", check=False)


def test_the_node_runs_debian_13(node):
    release = run("docker", "exec", node, "cat", "/etc/os-release").stdout
    assert 'VERSION_ID="13"' in release and "trixie" in release, release
    python = run("docker", "exec", node, "python3", "--version").stdout
    assert python.startswith("Python 3.13"), python


def test_full_deploy_verify_and_no_changes_on_debian_13(node):
    run(str(BIN / "pyinfra"), "-y", "inventories/lab.py", "deploy/full.py")
    sources = run("docker", "exec", node, "cat", "/etc/apt/sources.list.d/deepseek-nvidia.sources").stdout
    assert "/compute/cuda/repos/debian13/x86_64/" in sources, sources
    verify = run(str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "tests/verify", f"--hosts=docker://{node}",
                 check=False)
    assert verify.returncode == 0, f"verify on Debian 13 failed:\n{verify.stdout[-6000:]}"
    second = run(str(BIN / "pyinfra"), "-y", "--json", "inventories/lab.py", "deploy/full.py")
    assert changed(second) == {}, f"second run on Debian 13 changed: {changed(second)}"
