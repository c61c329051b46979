"""Shared fixtures of the verify suites. They run unchanged against lab containers and
real hosts: `pytest tests/verify --hosts=docker://ds-node-1` or `--hosts=ssh://user@host`.

Expected values come from the same role defaults and path constants the deploy used.
"""

from __future__ import annotations

import json

import pytest

from deepseek_node import paths


@pytest.fixture(scope="module")
def in_container(host) -> bool:
    """True when the host is a container: kernel-level checks are skipped there, with a reason."""
    return host.run("systemd-detect-virt --container").rc == 0


@pytest.fixture(scope="module")
def node_facts(host) -> dict:
    facts_file = host.file(paths.NODE_FACTS_FILE)
    if not facts_file.exists:
        pytest.fail(f"{host.backend.hostname}: {paths.NODE_FACTS_FILE}: expected the node facts file, found none")
    return json.loads(facts_file.content_string)


@pytest.fixture(scope="session")
def controller_wheel(tmp_path_factory) -> tuple[str, str]:
    """(file name, sha256) of the deepseek-node wheel this checkout builds (byte-reproducible:
    the deploy built the same bytes from the same code)."""
    from deepseek_infra import nodewheel
    from deepseek_infra.operations.venv import wheel_sha256

    wheel = nodewheel.build_wheel(tmp_path_factory.mktemp("node-wheel"))
    return wheel.name, wheel_sha256(wheel)


@pytest.fixture(scope="module")
def node_venv(host, controller_wheel):
    """Check that the venv at a path holds this checkout's deepseek-node: the marker records
    the controller's wheel, and the venv's python imports that version from the venv."""
    from deepseek_infra.operations.venv import MARKER

    def check(venv: str) -> None:
        import deepseek_node

        where = f"{host.backend.hostname}: {venv}"
        name, sha256 = controller_wheel
        marker = host.file(f"{venv}/{MARKER}")
        assert marker.exists, f"{where}/{MARKER}: expected the install marker, found none"
        recorded = [line for line in marker.content_string.splitlines() if line.startswith(f"# {name} ")]
        assert recorded == [f"# {name} sha256={sha256}"], f"{where}: expected {name} sha256={sha256} (this checkout), found {recorded}"
        probe = host.run(f"{venv}/bin/python -c 'import deepseek_node; print(deepseek_node.__version__, deepseek_node.__file__)'")
        found = probe.stdout.split()
        assert probe.rc == 0 and found[:1] == [deepseek_node.__version__] and found[1].startswith(f"{venv}/"), (
            f"{where}: expected deepseek-node {deepseek_node.__version__} installed in the venv, found {probe.stdout or probe.stderr}")

    return check
