"""A lab stand-in for a load balancer's backend set, driven by the rolling upgrade's hooks.

    python -m lab.lb_backends FILE remove HOST   # deploy/upgrade.py --lb-drain
    python -m lab.lb_backends FILE add HOST      # deploy/upgrade.py --lb-admit
    python -m lab.lb_backends FILE show

``FILE`` holds the admitted backends, one host name a line; ``FILE.events`` gets one JSON
line per change (time, action, host). A client routes each request while holding a shared
lock on ``FILE.lock`` (``Backends.pick``); a change takes the exclusive lock, so ``remove``
returns only once every request that could have picked the host has finished: the
connection draining a real load balancer does before the node's own drain starts.
Nothing here is read by a role; tests/lab/test_upgrade.py is its client.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path


class Backends:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.events_path = self.path.with_name(self.path.name + ".events")

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        self.lock_path.touch(exist_ok=True)
        with self.lock_path.open("r") as handle:
            # Poll rather than block: a blocking flock() would stall every thread of a process
            # that gevent has patched (pyinfra's does), the lock holder's thread included.
            while True:
                try:
                    fcntl.flock(handle, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(0.005)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> list[str]:
        if not self.path.exists():
            return []
        return [line.strip() for line in self.path.read_text().splitlines() if line.strip()]

    def members(self) -> list[str]:
        with self._locked(fcntl.LOCK_SH):
            return self._read()

    def change(self, action: str, host: str) -> list[str]:
        """``add`` or ``remove`` ``host``; waits for requests routed with the old set to finish."""
        if action not in ("add", "remove"):
            raise ValueError(f"action: expected add or remove, found {action!r}")
        with self._locked(fcntl.LOCK_EX):
            members = [name for name in self._read() if name != host]
            if action == "add":
                members.append(host)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(f"{name}\n" for name in members))
            tmp.replace(self.path)
            with self.events_path.open("a") as log:
                log.write(json.dumps({"time": time.time(), "action": action, "host": host}) + "\n")
            return members

    def events(self) -> list[dict]:
        if not self.events_path.exists():
            return []
        return [json.loads(line) for line in self.events_path.read_text().splitlines() if line.strip()]

    @contextlib.contextmanager
    def pick(self, index: int) -> Iterator[str | None]:
        """Route one request: the ``index``-th admitted backend (round robin), held admitted
        until the block ends; None when no backend is admitted."""
        with self._locked(fcntl.LOCK_SH):
            members = self._read()
            yield members[index % len(members)] if members else None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[1] not in ("add", "remove", "show") or (args[1] != "show" and len(args) != 3):
        print("usage: python -m lab.lb_backends FILE add|remove HOST | FILE show", file=sys.stderr)
        return 2
    backends = Backends(args[0])
    members = backends.members() if args[1] == "show" else backends.change(args[1], args[2])
    print(f"{args[0]}: {len(members)} backend(s): {', '.join(members) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
