"""deepseek-engine.service is active, enabled and hardened as the serve role renders it."""

from __future__ import annotations

import pytest

from deepseek_infra import engine
from deepseek_node import paths

# Properties `systemctl show` reports for the hardening the unit template sets.
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "RestrictSUIDSGID": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "Restart": "on-failure",
}


@pytest.fixture(scope="module")
def unit_properties(host) -> dict[str, str]:
    # --all: systemd omits empty properties (an empty CapabilityBoundingSet) without it.
    output = host.check_output(f"systemctl show --all {engine.UNIT} --no-pager")
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def test_engine_is_enabled_and_active(host):
    service = host.service(engine.UNIT)
    where = f"{host.backend.hostname}: {engine.UNIT}"
    assert service.is_enabled, f"{where}: expected enabled, found disabled"
    assert service.is_running, f"{where}: expected active, found {host.run(f'systemctl is-active {engine.UNIT}').stdout.strip()}"


@pytest.mark.parametrize(("prop", "expected"), HARDENING.items(), ids=list(HARDENING))
def test_hardening_property(unit_properties, host, prop, expected):
    found = unit_properties.get(prop)
    assert found == expected, f"{host.backend.hostname}: {engine.UNIT} {prop}: expected {expected!r}, found {found!r}"


def test_runs_as_the_service_account_unless_a_docker_client(unit_properties, engine_config, host):
    expected = "root" if engine_config["install"] == "container" else paths.SERVICE_USER
    found = unit_properties.get("User")
    assert found == expected, f"{host.backend.hostname}: {engine.UNIT} User: expected {expected!r}, found {found!r}"


def test_start_timeout_covers_model_load(unit_properties, host):
    # systemd reports TimeoutStartUSec like "30min"; the role's floor is 60 s.
    found = unit_properties.get("TimeoutStartUSec", "")
    assert found not in ("", "0", "infinity") and not found.endswith("ms"), (
        f"{host.backend.hostname}: {engine.UNIT} TimeoutStartUSec: expected a load-sized timeout, found {found!r}"
    )


def test_engine_process_runs_as_the_unit_user(host, unit_properties):
    pid = unit_properties.get("MainPID", "0")
    assert pid != "0", f"{host.backend.hostname}: {engine.UNIT}: expected a main process, found none"
    user = host.check_output(f"ps -o user= -p {pid}").strip()
    assert user == unit_properties["User"], (
        f"{host.backend.hostname}: {engine.UNIT} MainPID {pid}: expected user {unit_properties['User']}, found {user}"
    )
    status = host.check_output(f"grep -E '^CapEff:' /proc/{pid}/status").split()[1]
    assert int(status, 16) == 0, f"{host.backend.hostname}: engine pid {pid} CapEff: expected 0, found {status}"


def test_health_tool_is_the_controllers_wheel_and_runs(host, engine_config, node_venv):
    """The unit's ExecStartPost (and deploy/health.py) run this console script: its own venv,
    this checkout's deepseek-node, standard library only."""
    node_venv(engine.TOOLS_VENV)
    result = host.run(f"{engine.HEALTH_TOOL} --help")
    assert result.rc == 0 and "deepseek-engine-health" in result.stdout, (
        f"{host.backend.hostname}: {engine.HEALTH_TOOL}: expected the health tool's help, found rc {result.rc}: {result.stderr}")


def test_transformers_engine_runs_this_checkouts_server(host, engine_config, node_venv):
    if engine_config["engine"] != "transformers":
        pytest.skip(f"{host.backend.hostname}: engine {engine_config['engine']}: its venv holds no node code")
    node_venv(engine.VENV_DIR)
