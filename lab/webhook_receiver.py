"""LAB: a webhook receiver for Alertmanager, standing in for a site's chat or paging hook.

    python3 webhook_receiver.py --port 9099 --out /var/tmp/lab-webhook.jsonl

Appends each POSTed body (Alertmanager's webhook JSON: status, alerts[].labels, ...) as one
line to ``--out`` and answers 200. Standard library only: it runs on a lab node's python3.
tests/lab/test_monitoring.py is its client; no role reads it.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_write = threading.Lock()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9099)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--out", required=True)
    options = parser.parse_args()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)) or 0) or b"null")
            with _write, open(options.out, "a", encoding="utf-8") as out:
                out.write(json.dumps({"path": self.path, "body": body}) + "\n")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer((options.bind, options.port), Receiver).serve_forever()


if __name__ == "__main__":
    main()
