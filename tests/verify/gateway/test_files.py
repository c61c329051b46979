"""Owners and modes of the gateway's directories, configuration, key, policy and logs."""

import pytest

from deepseek_node import paths
from roles.gateway.tasks import (
    CLI_LINK, DB_FILE, DIRECTORIES, LOGROTATE_FILE, REQUEST_LOG, SECRET_FILES, SEED_FILE,
    TLS_CERT, VENV,
)


@pytest.mark.parametrize(("path", "owner", "group", "mode"), DIRECTORIES + SECRET_FILES,
                         ids=[entry[0] for entry in DIRECTORIES + SECRET_FILES])
def test_owner_and_mode(host, path, owner, group, mode):
    with host.sudo():
        item = host.file(path)
        where = f"{host.backend.hostname}: {path}"
        assert item.exists, f"{where}: expected present, found absent"
        assert (item.user, item.group) == (owner, group), f"{where}: expected {owner}:{group}, found {item.user}:{item.group}"
        assert item.mode == int(mode, 8), f"{where}: expected mode {mode}, found {item.mode:04o}"


@pytest.mark.parametrize("path", [DB_FILE, REQUEST_LOG])
def test_service_owns_its_database_and_log_without_world_access(host, path):
    with host.sudo():
        item = host.file(path)
        where = f"{host.backend.hostname}: {path}"
        assert item.exists, f"{where}: expected present, found absent"
        assert item.user == paths.SERVICE_USER, f"{where}: expected owner {paths.SERVICE_USER}, found {item.user}"
        assert item.mode & 0o007 == 0, f"{where}: expected no access for others, found mode {item.mode:04o}"


def test_certificate_is_readable_pem(host):
    certificate = host.file(TLS_CERT)
    assert certificate.exists and "BEGIN CERTIFICATE" in certificate.content_string, (
        f"{host.backend.hostname}: {TLS_CERT}: expected a PEM certificate, found none"
    )


def test_seed_holds_no_plaintext_key(host):
    with host.sudo():
        content = host.file(SEED_FILE).content_string
    assert "dsk-" not in content, f"{host.backend.hostname}: {SEED_FILE}: expected key hashes only, found a plaintext key"


def test_cli_on_path(host):
    result = host.run(f"{CLI_LINK} --help")
    assert result.rc == 0 and "deepseek-gateway" in result.stdout, (
        f"{host.backend.hostname}: {CLI_LINK}: expected the gateway CLI, found rc={result.rc}"
    )


def test_venv_holds_the_controllers_wheel(host, node_venv):
    node_venv(VENV)


def test_logrotate_accepts_the_config(host):
    with host.sudo():
        result = host.run(f"logrotate --debug {LOGROTATE_FILE}")
    assert result.rc == 0 and REQUEST_LOG in result.stderr + result.stdout, (
        f"{host.backend.hostname}: {LOGROTATE_FILE}: expected logrotate to accept it, found rc={result.rc} {result.stderr[-300:]!r}"
    )


def test_drain_token_and_input_hash_key_are_private(host, gateway_config):
    """The drain token only the service user (and root) reads; the input-hash key, where the
    configuration names one, is a secret of the same standing as the TLS key."""
    where = host.backend.hostname
    with host.sudo():
        if gateway_config.admin_token_file:
            token = host.file(gateway_config.admin_token_file)
            assert token.exists, f"{where}: {gateway_config.admin_token_file}: expected the running gateway's drain token"
            assert (token.user, token.mode) == (paths.SERVICE_USER, 0o600), (
                f"{where}: {gateway_config.admin_token_file}: expected {paths.SERVICE_USER} 0600, "
                f"found {token.user} {token.mode:04o}")
        if gateway_config.input_hash_key_file:
            path = gateway_config.input_hash_key_file
            key = host.file(path)
            assert key.exists, f"{where}: {path}: expected the input-hash key, found none"
            assert key.mode & 0o007 == 0 and key.group == paths.SERVICE_USER, (
                f"{where}: {path}: expected readable by {paths.SERVICE_USER} only, found {key.user}:{key.group} {key.mode:04o}")
            assert len(key.content_string.strip()) >= 16, f"{where}: {path}: expected a key of 16+ bytes"
