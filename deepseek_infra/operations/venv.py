"""The one way a node gets a Python environment: ``pinned_venv``.

Every component (weights tool, gateway, engine, engine health tool) runs from its own venv
holding pinned requirements and the ``deepseek-node`` wheel (deepseek_infra/nodewheel.py)
with that component's extra. What a venv holds is recorded in its marker file
``<venv>/deepseek-requirements.txt`` (the requirement lines, then the sha256 of each local
wheel), written only after pip succeeded: an unchanged venv costs one round trip (reading
the marker), a failed install is retried by the next run.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Sequence
from functools import lru_cache
from io import StringIO
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import FileUploadCommand, OperationValueError, QuoteString, StringCommand, operation
from pyinfra.facts.files import FileContents

from deepseek_infra.facts.host import remembered_fact

MARKER = "deepseek-requirements.txt"  # inside the venv: what was installed there last
PIP_OPTIONS = ("install", "--quiet", "--no-input", "--disable-pip-version-check", "--no-cache-dir")


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_sha256(path: str | Path) -> str:
    stat = os.stat(path)
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def marker_text(requirements: Sequence[str], wheels: Sequence[str | Path] = ()) -> str:
    """What ``<venv>/deepseek-requirements.txt`` holds once the venv is installed.

    >>> marker_text(["cryptography==46.0.3"])
    'cryptography==46.0.3\\n'
    """
    lines = [*requirements, *(f"# {Path(w).name} sha256={wheel_sha256(w)}" for w in wheels)]
    return "".join(f"{line}\n" for line in lines)


def dist_dir(path: str) -> str:
    """Where ``pinned_venv`` pushes the local wheels of the venv at ``path``: ``dist`` beside it.

    >>> dist_dir("/opt/deepseek/gateway/venv")
    '/opt/deepseek/gateway/dist'
    """
    return posixpath.join(posixpath.dirname(path.rstrip("/")), "dist")


def venv_current(path: str, requirements: Sequence[str], wheels: Sequence[str | Path] = ()) -> bool:
    """Does the venv at ``path`` already hold ``requirements`` and ``wheels``? One marker read,
    remembered for the run: a role asks before pushing a wheelhouse (only an install needs
    it), and ``pinned_venv`` reuses the reading."""
    have = remembered_fact(host, FileContents, path=f"{path}/{MARKER}")
    return have is not None and "".join(f"{line}\n" for line in have) == marker_text(requirements, wheels)


@operation()
def pinned_venv(path: str, requirements: Sequence[str], wheelhouse: str | None = None,
                index_url: str | None = None, wheels: Sequence[str | Path] = (),
                python: str = "/usr/bin/python3", no_deps: bool = False):
    """
    Ensure the venv at ``path`` holds the pinned ``requirements`` and local ``wheels``.

    + path: the venv's directory (created with ``python -m venv`` when missing)
    + requirements: pinned lines, e.g. ``deepseek-node[gateway]==0.2.0`` and its lock
    + wheelhouse: node directory of wheels: installed with ``--no-index --find-links``
    + index_url: internal package index (``--index-url``) instead of a wheelhouse; neither:
      pip's own configuration on the node
    + wheels: controller paths of local wheels (the node wheel): pushed to ``dist`` beside
      the venv only when installing, found there with ``--find-links`` (so
      ``deepseek-node[extra]`` resolves its extra), their sha256 recorded in the marker
    + python: interpreter the venv is created from
    + no_deps: the requirements are a complete lock: pip installs exactly them (``--no-deps``),
      nothing their metadata asks for beyond it

    No-op (no command) when ``<path>/deepseek-requirements.txt`` already says exactly this;
    otherwise pip runs and the marker is written after it succeeded.

    **Example:**

    .. code:: python

        venv.pinned_venv(path="/opt/deepseek/gateway/venv", requirements=["deepseek-node[gateway]==0.2.0",
                         *nodewheel.lock("gateway")], wheelhouse="/opt/deepseek/gateway/wheelhouse",
                         wheels=[nodewheel.wheel_for_run(host.state)])
    """
    requirements, wheels = tuple(requirements), tuple(str(w) for w in wheels)
    if wheelhouse and index_url:
        raise OperationValueError(f"{host.name}: {path}: expected a wheelhouse or an index URL, found both")
    if venv_current(path, requirements, wheels):
        host.noop(f"{path} holds {len(requirements)} pinned requirement(s) and {len(wheels)} local wheel(s)")
        return
    # Only pip's own configuration when the site gave no source: a given source is the only one.
    env: list[Any] = ["PIP_CONFIG_FILE=/dev/null"] if wheelhouse or index_url else []
    pip = QuoteString(f"{path}/bin/pip")
    yield StringCommand("test", "-x", QuoteString(f"{path}/bin/python"), "||",
                        QuoteString(python), "-m", "venv", QuoteString(path))
    sources: list[Any] = []
    if wheels:
        dist = dist_dir(path)
        yield StringCommand("rm", "-rf", QuoteString(dist), "&&", "install", "-d", "-m", "0755", QuoteString(dist))
        for wheel in wheels:
            yield FileUploadCommand(wheel, f"{dist}/{Path(wheel).name}")
        # The same version rebuilt from other code: pip would call it installed already.
        yield StringCommand(*env, pip, *PIP_OPTIONS, "--no-deps", "--force-reinstall", "--no-index",
                            *(QuoteString(f"{dist}/{Path(w).name}") for w in wheels))
        if wheelhouse != dist:
            sources += ["--find-links", QuoteString(dist)]
    if wheelhouse:
        sources += ["--no-index", "--find-links", QuoteString(wheelhouse)]
    elif index_url:
        sources += ["--index-url", QuoteString(index_url)]
    yield StringCommand(*env, pip, *PIP_OPTIONS, *(["--no-deps"] if no_deps else []), *sources,
                        *(QuoteString(r) for r in requirements))
    marker = f"{path}/{MARKER}"
    yield FileUploadCommand(StringIO(marker_text(requirements, wheels)), marker)
    yield StringCommand("chmod", "0644", QuoteString(marker))  # readable like the venv itself
