"""Load: 200 concurrent streaming requests through a real gateway lose nothing.

The gateway runs under uvicorn on 127.0.0.1 (ephemeral port, in a thread) in front of a
streaming fake engine that is itself a real HTTP server on loopback (uvicorn, another
thread). The engine holds every stream open until all of them have arrived, so the
requests are truly in flight together; each stream must arrive complete and in order,
and each request must have exactly one log line with its request id.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import uvicorn

from deepseek_node.gateway.app import create_app
from deepseek_node.gateway.db import Database

from .conftest import MODEL, TOKENS, make_config, seed_users

CONCURRENCY = 200
DEADLINE_S = 60.0


class StreamingEngine:
    """A raw ASGI engine: streams TOKENS as SSE; counts streams open at once."""

    def __init__(self, hold_until: int = 0, hold_timeout_s: float = 20.0) -> None:
        self.open = self.peak = self.served = 0
        self.hold_until, self.hold_timeout_s = hold_until, hold_timeout_s
        self.all_arrived: asyncio.Event | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body)
        self.all_arrived = self.all_arrived or asyncio.Event()
        self.open += 1
        self.peak = max(self.peak, self.open)
        if self.open >= self.hold_until:
            self.all_arrived.set()
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            if self.hold_until:
                with anyio.move_on_after(self.hold_timeout_s):
                    await self.all_arrived.wait()
            for token in TOKENS:
                chunk = {"id": "load", "model": request["model"], "choices": [{"index": 0, "text": token}]}
                await send({"type": "http.response.body", "body": f"data: {json.dumps(chunk)}\n\n".encode(),
                            "more_body": True})
                await asyncio.sleep(0)
            if (request.get("stream_options") or {}).get("include_usage"):  # like vLLM
                usage = {"prompt_tokens": 2, "completion_tokens": len(TOKENS), "total_tokens": 2 + len(TOKENS)}
                await send({"type": "http.response.body", "more_body": True,
                            "body": f"data: {json.dumps({'id': 'load', 'choices': [], 'usage': usage})}\n\n".encode()})
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
            self.served += 1
        finally:
            self.open -= 1


@contextmanager
def serve(app, **kwargs) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1, ephemeral port, in a thread; yields its base URL."""
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on such sockets; without it
    # every response waits ~40 ms for a delayed ACK (Nagle), as uvicorn's own bind avoids
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False, backlog=4096, **kwargs)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


async def stream_one(client: httpx.AsyncClient, url: str, key: str, index: int) -> tuple[str, str, list[str]]:
    body = {"model": MODEL, "prompt": f"load {index}", "stream": True}
    async with client.stream("POST", url + "/v1/completions", json=body,
                             headers={"Authorization": f"Bearer {key}"}) as response:
        assert response.status_code == 200, (index, response.status_code, await response.aread())
        raw = b"".join([chunk async for chunk in response.aiter_raw()]).decode()
        return response.headers["x-request-id"], raw, [
            choice["text"] for line in raw.split("\n\n") if line.startswith("data: {")
            for choice in json.loads(line[6:])["choices"]
        ]


def test_concurrent_streams_all_complete_and_logged(tmp_path):
    engine = StreamingEngine(hold_until=CONCURRENCY)
    started = time.monotonic()
    with serve(engine) as engine_url:
        config = make_config(tmp_path, upstreams={MODEL: engine_url}, confidence=False)
        database = Database(path=config.database_path)
        key = seed_users(database)["reader"]
        with serve(create_app(config, database)) as gateway_url:

            async def run_all():
                limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
                async with httpx.AsyncClient(limits=limits, timeout=DEADLINE_S) as client:
                    with anyio.fail_after(DEADLINE_S):
                        return await asyncio.gather(*(stream_one(client, gateway_url, key, i)
                                                      for i in range(CONCURRENCY)))

            results = asyncio.run(run_all())
            health = httpx.get(gateway_url + "/health").json()
    elapsed = time.monotonic() - started

    assert len(results) == CONCURRENCY
    for request_id, raw, texts in results:
        assert texts == list(TOKENS), (request_id, raw)
        assert raw.endswith("data: [DONE]\n\n"), (request_id, raw)
        assert '"usage"' not in raw, (request_id, raw)  # the gateway asked for it: stripped again
    assert engine.served == CONCURRENCY
    assert engine.peak == CONCURRENCY, f"only {engine.peak} of {CONCURRENCY} streams were open at the engine at once"
    assert health["in_flight"] == 0

    lines = [json.loads(line) for line in Path(config.request_log).read_text().splitlines()]
    by_id = {line["request_id"]: line for line in lines}
    assert len(lines) == len(by_id) == CONCURRENCY
    assert set(by_id) == {request_id for request_id, _, _ in results}
    for line in lines:
        assert (line["status"], line["stream"], line["user"], line["error"]) == (200, True, "reader", None), line
        assert line["tokens_out"] == len(TOKENS), line
    assert elapsed < DEADLINE_S, f"{CONCURRENCY} streams took {elapsed:.1f}s"
