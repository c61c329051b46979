"""Wheelhouses for air-gapped installs, prepared on the lab host.

A production site gives a role either an internal package index or a directory of wheels
on the controller (its "wheelhouse"); the role pushes the directory and installs with
``pip install --no-index --find-links``. The lab builds such directories with
``pip download`` from whatever index this machine's pip is configured for, once per
requirement set (keyed by a hash of the requirements and the Python version).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from lab.constants import STATE_DIR
from lab.docker import LabError

# Nodes run Debian 12's python3 (3.11) on the same architecture as the lab host.
NODE_PYTHON_VERSION = "3.11"


def wheelhouse(name: str, requirements: Sequence[str], log=print, complete_lock: bool = False) -> Path:
    """Return ``.lab/wheelhouse/<name>`` holding wheels for ``requirements``; download once.

    ``complete_lock``: the requirements are a whole resolved set (lab/locks/): download
    exactly them (``--no-deps``), nothing a package declares beyond the lock."""
    key = hashlib.sha256("\n".join([NODE_PYTHON_VERSION, str(complete_lock), *sorted(requirements)]).encode()).hexdigest()[:16]
    destination = STATE_DIR / "wheelhouse" / name
    marker = destination / ".complete"
    if marker.exists() and marker.read_text().strip() == key:
        return destination
    shutil.rmtree(destination, ignore_errors=True)  # a changed set leaves no stale wheel behind
    destination.mkdir(parents=True)
    log(f"wheelhouse {name}: downloading {len(requirements)} requirement(s)")
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(destination),
        "--only-binary=:all:", "--python-version", NODE_PYTHON_VERSION, *(["--no-deps"] if complete_lock else []),
        *requirements,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise LabError(f"wheelhouse {name}: pip download failed: {result.stderr[-2000:]}")
    marker.write_text(key + "\n")
    return destination


LOCKS_DIR = Path(__file__).with_name("locks")


def lock(name: str) -> tuple[str, ...]:
    """The requirement lines of ``lab/locks/<name>.txt`` (comments and blank lines dropped)."""
    lines = (LOCKS_DIR / f"{name}.txt").read_text().splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
