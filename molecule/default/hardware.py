"""Simulated hardware for the Molecule instances (the lab's, from lab/hwsim).

    python molecule/default/hardware.py render   # before create: /proc files, overlays
    python molecule/default/hardware.py copy     # after create: overlay into each node

Each instance's profile is its ``deepseek-lab.profile`` label in molecule.yml; files go
under .lab/molecule/<instance>/ (the lab's git-ignored state directory). The /proc files
are bind-mounted read-only by molecule.yml's volumes, exactly as lab/fleet.py mounts them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from lab import hwsim  # noqa: E402

SCENARIO = Path(__file__).resolve().parent
STATE = REPO / ".lab" / "molecule"
PROFILE_LABEL = "deepseek-lab.profile"


def platforms() -> dict[str, str]:
    """Instance name -> hardware profile, from molecule.yml."""
    config = yaml.safe_load((SCENARIO / "molecule.yml").read_text())
    return {platform["name"]: platform["labels"][PROFILE_LABEL] for platform in config["platforms"]}


def render() -> None:
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


if __name__ == "__main__":
    {"render": render, "copy": copy}[sys.argv[1]]()
