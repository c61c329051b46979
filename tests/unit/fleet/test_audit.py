"""The audit program end to end on the controller itself (@local): real pyinfra prepare,
real facts, nothing executed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def audit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "deploy/audit.py", "@local", str(tmp_path / "deploy.py"), *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )


def write_deploy(tmp_path: Path, target: Path) -> None:
    (tmp_path / "deploy.py").write_text(
        "from pyinfra.api import deploy\n"
        "from pyinfra.operations import files\n\n"
        "@deploy('site: dirs')\n"
        "def dirs():\n"
        f"    files.directory(name='Ensure the target is 0750', path={str(target)!r}, mode='0750')\n\n"
        "dirs()\n"
    )


def test_audit_reports_drift_without_changing_anything(tmp_path):
    target = tmp_path / "target"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    write_deploy(tmp_path, target)
    result = audit(tmp_path, "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    drifted = report["hosts"]["@local"]["drifted"]
    assert [(op["role"], op["operation"]) for op in drifted] == [("site: dirs", "Ensure the target is 0750")]
    assert drifted[0]["commands"] == [f"chmod 750 {target}"]
    assert report["roles"]["site: dirs"]["drifted_hosts"] == ["@local"]
    # Audit only reads: the directory keeps the mode it had.
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_audit_is_clean_when_state_matches(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    os.chmod(target, 0o750)
    write_deploy(tmp_path, target)
    result = audit(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("no drift")


def test_refused_as_a_deploy_file():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "pyinfra"), "-y", "@local", "deploy/audit.py"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "is a program, not a deploy file" in result.stdout + result.stderr
