"""lab/lb_backends.py: the upgrade hooks' backend set, with connection draining."""

from __future__ import annotations

import threading
import time

from lab import lb_backends
from lab.lb_backends import Backends


def test_hooks_remove_and_add_hosts_and_log_each_change(tmp_path, capsys):
    path = tmp_path / "backends"
    backends = Backends(path)
    for host in ("@docker/a", "@docker/b", "@docker/c"):
        backends.change("add", host)
    assert lb_backends.main([str(path), "remove", "@docker/b"]) == 0
    assert "2 backend(s): @docker/a, @docker/c" in capsys.readouterr().out
    assert backends.members() == ["@docker/a", "@docker/c"]
    backends.change("add", "@docker/b")
    backends.change("add", "@docker/b")  # adding twice keeps one entry
    assert backends.members() == ["@docker/a", "@docker/c", "@docker/b"]
    assert [(e["action"], e["host"]) for e in backends.events()][-3:] == [
        ("remove", "@docker/b"), ("add", "@docker/b"), ("add", "@docker/b")]
    assert lb_backends.main([str(path), "drop", "@docker/b"]) == 2


def test_pick_is_round_robin_and_none_when_empty(tmp_path):
    backends = Backends(tmp_path / "backends")
    with backends.pick(0) as host:
        assert host is None
    backends.change("add", "a")
    backends.change("add", "b")
    picked = []
    for index in range(4):
        with backends.pick(index) as host:
            picked.append(host)
    assert picked == ["a", "b", "a", "b"]


def test_remove_waits_for_the_requests_routed_before_it(tmp_path):
    backends = Backends(tmp_path / "backends")
    backends.change("add", "a")
    routed, done = threading.Event(), []

    def request() -> None:
        with backends.pick(0) as host:
            routed.set()
            time.sleep(0.5)  # the request is in flight on host a
            done.append((host, time.monotonic()))

    thread = threading.Thread(target=request)
    thread.start()
    routed.wait(5)
    backends.change("remove", "a")
    removed = time.monotonic()
    thread.join()
    assert done and done[0][0] == "a" and done[0][1] <= removed, "remove returned before the request finished"
    assert backends.members() == []
