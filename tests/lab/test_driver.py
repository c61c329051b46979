"""Lab integration: the NVIDIA driver against a mirror shaped like NVIDIA's repository.

One NVSwitch node (hgx-h100-8x). The mirror serves R550 and two R580 releases with the
dependency shapes of Debian's real control files, so:
- an old pin (550.90.12) installs while newer releases are present, because the source-wide
  pin holds the packages nobody names; without it apt fails as it does against NVIDIA's
  repository ("held broken packages", finding 1 of ../shared/reference/nvidia-repositories.md);
- the switch R550 -> R580 renames fabric manager and NSCQ (finding 3) in one transaction,
  the host is marked reboot-required, and a second run changes nothing.
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
FLEET = os.environ.get("DEEPSEEK_LAB_FLEET", "drv")
R550 = ["--data", "nvidia_driver_branch=550", "--data", "nvidia_driver_version=550.90.12"]
run = partial(fleet_run, FLEET, timeout=1200)


def pyinfra(*args: str, check: bool = True):
    return run(str(BIN / "pyinfra"), "-y", "--json", "inventories/lab.py", "deploy/nvidia_driver.py", *args,
               check=check)


def changed(result) -> list[str]:
    report = json.loads(result.stdout[result.stdout.index("{"):])
    return [op["name"] for op in report["results"]["operations"] if op["success"]]


def dpkg(node: str) -> dict[str, str]:
    out = run("docker", "exec", node, "dpkg-query", "-W", "-f=${Package}\t${Version}\t${db:Status-Abbrev}\n").stdout
    return {name: version for name, version, status in (line.split("\t") for line in out.splitlines())
            if status.startswith("ii") or status.startswith("hi")}


def verify(node: str, driver: str) -> None:
    result = run(str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "tests/verify/nvidia_driver",
                 f"--hosts=docker://{node}", check=False, env={"DEEPSEEK_NVIDIA_DRIVER_VERSION": driver})
    assert result.returncode == 0, f"driver verify at {driver} failed:\n{result.stdout[-5000:]}"


@pytest.fixture(scope="module")
def node():
    up = run(str(BIN / "python"), "-m", "lab", "up", "1", "--profile", "hgx-h100-8x", "--recreate")
    names = [line.split("\t")[0] for line in up.stdout.splitlines() if "\t" in line]
    assert len(names) == 1, up.stdout
    yield names[0]
    run(str(BIN / "python"), "-m", "lab", "down", check=False)


def test_an_old_pin_installs_while_newer_releases_are_in_the_repository(node):
    pyinfra("--limit", f"@docker/{node}", *R550)
    installed = dpkg(node)
    for name in ("nvidia-driver-cuda", "nvidia-kernel-open-dkms", "nvidia-fabricmanager-550", "libnvidia-nscq-550",
                 "nvidia-alternative", "firmware-nvidia-gsp", "libnvidia-ptxjitcompiler1"):
        assert installed.get(name) == "550.90.12-1", f"{node}: {name}: expected 550.90.12-1, found {installed.get(name)}"
    assert "xserver-xorg-video-nvidia" not in installed, f"{node}: compute-only set pulled the Xorg driver"
    newer = run("docker", "exec", node, "apt-cache", "madison", "nvidia-alternative").stdout
    assert "580.105.08-1" in newer, f"{node}: the mirror should carry a newer release:\n{newer}"
    verify(node, "550.90.12")


def test_without_the_source_pin_apt_fails_as_against_nvidias_repository(node):
    """The negative control: the mirror really has the shape that breaks name-only pins."""
    simulate = ["docker", "exec", node, "apt-get", "install", "-s", "-q", "nvidia-driver=550.90.12-1"]
    unpinned = run(*simulate[:4], "-o", "Dir::Etc::Preferences=/dev/null",
                   "-o", "Dir::Etc::PreferencesParts=/nonexistent", *simulate[4:], check=False)
    output = unpinned.stdout + unpinned.stderr
    assert unpinned.returncode != 0 and "held broken packages" in output, output[-3000:]
    assert "Depends: nvidia-driver-libs (= 550.90.12-1) but" in output, output[-3000:]
    pinned = run(*simulate, check=False)
    assert pinned.returncode == 0, (pinned.stdout + pinned.stderr)[-3000:]


def test_branch_switch_r550_to_r580_renames_fabric_manager_and_nscq(node):
    switch = pyinfra("--limit", f"@docker/{node}")  # the defaults: R580, 580.95.05
    output = switch.stdout + switch.stderr
    assert "held broken packages" not in output
    installed = dpkg(node)
    for name in ("nvidia-fabricmanager", "libnvidia-nscq", "nvidia-smi", "nvidia-alternative", "firmware-nvidia-gsp"):
        assert installed.get(name) == "580.95.05-1", f"{node}: {name}: expected 580.95.05-1, found {installed.get(name)}"
    assert not {"nvidia-fabricmanager-550", "libnvidia-nscq-550"} & set(installed), f"{node}: suffixed R550 packages left"
    held = run("docker", "exec", node, "apt-mark", "showhold").stdout.split()
    assert {"nvidia-fabricmanager", "libnvidia-nscq", "nvidia-driver-cuda"} <= set(held), held
    assert "nvidia-alternative" not in held, "held a package that is pinned by source only"
    reasons = run("docker", "exec", node, "cat", "/var/lib/deepseek/state/reboot-required.d/nvidia-driver.json").stdout
    assert "580.95.05" in reasons, f"{node}: reboot-required: expected the new driver named, found {reasons!r}"
    assert changed(pyinfra("--limit", f"@docker/{node}")) == [], "a second switch run changed something"


def test_after_the_reboot_the_r580_stack_verifies(node):
    run(str(BIN / "python"), "-m", "lab", "reboot", node)
    # the boot loads the installed module; the services enabled by the switch start with it
    run("docker", "exec", node, "sh", "-c",
        "for i in $(seq 60); do systemctl is-active -q nvidia-persistenced nvidia-fabricmanager && exit 0; sleep 1; "
        "done; systemctl status nvidia-persistenced nvidia-fabricmanager; exit 1")
    pyinfra("--limit", f"@docker/{node}")  # clears reboot-required now that the module matches
    verify(node, "580.95.05")
    user = run("docker", "exec", node, "sh", "-c",
               "ps -o user= -p $(systemctl show -p MainPID --value nvidia-persistenced)", check=False).stdout
    assert "nvpd" in user, f"{node}: nvidia-persistenced: expected to run as nvpd (--user nvpd), found {user!r}"
