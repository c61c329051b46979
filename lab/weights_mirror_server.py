"""The lab's weights mirror: a small HTTP server with Range support (runs in a container).

    python3 weights_mirror_server.py --root /srv/data --port 8080

Serves ``<root>/<org>/<name>/<revision>/<file>`` under two layouts: the plain mirror
(``/<org>/<name>/<revision>/<file>``) and the Hugging Face one
(``/<org>/<name>/resolve/<revision>/<file>``). ``python3 -m http.server`` has no Range
support, which resumable downloads need.

Fault injection for tests: ``<root>/.faults.json`` maps a served path (relative to root,
plain layout) to ``{"cut_after": N, "times": K}`` (send N bytes of the body, then drop the
connection, K times) or ``{"status": 404}``. Every request is logged as one JSON line on
stdout (``docker logs <fleet>-weights``). Stdlib only: the lab node image has python3.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_HF = re.compile(r"^(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_cuts: dict[str, int] = {}
_cuts_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    root = "/srv/data"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # replaced by _log
        pass

    def _log(self, rel: str, status: int, sent: int) -> None:
        line = {"method": self.command, "path": rel, "range": self.headers.get("Range"), "status": status, "sent": sent}
        print(json.dumps(line, sort_keys=True), flush=True)

    def _faults(self) -> dict:
        try:
            with open(os.path.join(self.root, ".faults.json")) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {}

    def _resolve(self) -> tuple[str, str | None]:
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        match = _HF.match(rel)
        if match:
            rel = f"{match['repo']}/{match['rev']}/{match['file']}"
        full = os.path.realpath(os.path.join(self.root, rel))
        inside = full.startswith(os.path.realpath(self.root) + os.sep)
        return rel, full if inside and os.path.isfile(full) and not rel.startswith(".") else None

    def do_HEAD(self) -> None:
        self.do_GET(body=False)

    def do_GET(self, body: bool = True) -> None:
        rel, full = self._resolve()
        fault = self._faults().get(rel, {})
        if full is None or fault.get("status"):
            status = int(fault.get("status", 404))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self._log(rel, status, 0)
            return
        size = os.path.getsize(full)
        start, end = 0, size - 1
        status = 200
        match = _RANGE.match(self.headers.get("Range", ""))
        if match:
            start = int(match[1])
            end = min(int(match[2]), size - 1) if match[2] else size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                self._log(rel, 416, 0)
                return
            status = 206
        length = end - start + 1
        limit = length
        if "cut_after" in fault:
            with _cuts_lock:
                key = f"{rel}:{fault['cut_after']}"
                if _cuts.get(key, 0) < int(fault.get("times", 1)):
                    _cuts[key] = _cuts.get(key, 0) + 1
                    limit = min(length, int(fault["cut_after"]))
        self.send_response(status)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        sent = 0
        if body:
            with open(full, "rb") as fh:
                fh.seek(start)
                while sent < limit:
                    block = fh.read(min(1024 * 1024, limit - sent))
                    if not block:
                        break
                    self.wfile.write(block)
                    sent += len(block)
        self._log(rel, status, sent)
        if sent < length and body:
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/srv/data")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    Handler.root = args.root
    server = ThreadingHTTPServer(("0.0.0.0", args.port), Handler)
    server.daemon_threads = True
    print(json.dumps({"listening": args.port, "root": args.root}), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
