"""The node side on the python3 each supported distribution ships, installed as hosts get it.

Every node venv is created from the distribution's ``/usr/bin/python3``
(``deepseek_infra.operations.venv.pinned_venv``): Ubuntu 22.04 has 3.10, Debian 12 3.11,
Ubuntu 24.04 3.12, Debian 13 3.13. For each, a fresh venv gets what a host gets: the node
wheel the collection builds (``deepseek_infra.nodewheel``), installed the way the roles install
it (the wheel alone, then ``deepseek-node[<extras>]==<version>`` with the pinned locks of
node/locks, so pip also checks that the extras agree with the locks on that interpreter), plus
pytest; then the node-side unit tests (tests/unit/deepseek_node) run against that installed
wheel, not the source tree.

Not run here: the transformers engine's own test (engine_server/test_app.py), which needs
torch and transformers (serve_transformers_requirements, a separate venv); the main suite runs
it on the controller's interpreter.

Venvs are kept under ``.lab/node-python/<version>-<key>``, the key hashing the wheel, the
requirements and the interpreter: an unchanged node side costs only the test run. An
interpreter is looked for in ``$DEEPSEEK_NODE_PYTHON_<major>_<minor>``, then
``$PYENV_ROOT/versions/<version>.*`` (default /root/.pyenv), then ``python<version>`` on PATH.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import re
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import hypothesis
import pytest

from deepseek_infra import nodewheel

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".lab" / "node-python"
# The python3 of each supported distribution.
DISTRIBUTION_PYTHON = {"Ubuntu 22.04": "3.10", "Debian 12": "3.11", "Ubuntu 24.04": "3.12", "Debian 13": "3.13"}
EXTRAS = ("weights", "gateway", "gateway-postgresql")  # every component but the transformers engine
NODE_TESTS = "tests/unit/deepseek_node"
NOT_RUN = ("tests/unit/deepseek_node/engine_server/test_app.py",)  # torch + transformers: see above
PYTEST = f"pytest=={pytest.__version__}"
HYPOTHESIS = f"hypothesis=={hypothesis.__version__}"  # the node fuzz targets run on every interpreter too


def candidates(version: str) -> list[str]:
    """Where the interpreter of ``version`` is looked for, in order (globs allowed)."""
    variable = f"DEEPSEEK_NODE_PYTHON_{version.replace('.', '_')}"
    pyenv = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
    on_path = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and "shims" not in Path(d).parts]
    return [*([os.environ[variable]] if os.environ.get(variable) else []),
            str(pyenv / f"{version}.*" / "bin" / "python3"),
            *(str(Path(d) / f"python{version}") for d in on_path)]


def interpreter(version: str) -> Path:
    """The python3 of ``version``, checked to be that version; a missing one fails the test."""
    for pattern in candidates(version):
        for found in sorted(glob.glob(pattern), key=lambda p: [int(n) for n in re.findall(r"\d+", p)], reverse=True):
            probe = subprocess.run([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                   capture_output=True, text=True)
            if probe.returncode == 0 and probe.stdout.strip() == version:
                return Path(found)
    variable = f"DEEPSEEK_NODE_PYTHON_{version.replace('.', '_')}"
    shipped_by = ", ".join(d for d, v in DISTRIBUTION_PYTHON.items() if v == version)
    pytest.fail(f"Python {version} (the python3 of {shipped_by}): no interpreter found; looked at "
                f"{'' if os.environ.get(variable) else f'${variable} (unset), '}{', '.join(candidates(version))}. "
                f"Install it (pyenv install {version}) or set ${variable}: the node code is tested on the python3 hosts ship.")


def run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)


def requirements() -> list[str]:
    """What a host's venv is asked for: the node wheel with the extras, then their locks."""
    project = nodewheel.load_project()
    return [project.requirement(*EXTRAS), *(line for extra in EXTRAS for line in nodewheel.lock(extra))]


def node_venv(version: str, wheel: Path) -> Path:
    """A venv of Python ``version`` holding ``wheel`` and ``requirements()``, made once per key."""
    python = interpreter(version)
    wanted = requirements()
    key = hashlib.sha256("\n".join([str(python.resolve()), PYTEST, HYPOTHESIS, *wanted]).encode() + wheel.read_bytes())
    venv = CACHE / f"{version}-{key.hexdigest()[:12]}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{version}.lock", "w") as lock:  # pytest-xdist workers: one builds, the others wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / "ready").is_file():
            return venv
        for stale in CACHE.glob(f"{version}-*"):  # an older node side's venv
            shutil.rmtree(stale, ignore_errors=True)
        pip = [venv / "bin/python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        # As pinned_venv does: the wheel alone, then the requirement with its extras and the locks,
        # the wheel's directory as a source so deepseek-node[...] resolves to it.
        for step in ([python, "-m", "venv", venv],
                     [*pip, "--no-deps", "--no-index", wheel],
                     [*pip, "--find-links", wheel.parent, *wanted, PYTEST, HYPOTHESIS]):
            done = run(*step, timeout=900)
            assert done.returncode == 0, f"Python {version} ({python}): {' '.join(map(str, step))}:\n{done.stderr[-3000:]}"
        (venv / "ready").write_text(f"{wheel.name}\n{python}\n")
    return venv


def test_requires_python_is_the_oldest_distribution_python():
    """node/pyproject.toml's requires-python admits every distribution's python3, and no older one
    than the oldest tested here."""
    declared = tomllib.loads((REPO / "node" / "pyproject.toml").read_text())["project"]["requires-python"]
    assert declared == f">={min(DISTRIBUTION_PYTHON.values(), key=lambda v: tuple(map(int, v.split('.'))))}", declared
    assert nodewheel.load_project().requires_python == declared


@pytest.mark.parametrize("version", sorted(set(DISTRIBUTION_PYTHON.values())))
def test_node_package_passes_its_tests_on(version, tmp_path):
    started = time.monotonic()
    wheel = nodewheel.build_wheel(tmp_path)
    venv = node_venv(version, wheel)
    installed = time.monotonic()
    # In one process: the installed wheel is what the tests import (checked before they run), and
    # -c /dev/null keeps the repository's pytest config (pythonpath: node/) out. PYTHONPATH=REPO
    # only for the tests' helpers (lab.*, the tests' own packages).
    script = ("import sys, deepseek_node, pytest; where = deepseek_node.__file__; "
              "assert where.startswith(sys.argv[1]), f'deepseek_node imported from {where}, not the venv'; "
              "print('deepseek_node from', where, 'on', sys.version.split()[0]); "
              "sys.exit(pytest.main(sys.argv[2:]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST", "VIRTUAL_ENV"))}
    env.update(PYTHONPATH=str(REPO), HOME=str(tmp_path), PYTHONDONTWRITEBYTECODE="1")
    result = run(venv / "bin/python", "-c", script, venv, "-q", "-p", "no:cacheprovider", "-c", os.devnull,
                 "--rootdir", REPO, "--import-mode=importlib", "-rs",
                 *(f"--ignore={path}" for path in NOT_RUN), NODE_TESTS, cwd=REPO, env=env, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"node tests on Python {version} ({venv}):\n{output[-6000:]}"
    assert f"deepseek_node from {venv}" in output and f"on {version}." in output, output[-2000:]
    assert re.search(r"\b\d+ passed\b", output), output[-2000:]
    print(f"Python {version}: venv {installed - started:.1f} s, tests {time.monotonic() - installed:.1f} s")
