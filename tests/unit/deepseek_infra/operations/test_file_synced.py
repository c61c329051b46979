"""file_synced / template_synced: one round trip for a file already in place, the stock
operation's repair otherwise. Real pyinfra runs on ``@local`` against a temporary dir."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from io import StringIO

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.host import Host
from pyinfra.api.operation import add_op
from pyinfra.api.operations import run_ops
from pyinfra.operations import files

from deepseek_infra.operations.sync import RemoteFile, file_difference, file_synced, template_synced

ME = {"user": pwd.getpwuid(os.getuid()).pw_name, "group": grp.getgrgid(os.getgid()).gr_name}


@pytest.fixture
def commands(monkeypatch):
    """Every shell command pyinfra runs on a host (facts and operations alike)."""
    ran: list[str] = []
    original = Host.run_shell_command

    def counted(self, command, *args, **kwargs):
        ran.append(str(command))
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(Host, "run_shell_command", counted)
    return ran


def deploy(*operations, read_changed: bool = False) -> list[bool]:
    """Run ``(operation, kwargs)`` pairs in one pyinfra run on @local; whether each changed.
    ``read_changed``: read each operation's ``.changed`` while preparing, as roles do to
    decide a restart (pyinfra then runs the operation's body twice)."""
    state = State(Inventory((["@local"], {})), Config())
    connect_all(state)
    metas = [add_op(state, operation, **kwargs) for operation, kwargs in operations]
    host = state.inventory.get_host("@local")
    if read_changed:
        for meta in metas:
            assert isinstance(meta[host].changed, bool)
    run_ops(state)
    return [meta[host].did_change() for meta in metas]


def remote_file(path) -> dict:
    result = subprocess.run(["sh", "-c", RemoteFile().command(path=str(path))], capture_output=True, text=True, check=True)
    return RemoteFile().process(result.stdout.splitlines())


def test_remote_file_reads_a_regular_file_only(tmp_path):
    (tmp_path / "a.conf").write_text("hello\n")
    os.chmod(tmp_path / "a.conf", 0o640)
    assert remote_file(tmp_path / "a.conf") == {"type": "regular file", "mode": 640, **ME,
                                                "sha1": "f572d396fae9206628714fb2ce00f72e94f2258f"}
    (tmp_path / "link").symlink_to(tmp_path / "a.conf")
    assert remote_file(tmp_path / "link") == {}  # a link: left to files.put, which follows its own rules
    assert remote_file(tmp_path) == {}
    assert remote_file(tmp_path / "missing") == {}


def test_file_difference_names_what_files_put_would_change():
    have = {"type": "regular file", "mode": 640, "user": "root", "group": "deepseek", "sha1": "aa"}
    assert file_difference("aa", have, user="root", group="deepseek", mode="0640") is None
    assert file_difference("aa", have) is None  # nothing asked beyond the content
    assert file_difference("bb", have) == "content differs"
    assert file_difference("aa", have, mode=644) == "mode 640, wanted 644"
    assert file_difference("aa", have, user="deepseek") == "user root, wanted deepseek"
    assert file_difference("aa", {}) == "missing"


def test_file_in_place_costs_one_command_and_a_difference_is_repaired(tmp_path, commands):
    dest = tmp_path / "etc" / "engine.json"
    put = (file_synced, {"src": StringIO('{"port": 8000}\n'), "dest": str(dest), "mode": "0640", **ME})
    assert deploy(put) == [True]
    assert dest.read_text() == '{"port": 8000}\n' and oct(dest.stat().st_mode)[-3:] == "640"
    commands.clear()
    assert deploy(put) == [False]
    assert len(commands) == 1 and commands[0].startswith("[ -f ")
    os.chmod(dest, 0o644)
    assert deploy(put) == [True] and oct(dest.stat().st_mode)[-3:] == "640"
    dest.write_text("edited by hand\n")
    assert deploy(put) == [True] and dest.read_text() == '{"port": 8000}\n'


def test_changed_read_while_preparing_does_not_ask_again(tmp_path, commands):
    """A role reading ``.changed`` makes pyinfra run the body twice; on a host where nothing
    runs, the reading taken while preparing is used again: one command per file, not two."""
    one, two = tmp_path / "one.conf", tmp_path / "two.conf"
    ops = [(file_synced, {"src": StringIO("1\n"), "dest": str(one)}),
           (file_synced, {"src": StringIO("2\n"), "dest": str(two)})]
    assert deploy(*ops, read_changed=True) == [True, True]
    commands.clear()
    assert deploy(*ops, read_changed=True) == [False, False]
    assert len(commands) == 2


def test_template_matches_files_template_byte_for_byte(tmp_path, commands):
    template = tmp_path / "unit.j2"
    template.write_text("[Service]\nExecStart={{ binary }} --port {{ port }}\n# {{ host.name }}\n")
    ours, stock = tmp_path / "ours.service", tmp_path / "stock.service"
    data = {"binary": "/opt/deepseek/bin/engine", "port": 8000}
    assert deploy((template_synced, {"src": str(template), "dest": str(ours), "mode": "0644", **data}),
                  (files.template, {"src": str(template), "dest": str(stock), "mode": "0644", **data})) == [True, True]
    assert ours.read_bytes() == stock.read_bytes()
    commands.clear()
    assert deploy((template_synced, {"src": str(template), "dest": str(ours), "mode": "0644", **data})) == [False]
    assert len(commands) == 1
    assert deploy((template_synced, {"src": str(template), "dest": str(ours), "mode": "0644",
                                     **{**data, "port": 8001}})) == [True]
    assert "--port 8001" in ours.read_text()
