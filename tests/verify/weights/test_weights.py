"""The weights role's result: the node tool (this checkout's deepseek-node wheel in its venv), a
verified current release, the re-hash timer, keys.

Expected paths and modes come from the role (roles/weights) and the tool's constants; the
model the host serves is read from the env file the role writes for the engine.
"""

from __future__ import annotations

import json

import pytest

from deepseek_node import paths
from deepseek_node.weights.node import KEYS_DIR
from deepseek_node.weights.plan import CURRENT_LINK, RELEASE_MARKER
from roles.weights.defaults import WeightsDefaults
from roles.weights.tasks import ENV_FILE, TOOL, TOOL_DIR, UNITS, VENV


@pytest.fixture(scope="module")
def weights_env(host) -> dict[str, str]:
    if not host.file(TOOL_DIR).exists:
        pytest.skip(f"{host.backend.hostname}: {TOOL_DIR} absent: the weights role was not deployed on this host")
    env_file = host.file(ENV_FILE)
    if not env_file.exists:
        pytest.fail(f"{host.backend.hostname}: {ENV_FILE}: expected the engine's weights env file, found none")
    pairs = (line.split("=", 1) for line in env_file.content_string.splitlines() if "=" in line and not line.startswith("#"))
    return dict(pairs)


def _where(host, path: str) -> str:
    return f"{host.backend.hostname}: {path}"


def test_node_tool_is_the_controllers_wheel(host, weights_env, node_venv):
    node_venv(VENV)


def test_tool_runs_the_venvs_console_script(host, weights_env):
    wrapper = host.file(TOOL)
    assert wrapper.mode == 0o755 and f"exec {VENV}/bin/deepseek-weights " in wrapper.content_string, (
        f"{_where(host, TOOL)}: expected a 0755 wrapper exec'ing {VENV}/bin/deepseek-weights, found {wrapper.content_string!r}")
    crypto = host.run(f"{VENV}/bin/python -c 'import cryptography; print(cryptography.__version__)'")
    pinned = dict(line.split("==") for line in WeightsDefaults().weights_pip_requirements)["cryptography"]
    assert crypto.stdout.strip() == pinned, f"{_where(host, VENV)}: expected cryptography {pinned}, found {crypto.stdout or crypto.stderr}"


def test_tool_runs_with_its_pinned_venv(host, weights_env):
    result = host.run(f"{TOOL} selftest --size-mib 1")
    assert result.rc == 0, f"{_where(host, TOOL)}: expected selftest to pass, found rc {result.rc}: {result.stderr}"
    assert json.loads(result.stdout)["ok"] is True


def test_env_file_is_readable_by_the_service_account_only(host, weights_env):
    env_file = host.file(ENV_FILE)
    found = (env_file.user, env_file.group, env_file.mode)
    assert found == ("root", paths.SERVICE_USER, 0o640), f"{_where(host, ENV_FILE)}: expected root:{paths.SERVICE_USER} 0640, found {found}"
    assert weights_env.get("HF_HUB_OFFLINE") == "1", f"{_where(host, ENV_FILE)}: HF_HUB_OFFLINE: expected 1, found {weights_env.get('HF_HUB_OFFLINE')}"


def test_current_points_to_a_verified_release(host, weights_env):
    releases = weights_env["DEEPSEEK_MODEL_RELEASES"]
    link = host.file(f"{releases}/{CURRENT_LINK}")
    assert link.is_symlink, f"{_where(host, link.path)}: expected a symlink, found none"
    assert "/" not in link.linked_to.removeprefix(releases + "/"), f"{_where(host, link.path)}: expected a release beside it, found {link.linked_to}"
    marker = host.file(f"{releases}/{CURRENT_LINK}/{RELEASE_MARKER}")
    assert marker.exists, f"{_where(host, marker.path)}: expected the placement marker, found none"
    check = host.run(f"{TOOL} check --models-dir {releases.rsplit('/', 1)[0]} --model {weights_env['DEEPSEEK_MODEL_SLUG']} --full")
    doc = json.loads(check.stdout) if check.stdout.strip() else {}
    assert check.rc == 0 and doc.get("ok"), f"{_where(host, releases)}: expected the current release to pass a full check, found {doc or check.stderr}"


def test_release_files_are_root_owned_and_group_readable(host, weights_env):
    current = f"{weights_env['DEEPSEEK_MODEL_RELEASES']}/{CURRENT_LINK}/"
    bad = host.run(f"find {current} \\( -type f ! -perm 0640 \\) -o \\( -type d ! -perm 0750 \\) -o ! -user root -o ! -group {paths.SERVICE_USER}")
    assert bad.rc == 0 and not bad.stdout.strip(), (
        f"{_where(host, current)}: expected files 0640 / directories 0750 root:{paths.SERVICE_USER}, found {bad.stdout.strip()!r}")


@pytest.mark.parametrize("unit", UNITS)
def test_units_are_installed(host, weights_env, unit):
    path = f"/etc/systemd/system/{unit}"
    assert host.file(path).exists, f"{_where(host, path)}: expected the unit file, found none"


def test_rehash_timer_is_enabled_and_active(host, weights_env):
    timer = host.service("deepseek-weights-verify.timer")
    assert timer.is_enabled and timer.is_running, (
        f"{host.backend.hostname}: deepseek-weights-verify.timer: expected enabled and active, "
        f"found enabled={timer.is_enabled} active={timer.is_running}")


def test_key_files_are_root_only_0400(host, weights_env):
    keys = host.file(KEYS_DIR)
    if weights_env.get("DEEPSEEK_MODEL_ENCRYPTED") != "1" and not keys.exists:
        pytest.skip(f"{host.backend.hostname}: the model is not encrypted at rest and no key is placed")
    assert (keys.user, keys.mode) == ("root", 0o700), f"{_where(host, KEYS_DIR)}: expected root 0700, found {keys.user} {keys.mode:04o}"
    for name in keys.listdir():
        key = host.file(f"{KEYS_DIR}/{name}")
        found = (key.user, key.group, key.mode)
        assert found == ("root", "root", 0o400), f"{_where(host, key.path)}: expected root:root 0400, found {found}"
    if weights_env.get("DEEPSEEK_MODEL_ENCRYPTED") == "1":
        slug = weights_env["DEEPSEEK_MODEL_SLUG"]
        assert f"{slug}.key" in keys.listdir(), f"{_where(host, KEYS_DIR)}: expected {slug}.key, found {keys.listdir()}"
