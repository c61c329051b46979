"""What the lab integration tests (``tests/lab``) share: a command run against one lab fleet."""

from __future__ import annotations

import os
import subprocess

from lab.constants import REPO_ROOT


def fleet_run(fleet: str, *args: str, check: bool = True, timeout: float = 900, input: str | bytes | None = None,
              text: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``args`` from the repository root with ``DEEPSEEK_LAB_FLEET=fleet`` (plus ``env``);
    unless ``check`` is false, a non-zero exit fails the calling test with the output's tail."""
    result = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=text, input=input, timeout=timeout,
                            env={**os.environ, "DEEPSEEK_LAB_FLEET": fleet, **(env or {})})
    if check and result.returncode != 0:
        import pytest

        stdout, stderr = (result.stdout, result.stderr) if text else (
            result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace"))
        pytest.fail(f"`{' '.join(args)}` exited {result.returncode} (fleet {fleet})\n"
                    f"stdout:\n{stdout[-4000:]}\nstderr:\n{stderr[-4000:]}")
    return result


def changed_by_host(report: dict) -> dict[str, list[str]]:
    """Host -> names of the operations that changed it, from ``pyinfra --json``'s report."""
    changed: dict[str, list[str]] = {}
    for operation in report["results"]["operations"]:
        for host in operation["success"]:
            changed.setdefault(host, []).append(operation["name"])
    return changed
