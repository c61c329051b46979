"""The gateway role's controller-side logic: defaults, seed document, software, templates."""

from __future__ import annotations

import ast
import json
import sys
import types
from importlib.resources import files
from pathlib import Path

import jinja2
import pytest
from pydantic import ValidationError

from deepseek_infra import nodewheel
from deepseek_node.gateway import keys as apikeys
from deepseek_node.gateway.config import GatewayConfig
from roles.gateway import tasks as role
from roles import template_path
from roles.deployment import DeploymentDefaults
from roles.gateway.defaults import GatewayDefaults
from roles.gateway.policy import read_keys_file, seed_document, seed_warnings

MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
GATEWAY_SOURCES = Path(files("deepseek_node.gateway"))


@pytest.fixture
def keys_file(tmp_path):
    keys = {"alice": apikeys.generate_key(), "bob": [apikeys.generate_key(), apikeys.generate_key()]}
    path = tmp_path / "keys.yaml"
    path.write_text(json.dumps(keys))
    return path, keys


# -- defaults --------------------------------------------------------------------------------

def test_defaults_are_valid_and_match_the_app():
    defaults = GatewayDefaults()
    config = role.node_config(defaults, DeploymentDefaults())
    assert config.port == defaults.gateway_port == 8443
    assert (config.database_path, config.request_log) == (role.DB_FILE, role.REQUEST_LOG)
    assert (config.database_path, config.request_log) == (GatewayConfig().database_path, GatewayConfig().request_log)
    assert config.upstreams == {DeploymentDefaults().deepseek_model: "http://127.0.0.1:8000"}


def test_keys_file_is_accepted_for_known_users(keys_file):
    path, keys = keys_file
    defaults = GatewayDefaults(gateway_users={"alice": {MODEL: "read"}, "bob": {}}, gateway_keys_file=str(path))
    assert read_keys_file(defaults.gateway_keys_file) == {"alice": [keys["alice"]], "bob": keys["bob"]}


def error_text(**data) -> str:
    with pytest.raises(ValidationError) as caught:
        GatewayDefaults(**data)
    return str(caught.value)


def test_keys_for_unknown_users_are_refused(keys_file):
    path, _ = keys_file
    message = error_text(gateway_users={"alice": {}}, gateway_keys_file=str(path))
    assert "gateway_keys_file" in message and "keys for users not in gateway_users: bob" in message


def test_malformed_key_is_refused_without_showing_it(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text("alice: sk-live-supersecretvalue\n")
    message = error_text(gateway_users={"alice": {}}, gateway_keys_file=str(path))
    assert "alice: key #1 is not a gateway key" in message and "supersecretvalue" not in message


@pytest.mark.parametrize(("data", "field", "fragment"), [
    ({"gateway_users": {"alice": {MODEL: "owner"}}}, "gateway_users", "read"),
    ({"gateway_users": {"al ice": {}}}, "gateway_users", "expected 1-64 letters"),
    ({"gateway_upstreams": {MODEL: "http://127.0.0.1:8000/v1"}}, "gateway_upstreams", "base URL"),
    ({"gateway_engine_url": "127.0.0.1:8000"}, "gateway_engine_url", "http(s) URL"),
    ({"gateway_port": 70000}, "gateway_port", "65535"),
    ({"gateway_log_max_size": "big"}, "gateway_log_max_size", "logrotate size"),
    ({"gateway_keys_file": "/nonexistent/keys.yaml"}, "gateway_keys_file", "found none"),
])
def test_bad_values_are_refused_naming_the_field(data, field, fragment):
    message = error_text(**data)
    assert field in message and fragment in message


def test_tls_files_must_come_in_pairs(tmp_path):
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    assert "gateway_tls_key_file" in error_text(gateway_tls_cert_file=str(cert))


def test_wheelhouse_without_wheels_is_refused(tmp_path):
    assert "found none" in error_text(gateway_wheelhouse=str(tmp_path))


# -- seed document ---------------------------------------------------------------------------

def test_seed_document_holds_hashes_only_and_is_stable(keys_file):
    _, keys = keys_file
    users = {"bob": {MODEL: "read"}, "alice": {MODEL: "admin"}}
    key_lists = {"alice": [keys["alice"]], "bob": keys["bob"]}
    content = seed_document(users, key_lists, [MODEL])
    assert content == seed_document(dict(reversed(users.items())), key_lists, [MODEL])
    for key in [keys["alice"], *keys["bob"]]:
        assert key.split("-", 2)[2] not in content
        assert apikeys.hash_key(key) in content
    document = json.loads(content)
    assert document["models"] == [MODEL] and document["users"]["alice"] == {MODEL: "admin"}


# -- the software: deepseek-node[gateway] ----------------------------------------------------

def test_venv_holds_the_gateway_extra_and_its_lock():
    version = nodewheel.load_project().version
    plain = role.software_requirements(GatewayDefaults())
    assert plain == (f"deepseek-node[gateway]=={version}", *nodewheel.lock("gateway"))
    shared = role.software_requirements(GatewayDefaults(gateway_db_dsn="postgresql://gw@db/x"))
    assert shared[0] == f"deepseek-node[gateway,gateway-postgresql]=={version}"
    assert set(shared[1:]) == set(plain[1:]) | {"psycopg==3.3.9", "psycopg-binary==3.3.9"}


def test_cli_is_the_wheels_console_script():
    assert nodewheel.load_project().scripts["deepseek-gateway"] == "deepseek_node.gateway.cli:main"
    assert role.CLI == f"{role.VENV}/bin/deepseek-gateway"


def test_gateway_package_imports_only_itself_and_its_pinned_runtime():
    requirements = nodewheel.lock("gateway")
    pins = {line.split("==")[0].lower().replace("_", "-") for line in requirements}
    assert all("==" in line for line in requirements)
    import_names = {"yaml": "pyyaml", "prometheus_client": "prometheus-client"}
    for path in GATEWAY_SOURCES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                top = node.module.split(".")[0]
            elif isinstance(node, ast.Import):
                top = node.names[0].name.split(".")[0]
            else:
                continue
            assert top != "modules", f"{path.name}: absolute import of {node.module}; use a relative import"
            if top in sys.stdlib_module_names or top == "psycopg":
                continue
            assert import_names.get(top, top) in pins, f"{path.name}: imports {top}, not pinned in node/locks/gateway.txt"


# -- templates -------------------------------------------------------------------------------

def render(destination: str, **variables) -> str:
    source = Path(template_path("roles.gateway", destination)).read_text()
    return jinja2.Template(source, undefined=jinja2.StrictUndefined).render(**variables)


def test_config_template_round_trips_through_the_apps_parser(tmp_path):
    defaults = GatewayDefaults(gateway_upstreams={"other/model": "http://127.0.0.1:8001"}, gateway_db_dsn="postgresql://gw@db/x")
    expected = role.node_config(defaults, DeploymentDefaults())
    path = tmp_path / "gateway.yaml"
    path.write_text(render(role.CONFIG_FILE, settings=expected))
    assert GatewayConfig.load(path) == expected


def test_unit_template_is_hardened():
    unit = render(role.UNIT_FILE, service_user="deepseek", venv=role.VENV, config_file=role.CONFIG_FILE,
                  drain_timeout_s=120, writable=(role.DB_DIR, role.LOG_DIR))
    for line in ("User=deepseek", "NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=",
                 f"ReadWritePaths={role.DB_DIR} {role.LOG_DIR}", "TimeoutStopSec=135", "PrivateTmp=yes"):
        assert line in unit.splitlines(), line


def _gateway_run(monkeypatch, tmp_path, unit_exists: bool, data: dict):
    """gateway.install on the replica host @local (worker: listed second), on a real pyinfra state."""
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.deploy import add_deploy

    from roles.gateway import tasks as gateway
    from roles.settings import settings_for

    unit = tmp_path / "deepseek-gateway.service"
    if unit_exists:
        unit.write_text("[Unit]\n")
    monkeypatch.setattr(gateway, "UNIT_FILE", str(unit))
    calls: list[dict] = []  # systemd.service reads systemctl, which this machine's PID 1 does not answer
    monkeypatch.setattr(gateway, "systemd", types.SimpleNamespace(service=lambda **kwargs: calls.append(kwargs)))
    state = State(Inventory(([("head-node", data), ("@local", data)], {}),
                            gpu_nodes=(["head-node", "@local"], {})), Config())
    local = state.inventory.get_host("@local")
    state.activated_hosts.add(local)
    local.connect()
    settings = settings_for(local)
    add_deploy(state, gateway.install, settings.gateway, settings.deployment, host=[local])
    return calls, len(state.get_op_order())


def test_a_replica_worker_gets_no_gateway_and_one_left_from_before_is_stopped(monkeypatch, tmp_path):
    worker = {"deepseek_nodes": 2, "deepseek_replica": "r1"}
    assert _gateway_run(monkeypatch, tmp_path, unit_exists=False, data=worker) == ([], 0)
    assert _gateway_run(monkeypatch, tmp_path, unit_exists=True, data=worker) == ([{
        "name": "Ensure deepseek-gateway.service is stopped and disabled on @local, "
                "a worker of replica 'r1' (head-node head, @local)",
        "service": "deepseek-gateway.service", "enabled": False, "running": False}], 0)


def test_a_single_node_host_is_its_own_head_and_gets_the_gateway(monkeypatch, tmp_path):
    from roles.gateway import tasks as gateway

    class Installing(Exception):
        pass

    def node_config(*_args):
        raise Installing

    monkeypatch.setattr(gateway, "node_config", node_config)
    with pytest.raises(Installing):
        _gateway_run(monkeypatch, tmp_path, unit_exists=True, data={})


def test_seed_warnings_name_the_host_and_each_kept_revoked_key():
    output = 'dropping privileges\n{"grants": 1, "kept_revoked": ["dsk-aaaa", "dsk-bbbb"], "keys": 2}\n'
    warnings = seed_warnings("gpu-01", output)
    assert len(warnings) == 2 and all(w.startswith("gpu-01: gateway key dsk-") for w in warnings)
    assert "stays revoked" in warnings[0] and seed_warnings("gpu-01", '{"keys": 2}') == []
