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
