"""Simulated hardware for the Molecule instances (the lab's, from lab/hwsim).

    python molecule/default/hardware.py render    # before create: /proc files, overlays
    python molecule/default/hardware.py copy      # after create: overlay into each node
    python molecule/default/hardware.py services  # after copy: the fleet's mirrors, the tiny model
    python molecule/default/hardware.py down      # cleanup: remove the fleet's mirrors

Each instance's profile is its ``deepseek-lab.profile`` label in molecule.yml; files go
under .lab/molecule/<instance>/ (the lab's git-ignored state directory). The /proc files
are bind-mounted read-only by molecule.yml's volumes, exactly as lab/fleet.py mounts them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).resolve().parent
STATE = REPO / ".lab" / "molecule"
PROFILE_LABEL = "deepseek-lab.profile"
FLEET_LABEL = "deepseek-lab.node"


def _config() -> dict:
    return yaml.safe_load((SCENARIO / "molecule.yml").read_text())


# The lab modules read the fleet's name when imported: the instances' fleet label decides it.
os.environ["DEEPSEEK_LAB_FLEET"] = _config()["platforms"][0]["labels"][FLEET_LABEL]
sys.path.insert(0, str(REPO))

from lab import fleet, hwsim  # noqa: E402
from lab.constants import DATA_VOLUME, FLEET, NETWORK  # noqa: E402


def platforms() -> dict[str, str]:
    """Instance name -> hardware profile, from molecule.yml."""
    return {platform["name"]: platform["labels"][PROFILE_LABEL] for platform in _config()["platforms"]}


def check_platforms() -> None:
    """molecule.yml repeats what lab/fleet.py does for a node; refuse when they drift apart."""
    for platform in _config()["platforms"]:
        name, profile = platform["name"], platform["labels"][PROFILE_LABEL]
        if platform["labels"][FLEET_LABEL] != FLEET:
            raise SystemExit(f"{name}: label {FLEET_LABEL}: expected {FLEET!r}, found {platform['labels'][FLEET_LABEL]!r}")
        networks = [network["name"] for network in platform.get("networks") or []]
        if networks != [NETWORK]:
            raise SystemExit(f"{name}: networks: expected [{NETWORK!r}], found {networks}")
        size = fleet.data_volume_bytes(hwsim.load_profile(profile))
        wanted = f"{DATA_VOLUME}:size={size}"
        if wanted not in (platform.get("tmpfs") or []):
            raise SystemExit(f"{name}: tmpfs: expected {wanted!r} ({profile}'s data volume), found {platform.get('tmpfs')}")


def render() -> None:
    check_platforms()
    for name, profile in platforms().items():
        node_dir = STATE / name
        shutil.rmtree(node_dir, ignore_errors=True)
        hwsim.render_node_overlay(profile, node_dir / "overlay")
        mounts = hwsim.proc_overrides(profile, node_dir / "proc")
        expected = {f"/proc/{target}": node_dir / "proc" / target for target in ("meminfo", "cpuinfo")}
        if mounts != expected:  # molecule.yml lists these mounts; they must not drift apart
            raise SystemExit(f"{name}: lab.hwsim.proc_overrides now returns {sorted(mounts)}; update molecule.yml volumes")
        print(f"{name}: {profile}: {hwsim.profile_summary(profile)}")


def copy(timeout_s: float = 90) -> None:
    for name in platforms():
        subprocess.run(["docker", "cp", f"{STATE / name / 'overlay'}/.", f"{name}:/"], check=True)
        deadline, state = time.monotonic() + timeout_s, ""
        while time.monotonic() < deadline:
            result = subprocess.run(["docker", "exec", name, "systemctl", "is-system-running"],
                                    capture_output=True, text=True)
            state = result.stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        else:
            raise SystemExit(f"{name}: systemd did not finish booting within {timeout_s:.0f}s (state {state!r})")
        print(f"{name}: hardware overlay copied, systemd {state}")


def services() -> None:
    """What `python -m lab up` starts besides the nodes: the NVIDIA package mirror, the weights mirror,
    and the engine's tiny checkpoint on every instance (lab/fleet.py ``up``)."""
    from lab import mirror, tiny_model, weights_mirror

    mirror.up()
    weights_mirror.up()
    checkpoint = tiny_model.build()
    for name in platforms():
        tiny_model.place(name, checkpoint)


def down() -> None:
    """Remove the fleet's mirrors (before destroy, which removes the instances and network)."""
    from lab import mirror, weights_mirror

    weights_mirror.down()
    mirror.down()


if __name__ == "__main__":
    {"render": render, "copy": copy, "services": services, "down": down}[sys.argv[1]]()
