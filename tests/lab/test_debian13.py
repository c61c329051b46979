"""Lab integration: one fresh Debian 13 (trixie) node, the NVIDIA stack, verify, no changes.

The node image is built from trixie packages (``lab up --os debian13``; apt 3.0, python3
3.13); the NVIDIA stack (driver with fabric manager and NSCQ, CUDA, container toolkit,
DCGM and its exporter) installs from the mirror's debian13 repository (the lab
inventory's ``{distro}`` URL), a reboot loads the driver, the verify suites pass and a
second run changes nothing. One hgx-h100-8x node (NVSwitch). The serving roles are left
out here: the lab's wheelhouses and its CPU torch build are made for Debian 12's
Python 3.11 (the node package itself is tested on 3.13 by tests/unit/test_node_interpreters.py).
"""

from __future__ import annotations

import json
import os
import sys
from functools import partial
from pathlib import Path

import pytest

from lab.testing import changed_by_host, fleet_run

pytestmark = pytest.mark.lab

BIN = Path(sys.executable).parent
FLEET = os.environ.get("DEEPSEEK_LAB_FLEET", "d13")
OS_ENV = {"DEEPSEEK_LAB_OS": "debian13"}

run = partial(fleet_run, FLEET, timeout=1800, env=OS_ENV)


def lab(*args: str):
    return run(str(BIN / "python"), "-m", "lab", *args)


def pyinfra_json(inventory: str, deploy: str) -> dict:
    result = run(str(BIN / "pyinfra"), "-y", "--json", inventory, deploy)
    return json.loads(result.stdout[result.stdout.index("{"):])


@pytest.fixture(scope="module")
def node():
    up = lab("up", "1", "--profile", "hgx-h100-8x", "--os", "debian13", "--recreate")
    names = [line.split("\t")[0] for line in up.stdout.splitlines() if "\t" in line]
    assert len(names) == 1, f"lab up 1 --os debian13: expected one node, found {up.stdout}"
    yield names[0]
    lab("down")


def test_node_runs_debian13(node):
    release = run("docker", "exec", node, "cat", "/etc/os-release").stdout
    assert 'VERSION_ID="13"' in release and "trixie" in release, release
    python = run("docker", "exec", node, "python3", "-c", "import sys; print(sys.version_info[:2])").stdout
    assert python.strip() == "(3, 13)", python


STACK = ("deploy/nvidia_driver.py", "deploy/cuda.py", "deploy/docker.py", "deploy/exporters.py")
SUITES = ("tests/verify/nvidia_driver", "tests/verify/cuda", "tests/verify/docker")


def test_nvidia_stack_deploys_verifies_and_changes_nothing(node):
    for deploy in STACK:
        first = pyinfra_json("inventories/lab.py", deploy)
        assert first["results"]["totals"]["error"] == 0, json.dumps(first["results"], indent=1)[-4000:]
    # The node's NVIDIA source is the mirror's debian13 repository, signed by the mirror key.
    sources = run("docker", "exec", node, "cat", "/etc/apt/sources.list.d/deepseek-nvidia.sources").stdout
    assert "/compute/cuda/repos/debian13/x86_64/" in sources, sources
    lab("reboot", node)  # the installed driver "module" loads, as after a real reboot
    for deploy in STACK:  # services start, reboot-required clears
        pyinfra_json("inventories/lab.py", deploy)
    verify = run(str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", *SUITES, f"--hosts=docker://{node}",
                 check=False)
    assert verify.returncode == 0, f"verify suites failed on Debian 13:\n{verify.stdout[-6000:]}"
    for deploy in STACK:
        second = pyinfra_json("inventories/lab.py", deploy)
        assert changed_by_host(second) == {}, f"second {deploy} changed: {changed_by_host(second)}"
