"""deepseek-gateway.service runs, enabled, as the service account, hardened."""

import pytest

from deepseek_node import paths
from roles.gateway.tasks import DB_DIR, LOG_DIR, UNIT

# systemd property -> expected value of the hardened unit
HARDENING = {
    "User": paths.SERVICE_USER,
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "UMask": "0027",
}


def test_unit_enabled_and_active(host):
    service = host.service(UNIT)
    assert service.is_enabled, f"{host.backend.hostname}: {UNIT}: expected enabled, found disabled"
    assert service.is_running, f"{host.backend.hostname}: {UNIT}: expected active, found {host.run(f'systemctl is-active {UNIT}').stdout.strip()}"


@pytest.fixture(scope="module")
def unit_properties(host) -> dict[str, str]:
    output = host.check_output(f"systemctl show {UNIT} -p {','.join([*HARDENING, 'ReadWritePaths', 'MainPID'])}")
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


@pytest.mark.parametrize(("prop", "expected"), HARDENING.items(), ids=list(HARDENING))
def test_unit_is_hardened(host, unit_properties, prop, expected):
    found = unit_properties.get(prop)
    assert found == expected, f"{host.backend.hostname}: {UNIT}: {prop}: expected {expected!r}, found {found!r}"


def test_unit_writes_only_its_database_and_logs(host, unit_properties):
    found = sorted(unit_properties.get("ReadWritePaths", "").split())
    assert found == sorted([DB_DIR, LOG_DIR]), (
        f"{host.backend.hostname}: {UNIT}: ReadWritePaths: expected {sorted([DB_DIR, LOG_DIR])}, found {found}"
    )


def test_process_runs_as_the_service_account(host, unit_properties):
    pid = unit_properties.get("MainPID", "0")
    user = host.check_output(f"ps -o user= -p {pid}").strip() if pid != "0" else None
    assert user == paths.SERVICE_USER, f"{host.backend.hostname}: {UNIT} pid {pid}: expected user {paths.SERVICE_USER}, found {user!r}"
