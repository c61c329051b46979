"""Preconditions: each probe's output lines parsed, and the command run against this machine
(a checkpoint directory under tmp_path, a listening and a closed local TCP port)."""

from __future__ import annotations

import socket
import subprocess

import pytest

from deepseek_infra.facts.preconditions import CONNECT_TIMEOUT_S, Preconditions, parse_preconditions


def run(**kwargs) -> dict:
    """The fact's command under sh, as pyinfra runs it, parsed by the fact."""
    fact = Preconditions()
    output = subprocess.run(["sh", "-c", fact.command(**kwargs).get_raw_value()], capture_output=True, text=True)
    assert output.returncode == 0, output.stderr  # a non-zero fact command would read as the default
    return fact.process(output.stdout.splitlines())


@pytest.mark.parametrize("state", ["checkpoint", "no-config", "not-a-directory", "missing"])
def test_each_model_path_state_is_read(state):
    assert parse_preconditions([f"model_path\t{state}"]) == {"model_path": state}


@pytest.mark.parametrize(("line", "reach"), [
    ("endpoint\t0\t", {"reachable": True, "error": None}),
    ("endpoint\t1\t_: connect: Connection refused", {"reachable": False, "error": "Connection refused"}),
    ("endpoint\t1\t_: line 1: mirror.invalid: Name or service not known",
     {"reachable": False, "error": "Name or service not known"}),
    ("endpoint\t124\t", {"reachable": False, "error": f"no answer within {CONNECT_TIMEOUT_S} s"}),
    ("endpoint\t127\t", {"reachable": None, "error": "bash or timeout not found on the node"}),
    ("endpoint\t1\t", {"reachable": False, "error": "connect exited with 1"}),
    ("endpoint\tx\t", {"reachable": None, "error": "unreadable exit status 'x'"}),
])
def test_each_connect_outcome_is_read(line, reach):
    assert parse_preconditions([line]) == {"endpoint": reach}


def test_unknown_lines_and_states_are_ignored():
    assert parse_preconditions([]) == {}
    assert parse_preconditions(["model_path\tsomething-else", "noise", "endpoint"]) == {
        "endpoint": {"reachable": None, "error": "unreadable exit status ''"}}


def test_only_what_is_asked_is_probed():
    fact = Preconditions()
    assert fact.command().get_raw_value() == "true" and fact.default() == {}
    path_only = fact.command(model_path="/srv/m").get_raw_value()
    assert "config.json" in path_only and "/dev/tcp" not in path_only
    connect_only = fact.command(connect_host="mirror", connect_port=8080).get_raw_value()
    assert "/dev/tcp" in connect_only and "config.json" not in connect_only
    assert f"timeout {CONNECT_TIMEOUT_S} bash -c" in connect_only


def test_model_path_states_on_this_machine(tmp_path):
    checkpoint = tmp_path / "it's a checkpoint"  # quoted for the shell
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("")
    assert run(model_path=str(checkpoint)) == {"model_path": "checkpoint"}
    assert run(model_path=str(tmp_path / "empty")) == {"model_path": "no-config"}
    assert run(model_path=str(tmp_path / "file")) == {"model_path": "not-a-directory"}
    assert run(model_path=str(tmp_path / "nothing")) == {"model_path": "missing"}


def test_release_presence_on_this_machine(tmp_path):
    (tmp_path / "v1").mkdir()
    assert run(release_path=str(tmp_path / "v1")) == {"release_present": True}
    assert run(release_path=str(tmp_path / "v2")) == {"release_present": False}
    assert "release" not in Preconditions().command(model_path="/m").get_raw_value()


def test_connect_on_this_machine():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        open_port = listening.getsockname()[1]
        assert run(connect_host="127.0.0.1", connect_port=open_port) == {"endpoint": {"reachable": True, "error": None}}
    with socket.socket() as closed:  # bound, never listening: the connect is refused
        closed.bind(("127.0.0.1", 0))
        refused = run(connect_host="127.0.0.1", connect_port=closed.getsockname()[1])
    assert refused == {"endpoint": {"reachable": False, "error": "Connection refused"}}


def test_host_and_port_are_arguments_never_code(tmp_path):
    marker = tmp_path / "pwned"
    result = run(connect_host=f"x'; touch {marker}; '", connect_port=80)
    assert not marker.exists()
    assert result["endpoint"]["reachable"] is False
