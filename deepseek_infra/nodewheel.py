"""The ``deepseek-node`` wheel: the one way the collection's Python reaches a node.

Built on the controller from ``node/deepseek_node`` (every ``.py`` file, recursively) with
the metadata of ``node/pyproject.toml`` (name, version, Requires-Python, one extra per
component, console scripts), without a build backend. Byte-for-byte reproducible (sorted
entries, fixed timestamps and modes): the same code gives the same wheel, whose sha256 the
venv marker records (``deepseek_infra.operations.venv``), so an unchanged node side
installs nothing. Each component's fully pinned lock is ``node/locks/<extra>.txt``.

Pure module (no pyinfra): unit-tested on its own.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import re
import shutil
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import deepseek_node
from deepseek_infra.runcache import cached, run_cache

if TYPE_CHECKING:
    from pyinfra.api.state import State

PACKAGE_DIR = Path(deepseek_node.__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent  # node/
PYPROJECT = PROJECT_DIR / "pyproject.toml"
LOCKS_DIR = PROJECT_DIR / "locks"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
_WHEEL = "Wheel-Version: 1.0\nGenerator: deepseek-infra\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


@dataclass(frozen=True, slots=True)
class Project:
    """What node/pyproject.toml says about the distribution."""

    name: str  # "deepseek-node"
    version: str
    summary: str
    requires_python: str
    dependencies: tuple[str, ...]
    extras: dict[str, tuple[str, ...]]  # extra -> its requirements
    scripts: dict[str, str]  # console script -> "module:function"

    @property
    def dist_name(self) -> str:
        """The name in file names and imports: ``deepseek_node``."""
        return re.sub(r"[-_.]+", "_", self.name)

    @property
    def wheel_name(self) -> str:
        return f"{self.dist_name}-{self.version}-py3-none-any.whl"

    def requirement(self, *extras: str) -> str:
        """The pip requirement installing this version with ``extras``: ``deepseek-node[gateway]==0.2.0``."""
        unknown = sorted(set(extras) - set(self.extras))
        if unknown:
            raise ValueError(f"{PYPROJECT}: no extra {', '.join(unknown)}; found {', '.join(sorted(self.extras))}")
        listed = f"[{','.join(extras)}]" if extras else ""
        return f"{self.name}{listed}=={self.version}"


@cache
def load_project(pyproject: Path = PYPROJECT) -> Project:
    """Parse node/pyproject.toml's ``[project]`` table."""
    table = tomllib.loads(pyproject.read_text())["project"]
    return Project(
        name=table["name"], version=table["version"], summary=table.get("description", ""),
        requires_python=table.get("requires-python", ""), dependencies=tuple(table.get("dependencies", ())),
        extras={extra: tuple(reqs) for extra, reqs in table.get("optional-dependencies", {}).items()},
        scripts=dict(table.get("scripts", {})),
    )


def lock(extra: str) -> tuple[str, ...]:
    """The fully pinned requirement lines of ``node/locks/<extra>.txt`` (comments dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in (LOCKS_DIR / f"{extra}.txt").read_text().splitlines())
    return tuple(line for line in lines if line)


def sources(package_dir: Path = PACKAGE_DIR) -> dict[str, bytes]:
    """``deepseek_node/<path>.py`` -> content, for every module of the package, sorted."""
    return {
        f"{package_dir.name}/{path.relative_to(package_dir).as_posix()}": path.read_bytes()
        for path in sorted(package_dir.rglob("*.py"))
        if "__pycache__" not in path.relative_to(package_dir).parts
    }


def metadata(project: Project) -> str:
    """The wheel's METADATA (core metadata 2.1)."""
    lines = ["Metadata-Version: 2.1", f"Name: {project.name}", f"Version: {project.version}",
             f"Summary: {project.summary}"]
    if project.requires_python:
        lines.append(f"Requires-Python: {project.requires_python}")
    lines += [f"Requires-Dist: {requirement}" for requirement in project.dependencies]
    for extra, requirements in project.extras.items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {requirement}; extra == "{extra}"' for requirement in requirements]
    return "\n".join(lines) + "\n"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(destination: str | Path, project: Project | None = None) -> Path:
    """Write the wheel into ``destination`` and return its path."""
    project = project or load_project()
    dist_info = f"{project.dist_name}-{project.version}.dist-info"
    entries = dict(sources())
    entries[f"{dist_info}/METADATA"] = metadata(project).encode()
    entries[f"{dist_info}/WHEEL"] = _WHEEL.encode()
    scripts = "".join(f"{name} = {target}\n" for name, target in sorted(project.scripts.items()))
    entries[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{scripts}".encode()
    entries[f"{dist_info}/top_level.txt"] = f"{PACKAGE_DIR.name}\n".encode()
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries.items())
    entries[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()

    path = Path(destination) / project.wheel_name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def _build_in_temp_dir() -> Path:
    directory = tempfile.mkdtemp(prefix="deepseek-node-wheel-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return build_wheel(directory)


def wheel_for_run(state: State) -> Path:
    """The wheel of this run's code, built once per run (in a temporary directory) for all hosts."""
    return cached(run_cache(state, "nodewheel.wheel"), "wheel", _build_in_temp_dir)
