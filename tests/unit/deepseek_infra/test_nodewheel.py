"""The deepseek-node wheel: reproducible, complete, installable by pip, its metadata and
locks agreeing with node/pyproject.toml."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import deepseek_node
from deepseek_infra import nodewheel
from deepseek_infra.runcache import run_cache
from roles.serve.defaults import TRANSFORMERS_REQUIREMENTS

NODE_DIR = Path(__file__).resolve().parents[3] / "node"
PYPROJECT = tomllib.loads((NODE_DIR / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return nodewheel.build_wheel(tmp_path_factory.mktemp("wheel"))


def dist_info(archive: zipfile.ZipFile) -> str:
    return f"deepseek_node-{PYPROJECT['version']}.dist-info"


def name(requirement: str) -> str:
    """PEP 503 normalised project name of ``name[extras]==version``."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[=<>!~;]", requirement, maxsplit=1)[0].strip()).lower()


def pins(lines) -> dict[str, str]:
    return {name(line): line.split("==", 1)[1].strip() for line in lines}


def test_the_wheel_builds_from_this_checkout(wheel):
    assert nodewheel.PACKAGE_DIR == NODE_DIR / "deepseek_node"
    assert wheel.name == f"deepseek_node-{PYPROJECT['version']}-py3-none-any.whl"
    assert PYPROJECT["version"] == deepseek_node.__version__


def test_wheel_is_byte_for_byte_reproducible(tmp_path, wheel):
    again = nodewheel.build_wheel(tmp_path)
    assert again.read_bytes() == wheel.read_bytes()


def test_every_node_program_file_is_in_the_wheel(wheel):
    """What the nodes run is every Python file of node/deepseek_node (walked here, not listed)."""
    expected = set()
    for directory, subdirectories, names in os.walk(NODE_DIR / "deepseek_node"):
        subdirectories[:] = [d for d in subdirectories if d != "__pycache__"]
        expected |= {Path(directory, n).relative_to(NODE_DIR).as_posix() for n in names if n.endswith(".py")}
    assert "deepseek_node/weights/node.py" in expected and "deepseek_node/gateway/app.py" in expected
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if not n.startswith(dist_info(archive))}
        assert shipped == expected
        for path in expected:
            assert archive.read(path) == (NODE_DIR / path).read_bytes(), path


def test_record_lists_every_entry_with_its_hash(wheel):
    with zipfile.ZipFile(wheel) as archive:
        record = archive.read(f"{dist_info(archive)}/RECORD").decode().splitlines()
        assert {line.split(",")[0] for line in record} == set(archive.namelist())
        for line in record:
            path, digest, size = line.split(",")
            if digest:
                data = archive.read(path)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert (digest, int(size)) == (f"sha256={expected}", len(data)), path


def test_metadata_says_what_node_pyproject_says(wheel):
    with zipfile.ZipFile(wheel) as archive:
        metadata = Parser().parsestr(archive.read(f"{dist_info(archive)}/METADATA").decode())
        entry_points = archive.read(f"{dist_info(archive)}/entry_points.txt").decode()
    assert (metadata["Name"], metadata["Version"]) == (PYPROJECT["name"], PYPROJECT["version"])
    assert metadata["Requires-Python"] == PYPROJECT["requires-python"]
    extras = PYPROJECT["optional-dependencies"]
    assert metadata.get_all("Provides-Extra") == list(extras)
    declared: dict[str, list[str]] = {}
    for line in metadata.get_all("Requires-Dist"):
        requirement, marker = line.split("; extra == ")
        declared.setdefault(marker.strip('"'), []).append(requirement)
    assert declared == {extra: list(requirements) for extra, requirements in extras.items()}
    for script, target in PYPROJECT["scripts"].items():
        assert f"{script} = {target}\n" in entry_points


@pytest.mark.parametrize("script", sorted(PYPROJECT["scripts"]))
def test_each_console_script_names_a_function(script):
    import importlib

    module, _, function = PYPROJECT["scripts"][script].partition(":")
    assert callable(getattr(importlib.import_module(module), function)), PYPROJECT["scripts"][script]


def test_requirement_names_the_version_and_refuses_an_unknown_extra():
    project = nodewheel.load_project()
    assert project.requirement() == f"deepseek-node=={deepseek_node.__version__}"
    assert project.requirement("gateway", "gateway-postgresql") == \
        f"deepseek-node[gateway,gateway-postgresql]=={deepseek_node.__version__}"
    with pytest.raises(ValueError, match="no extra gatway"):
        project.requirement("gatway")


def test_each_extras_pins_are_in_its_lock_at_the_same_version():
    """node/locks/<extra>.txt is what a role installs: it must hold every direct pin of the
    extra (the transformers engine's lock is serve_transformers_requirements, a site choice)."""
    extras = PYPROJECT["optional-dependencies"]
    locks = {path.stem for path in (NODE_DIR / "locks").glob("*.txt")}
    assert locks == set(extras) - {"engine-server"}, "a lock per extra, none without one"
    for extra, direct in extras.items():
        lock = TRANSFORMERS_REQUIREMENTS if extra == "engine-server" else nodewheel.lock(extra)
        assert lock and all(re.fullmatch(r"[A-Za-z0-9._\[\],-]+==\S+", line) for line in lock), f"{extra}: {lock}"
        locked = pins(lock)
        for requirement in direct:
            pinned = requirement.split("==", 1)[1]
            assert locked.get(name(requirement)) == pinned, \
                f"{extra}: {requirement}: expected {name(requirement)}=={pinned} in its lock, found {locked.get(name(requirement))}"
        if "[" in "".join(direct):  # psycopg[binary]: the extra's own distribution is locked too
            assert "psycopg-binary" in locked


def test_pip_installs_it_with_its_console_scripts(tmp_path, wheel):
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                           "--disable-pip-version-check", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    assert done.returncode == 0, done.stderr
    assert (target / "deepseek_node" / "weights" / "node.py").is_file()
    installed = target / f"deepseek_node-{PYPROJECT['version']}.dist-info"
    assert "deepseek-node" in (installed / "METADATA").read_text()
    for script in PYPROJECT["scripts"]:
        assert (target / "bin" / script).is_file(), f"pip wrote no {script} console script"
    # The installed code, alone (no checkout, no editable install), imports and runs.
    probe = ("import sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2]); "
             "import deepseek_node, deepseek_node.gateway.app, deepseek_node.weights.node, deepseek_node.engine_health; "
             "print(deepseek_node.__file__, deepseek_node.gateway.__version__)")
    ran = subprocess.run([sys.executable, "-S", "-c", probe, str(target), sysconfig.get_paths()["purelib"]],
                         capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == [str(target / "deepseek_node" / "__init__.py"), PYPROJECT["version"]]


def test_wheel_is_built_once_per_run():
    class State:  # runcache needs only an object to hang the cache on
        pass

    state = State()
    first = nodewheel.wheel_for_run(state)
    assert nodewheel.wheel_for_run(state) is first and first.is_file()
    assert list(run_cache(state, "nodewheel.wheel").values()) == [first]
    assert nodewheel.wheel_for_run(State()) != first  # another run builds its own
