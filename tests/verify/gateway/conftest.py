"""Fixtures of the gateway verify suite: the configuration the node's gateway runs with."""

from __future__ import annotations

import pytest
import yaml

from deepseek_node.gateway.config import GatewayConfig
from roles.gateway.tasks import CONFIG_FILE


@pytest.fixture(scope="module")
def gateway_config(host) -> GatewayConfig:
    """The node's /etc/deepseek/gateway.yaml, parsed by the gateway's own parser."""
    with host.sudo():
        config_file = host.file(CONFIG_FILE)
        if not config_file.exists:
            pytest.fail(f"{host.backend.hostname}: {CONFIG_FILE}: expected the gateway configuration, found none")
        return GatewayConfig.from_mapping(yaml.safe_load(config_file.content_string))


@pytest.fixture(scope="module")
def local_url(gateway_config) -> str:
    """Base URL of the gateway from the node itself."""
    return f"https://127.0.0.1:{gateway_config.port}"
