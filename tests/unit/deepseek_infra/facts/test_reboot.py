"""Reboot-required state: the fact's parser and command, and the operation's decisions."""

from __future__ import annotations

import subprocess

import pytest

from deepseek_infra.facts import reboot as reboot_fact
from deepseek_infra.facts.reboot import (
    REBOOT_REQUIRED_COMMAND,
    REBOOT_REQUIRED_DIR,
    parse_reboot_required,
    render_state,
)
from deepseek_infra.operations import reboot as reboot_ops


def test_render_and_parse_round_trip():
    text = render_state("kernel", ["kernel command line lacks iommu=pt", "nouveau is loaded"])
    lines = [f"@@reboot-required {REBOOT_REQUIRED_DIR}/kernel.json", *text.splitlines()]
    assert parse_reboot_required(lines) == {"kernel": ["kernel command line lacks iommu=pt", "nouveau is loaded"]}


def test_render_is_stable():
    assert render_state("kernel", ["a"]) == render_state("kernel", ["a"])
    assert render_state("kernel", ["a"]) != render_state("kernel", ["b"])


def test_corrupt_or_empty_file_still_counts_as_a_request():
    lines = ["@@reboot-required /x/kernel.json", "{not json", "@@reboot-required /x/nvidia-driver.json", '{"reasons": []}']
    state = parse_reboot_required(lines)
    assert set(state) == {"kernel", "nvidia-driver"}
    assert "unreadable" in state["kernel"][0]
    assert state["nvidia-driver"] == ["nvidia-driver asked for a reboot"]


def test_no_files_means_no_request():
    assert parse_reboot_required([]) == {}


def test_command_reads_every_role_file(tmp_path):
    (tmp_path / "kernel.json").write_text(render_state("kernel", ["x"]))
    (tmp_path / "nvidia-driver.json").write_text(render_state("nvidia-driver", ["y", "z"]))
    (tmp_path / "notes.txt").write_text("ignored")
    command = REBOOT_REQUIRED_COMMAND.replace(REBOOT_REQUIRED_DIR, str(tmp_path))
    output = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout
    assert parse_reboot_required(output.splitlines()) == {"kernel": ["x"], "nvidia-driver": ["y", "z"]}


def test_command_without_directory_prints_nothing(tmp_path):
    command = REBOOT_REQUIRED_COMMAND.replace(REBOOT_REQUIRED_DIR, str(tmp_path / "absent"))
    assert subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout == ""


class FakeHost:
    """Stands in for pyinfra's host context: one RebootRequired answer, noop messages kept."""

    name = "gpu-a01"

    def __init__(self, state: dict[str, list[str]]):
        self.state = state
        self.noops: list[str] = []

    def get_fact(self, fact, **kwargs):
        assert fact is reboot_fact.RebootRequired
        return self.state

    def noop(self, message: str) -> None:
        self.noops.append(message)


def _commands(monkeypatch, state, **kwargs) -> tuple[list[str], FakeHost]:
    fake = FakeHost(state)
    monkeypatch.setattr(reboot_ops, "host", fake)
    commands = [c.get_raw_value() if hasattr(c, "get_raw_value") else str(c) for c in reboot_ops.reboot_required._inner(**kwargs)]
    return commands, fake


def test_equal_reasons_change_nothing(monkeypatch):
    commands, fake = _commands(monkeypatch, {"kernel": ["a", "b"]}, role="kernel", reasons=["a", "b"])
    assert commands == [] and fake.noops == ["kernel already asks for a reboot: a; b"]


def test_no_reasons_and_no_file_change_nothing(monkeypatch):
    commands, fake = _commands(monkeypatch, {"nvidia-driver": ["x"]}, role="kernel", reasons=[])
    assert commands == [] and fake.noops == ["kernel does not ask for a reboot"]


def test_new_reasons_write_the_file_atomically(monkeypatch):
    commands, _ = _commands(monkeypatch, {"kernel": ["old"]}, role="kernel", reasons=["new"])
    assert commands[0].startswith("mkdir -p -m 0755")
    assert f"> {REBOOT_REQUIRED_DIR}/kernel.json.tmp && mv -f" in commands[1]
    assert '"new"' in commands[1]


@pytest.mark.parametrize("role", ["../etc", "Kernel", "", "a b"])
def test_bad_role_names_are_refused(monkeypatch, role):
    with pytest.raises(Exception, match="role"):
        _commands(monkeypatch, {}, role=role, reasons=["x"])


def test_no_reasons_remove_an_existing_request(monkeypatch):
    from pyinfra.operations import files

    class FileHost(FakeHost):
        def get_fact(self, fact, **kwargs):
            if fact is reboot_fact.RebootRequired:
                return self.state
            return {"mode": 644, "user": "root", "group": "root", "size": 10}  # files.File: it exists

    fake = FileHost({"kernel": ["a"]})
    monkeypatch.setattr(reboot_ops, "host", fake)
    monkeypatch.setattr(files, "host", fake)
    commands = [str(c) for c in reboot_ops.reboot_required._inner(role="kernel", reasons=[])]
    assert commands == [f"rm -f {REBOOT_REQUIRED_DIR}/kernel.json"]


def test_rebooted_clears_only_after_the_reboot_wait(monkeypatch):
    from pyinfra.api import FunctionCommand, StringCommand

    monkeypatch.setattr(reboot_ops, "host", FakeHost({}))
    commands = list(reboot_ops.rebooted._inner(roles=["kernel", "nvidia-driver"], delay=5, reboot_timeout=600))
    texts = [c.get_raw_value() for c in commands if isinstance(c, StringCommand)]
    assert any("reboot" in text for text in texts[:-1])
    assert texts[-1] == f"rm -f {REBOOT_REQUIRED_DIR}/kernel.json {REBOOT_REQUIRED_DIR}/nvidia-driver.json"
    # the wait for the host to come back (a FunctionCommand) comes before the clearing
    last_wait = max(i for i, c in enumerate(commands) if isinstance(c, FunctionCommand))
    assert last_wait < len(commands) - 1
    with pytest.raises(Exception, match="roles"):
        list(reboot_ops.rebooted._inner(roles=["../x"]))
