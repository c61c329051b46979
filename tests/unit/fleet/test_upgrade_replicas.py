"""The rollout driver by replica: upgrade_replicas_cases.py, in a pytest process of its own
(fleet/upgrade.py imports pyinfra_cli, whose gevent patch of the standard library would stay
for the rest of this process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CASES = Path(__file__).with_name("upgrade_replicas_cases.py")


def test_the_rollout_driver_handles_replicas_as_one():
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)],
                            capture_output=True, text=True, cwd=Path(__file__).resolve().parents[3], timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "8 passed" in result.stdout, result.stdout[-2000:]
