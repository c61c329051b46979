"""Commands from Python code run with the host's privilege settings, as operations do.

Run for real on @local: root here, so ``_su_user`` (host data) switches to another user
the way ``_sudo_user`` does for a non-root deploy user over SSH.
"""

from __future__ import annotations

import shutil
from io import StringIO

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all

from deepseek_infra import remote

needs_su = pytest.mark.skipif(shutil.which("su") is None, reason="su missing")


def local(data: dict, **config):
    state = State(Inventory(([("@local", data)], {})), Config(**config))
    connect_all(state)
    return state.inventory.get_host("@local")


@needs_su
def test_host_data_privileges_apply_to_a_bare_command():
    host = local({"_su_user": "nobody", "_su_shell": "/bin/sh"})
    ok, output = remote.run(host, "id -un")
    assert ok and output.stdout.strip() == "nobody"
    plain_ok, plain = host.run_shell_command(command="id -un")  # what pyinfra does without the helper
    assert plain_ok and plain.stdout.strip() != "nobody"


def test_without_privilege_settings_the_command_runs_as_the_connecting_user():
    host = local({})
    ok, output = remote.run(host, "id -un")
    _, expected = host.run_shell_command(command="id -un")
    assert ok and output.stdout == expected.stdout
    assert remote.privilege_arguments(host)["_sudo"] is False


def test_config_sudo_and_host_data_are_resolved_as_for_an_operation():
    assert remote.privilege_arguments(local({}, SUDO=True))["_sudo"] is True
    arguments = remote.privilege_arguments(local({"_sudo": True, "_sudo_user": "deepseek", "_sudo_password": "pw"}))
    assert (arguments["_sudo"], arguments["_sudo_user"], arguments["_sudo_password"]) == (True, "deepseek", "pw")
    assert set(arguments) <= set(remote.PRIVILEGE_ARGUMENTS)


@needs_su
def test_an_upload_goes_through_the_same_privileges(tmp_path):
    target = tmp_path / "owned-by-root"
    target.mkdir(mode=0o755)
    host = local({"_su_user": "nobody", "_su_shell": "/bin/sh"})
    # nobody cannot write into root's directory: the upload runs as nobody, so it is refused
    with pytest.raises(OSError, match="Permission denied"):
        remote.put(host, StringIO("x"), str(target / "f"))
    assert not (target / "f").exists()
    assert remote.put(local({}), StringIO("x"), str(target / "g")) is True and (target / "g").read_text() == "x"
