"""The node-side package on the interpreters hosts ship: Ubuntu 22.04's python3 is 3.10,
Debian 13's 3.13 (Debian 12's 3.11 runs the rest of the suite, Ubuntu 24.04's is 3.12).

For each, a venv gets what a host gets: the node wheel the collection builds
(``deepseek_infra.nodewheel``), with the pinned locks of the components that interpreter
can run (``node/locks``), and runs their node-side unit tests. On 3.10 that is the core
(paths, the engine health check: standard library only): the weights and gateway locks pin
releases that need Python >= 3.11 (pycparser 3.12, starlette 1.10), so on Ubuntu 22.04
those components need a newer interpreter than the distribution's. The transformers
engine server is left out everywhere but 3.11: its CPU torch build exists here for 3.11
only. Venvs are kept under ``.lab/node-python/`` keyed by the wheel's and locks' hash.
"""

from __future__ import annotations

import glob
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from deepseek_infra import nodewheel

REPO = Path(__file__).resolve().parents[2]
PYENV = Path("/root/.pyenv/versions")
CORE_TESTS = ["tests/unit/deepseek_node/test_engine_health.py"]
# interpreter -> (locks installed, node tests run)
CASES = {
    "3.10": ((), CORE_TESTS),
    "3.13": ((REPO / "node/locks/weights.txt", REPO / "node/locks/gateway.txt"),
             ["tests/unit/deepseek_node/weights", "tests/unit/deepseek_node/gateway", *CORE_TESTS]),
}
PYTEST = f"pytest=={pytest.__version__}"


def interpreter(version: str) -> Path:
    found = sorted(glob.glob(str(PYENV / f"{version}.*" / "bin" / "python3")))
    if not found:
        pytest.fail(f"Python {version}: no interpreter under {PYENV}/{version}.*/bin/python3 "
                    "(the node code must be tested on the python3 hosts ship)")
    return Path(found[-1])


def run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize("version", sorted(CASES))
def test_node_package_passes_its_tests_on(version, tmp_path):
    python = interpreter(version)
    locks, tests = CASES[version]
    wheel = nodewheel.build_wheel(tmp_path)
    key = hashlib.sha256(wheel.read_bytes() + b"".join(p.read_bytes() for p in locks) + PYTEST.encode())
    venv = REPO / ".lab" / "node-python" / f"{version}-{key.hexdigest()[:12]}"
    if not (venv / "ready").is_file():
        venv.parent.mkdir(parents=True, exist_ok=True)
        for step in ([python, "-m", "venv", "--clear", venv],
                     [venv / "bin/python", "-m", "pip", "install", "-q", *[a for p in locks for a in ("-r", p)], PYTEST],
                     [venv / "bin/python", "-m", "pip", "install", "-q", "--no-deps", wheel]):
            done = run(*step, timeout=900)
            assert done.returncode == 0, f"Python {version}: {' '.join(map(str, step))}:\n{done.stderr[-3000:]}"
        (venv / "ready").write_text(wheel.name + "\n")
    where = run(venv / "bin/python", "-c", "import deepseek_node, sys; print(deepseek_node.__file__, sys.version)")
    assert str(venv) in where.stdout, f"Python {version}: deepseek_node not from the installed wheel: {where.stdout}"
    # -c /dev/null: not the repository's pytest config, whose pythonpath would import node/ from source.
    result = run(venv / "bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "/dev/null",
                 "--rootdir", REPO, "--import-mode=importlib", *tests, cwd=REPO, timeout=900,
                 env={"PYTHONPATH": str(REPO), "PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, f"node tests on Python {version} ({python}):\n{result.stdout[-5000:]}"
    assert " passed" in result.stdout and sys.version_info[:2] != tuple(map(int, version.split(".")))
