"""A fake OpenAI-compatible engine (httpx MockTransport) and a gateway in front of it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

from deepseek_node.gateway.app import create_app
from deepseek_node.gateway.config import GatewayConfig
from deepseek_node.gateway.db import Database

MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
OTHER_MODEL = "deepseek-ai/DeepSeek-V3"  # granted to nobody; routed
UNROUTED = "deepseek-ai/not-on-this-node"
TOKENS = ("Hel", "lo", "!")
LOGPROBS = (-0.1, -0.2, -0.3)
EXPECTED_CONFIDENCE = round(sum(math.exp(lp) for lp in LOGPROBS) / len(LOGPROBS), 6)
PROMPT_TOKENS = 7


@dataclass
class FakeEngine:
    """Answers like vLLM: logprobs only when asked, usage chunk only when asked."""

    received: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    delay_s: float = 0.0
    status: int = 200
    error_text: str = '{"error":{"message":"engine says no"}}'  # the body of a non-200 reply
    raw_reply: bytes | None = None  # a 200 reply with this body instead of a completion
    fail_after_tokens: int | None = None  # stream an error event after this many tokens

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.received.append(body)
        self.paths.append(request.url.path)
        if self.delay_s:
            await anyio.sleep(self.delay_s)
        if self.status != 200:
            return httpx.Response(self.status, content=self.error_text.encode(),
                                  headers={"content-type": "application/json"})
        if self.raw_reply is not None:
            return httpx.Response(200, content=self.raw_reply, headers={"content-type": "text/plain"})
        chat = request.url.path.endswith("/chat/completions")
        if body.get("stream"):
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  content=self._events(body, chat))
        return httpx.Response(200, json=self._reply(body, chat))

    def _logprobs(self, body: dict, chat: bool, tokens=TOKENS, logprobs=LOGPROBS):
        if chat and body.get("logprobs"):
            return {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
                                for t, lp in zip(tokens, logprobs, strict=True)]}
        if not chat and body.get("logprobs") is not None:
            return {"tokens": list(tokens), "token_logprobs": list(logprobs), "top_logprobs": None,
                    "text_offset": list(range(len(tokens)))}
        return None

    def _reply(self, body: dict, chat: bool) -> dict:
        text = "".join(TOKENS)
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}} if chat
                  else {"index": 0, "text": text})
        choice.update(logprobs=self._logprobs(body, chat), finish_reason="stop")
        return {"id": "cmpl-1", "object": "chat.completion" if chat else "text_completion", "model": body["model"],
                "choices": [choice],
                "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": len(TOKENS),
                          "total_tokens": PROMPT_TOKENS + len(TOKENS)}}

    async def _events(self, body: dict, chat: bool):
        usage_wanted = (body.get("stream_options") or {}).get("include_usage")
        for index, (token, logprob) in enumerate(zip(TOKENS, LOGPROBS, strict=True)):
            if index == self.fail_after_tokens:  # as vLLM reports an exception mid-stream
                error = {"message": self.error_text, "type": "InternalServerError", "code": 500}
                yield f"data: {json.dumps({'error': error})}\n\n".encode()
                yield b"data: [DONE]\n\n"
                return
            delta = {"delta": {"content": token}} if chat else {"text": token}
            chunk = {"id": "cmpl-1", "object": "chat.completion.chunk", "model": body["model"],
                     "choices": [{"index": 0, **delta,
                                  "logprobs": self._logprobs(body, chat, (token,), (logprob,)),
                                  "finish_reason": "stop" if index == len(TOKENS) - 1 else None}]}
            # split every event across two network chunks, as TCP may
            raw = f"data: {json.dumps(chunk)}\n\n".encode()
            yield raw[:7]
            yield raw[7:]
        if usage_wanted:
            usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": len(TOKENS),
                     "total_tokens": PROMPT_TOKENS + len(TOKENS)}
            yield f"data: {json.dumps({'id': 'cmpl-1', 'choices': [], 'usage': usage})}\n\n".encode()
        yield b"data: [DONE]\n\n"


@dataclass
class Harness:
    client: TestClient
    engine: FakeEngine
    db: Database
    config: GatewayConfig
    keys: dict[str, str]

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[user]}"}

    def admin(self) -> dict[str, str]:
        """What ``deepseek-gateway drain`` sends: the token the gateway wrote at start."""
        return {"X-Admin-Token": Path(self.config.admin_token_file).read_text().strip()}

    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in Path(self.config.request_log).read_text().splitlines()]


def make_config(tmp_path: Path, **overrides) -> GatewayConfig:
    values = dict(
        tls_cert=None, tls_key=None, database_path=str(tmp_path / "gateway.db"),
        request_log=str(tmp_path / "requests.jsonl"), log_to_stdout=False,
        admin_token_file=str(tmp_path / "admin.token"),
        upstreams={MODEL: "http://engine.test:8000", OTHER_MODEL: "http://engine.test:8001"},
    )
    values.update(overrides)
    return GatewayConfig.from_mapping(values)


def seed_users(db: Database) -> dict[str, str]:
    """reader/writer/admin on MODEL, nogrant with no grant; one key each."""
    db.migrate()
    keys = {}
    for user, permission in (("reader", "read"), ("writer", "write"), ("admin", "admin"), ("nogrant", None)):
        db.add_user(user)
        if permission:
            db.grant(user, MODEL, permission)
        keys[user] = db.create_key(user)
    return keys


@pytest.fixture
def make_gateway(tmp_path):
    """Build a gateway; ``make_gateway(**config_overrides)`` -> Harness (client already started)."""
    started: list[TestClient] = []

    def build(client_address=("127.0.0.1", 50000), engine: FakeEngine | None = None, **overrides) -> Harness:
        config = make_config(tmp_path, **overrides)
        database = Database(path=config.database_path, dsn=config.database_dsn)
        keys = seed_users(database)
        engine = engine or FakeEngine()
        app = create_app(config, database, transport=httpx.MockTransport(engine))
        client = TestClient(app, client=client_address)
        client.__enter__()
        started.append(client)
        return Harness(client, engine, database, config, keys)

    yield build
    for client in started:
        client.__exit__(None, None, None)


@pytest.fixture
def gw(make_gateway) -> Harness:
    return make_gateway()
