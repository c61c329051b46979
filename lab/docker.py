"""Docker for the lab: use the user's daemon, or run a private one when none answers.

On a fresh Debian machine as root (CI, a new workstation) no daemon runs. Then the lab
installs docker.io if needed, starts its own ``dockerd`` on the default socket (so that
``pyinfra @docker/...`` and ``testinfra docker://...`` find it unchanged) and remembers
that it did, so ``python -m lab down`` stops only a daemon the lab started.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path


class LabError(RuntimeError):
    """The lab cannot do what was asked; the message says why and what to do."""


def run(args: list[str], *, check: bool = True, capture: bool = True, input: bytes | None = None,
        timeout: float | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=capture, input=input, timeout=timeout)
    if check and result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip() if capture else ""
        raise LabError(f"`{' '.join(args)}` failed with exit {result.returncode}: {stderr}")
    return result


def docker(*args: str, check: bool = True, input: bytes | None = None) -> str:
    return run(["docker", *args], check=check, input=input).stdout.decode(errors="replace")


def daemon_answers() -> bool:
    if not shutil.which("docker"):
        return False
    return run(["docker", "info", "--format", "{{json .ServerVersion}}"], check=False).returncode == 0


def _apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        result = subprocess.run(args, env=env, capture_output=True)
        if result.returncode != 0:
            raise LabError(f"`{' '.join(args)}` failed: {result.stderr.decode(errors='replace')[-2000:]}")


def ensure_tools(*commands_to_packages: tuple[str, str]) -> None:
    """Install missing host tools from Debian packages when running as root."""
    missing = [package for command, package in commands_to_packages if not shutil.which(command)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise LabError(f"missing host packages {', '.join(missing)}: install them (the lab does so only as root)")
    _apt_install(*missing)


def ensure_daemon(state_dir: Path, timeout_s: float = 60) -> None:
    """Make sure a Docker daemon answers, starting a private one when allowed."""
    if daemon_answers():
        return
    if os.geteuid() != 0:
        raise LabError("no Docker daemon answers: start Docker, or run the lab as root to let it start its own")
    ensure_tools(("docker", "docker.io"), ("dockerd", "docker.io"))
    state_dir.mkdir(parents=True, exist_ok=True)
    log = open(state_dir / "dockerd.log", "ab")
    process = subprocess.Popen(
        ["dockerd", "--pidfile", str(state_dir / "dockerd.pid")],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    (state_dir / "dockerd.started-by-lab").write_text(json.dumps({"pid": process.pid}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LabError(f"dockerd exited with {process.returncode}; see {state_dir / 'dockerd.log'}")
        if daemon_answers():
            return
        time.sleep(0.5)
    raise LabError(f"dockerd did not answer within {timeout_s:.0f}s; see {state_dir / 'dockerd.log'}")


def stop_private_daemon(state_dir: Path, timeout_s: float = 30) -> bool:
    """Stop the dockerd the lab started (never the user's own); True when one was stopped."""
    marker = state_dir / "dockerd.started-by-lab"
    if not marker.exists():
        return False
    pid = json.loads(marker.read_text())["pid"]
    try:
        os.kill(pid, 15)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.3)
    except ProcessLookupError:
        pass
    marker.unlink()
    return True
