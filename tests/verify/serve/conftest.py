"""Fixtures of the serve suite: what the serve role recorded on the node in engine.json."""

from __future__ import annotations

import json

import pytest

from deepseek_infra import engine


@pytest.fixture(scope="module")
def engine_config(host) -> dict:
    found = host.file(engine.ENGINE_CONFIG_FILE)
    if not found.exists:
        pytest.fail(f"{host.backend.hostname}: {engine.ENGINE_CONFIG_FILE}: expected the serve role's record, found none")
    with host.sudo():
        return json.loads(host.file(engine.ENGINE_CONFIG_FILE).content_string)


@pytest.fixture(scope="module")
def http_engine(host, engine_config) -> dict:
    if not engine_config["listen"]["serves_http"]:
        pytest.skip(f"{host.backend.hostname}: a {engine_config['role']} node of a multi-node replica serves no HTTP")
    return engine_config
