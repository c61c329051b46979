"""The OpenAI-compatible HTTP application (Starlette).

Routes: ``GET /health``, ``GET /v1/models``, ``POST /v1/completions``,
``POST /v1/chat/completions`` (both with ``stream`` as server-sent events and with
``logprobs``), ``GET /metrics`` (Prometheus text format). The backend is anything with
``encode_prompt``, ``encode_chat``, ``generate`` and ``max_model_len`` (see backend.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import protocol
from .protocol import GenerationRequest, RequestError, TokenLogprob
from .stops import StopTracker

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """The engine's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self, served_model_name: str, max_model_len: int, device: str):
        self.registry = CollectorRegistry()
        prefix = "deepseek_engine_"
        self.requests = Counter(prefix + "requests", "Requests by endpoint and HTTP status.",
                                ("endpoint", "status"), registry=self.registry)
        self.prompt_tokens = Counter(prefix + "prompt_tokens", "Prompt tokens processed.", registry=self.registry)
        self.generation_tokens = Counter(prefix + "generation_tokens", "Tokens generated.", registry=self.registry)
        self.running = Gauge(prefix + "requests_running", "Requests being generated now.", registry=self.registry)
        self.latency = Histogram(prefix + "request_duration_seconds", "Time from request to last token.",
                                 ("endpoint",), buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.first_token = Histogram(prefix + "time_to_first_token_seconds", "Time from request to first token.",
                                     buckets=_LATENCY_BUCKETS, registry=self.registry)
        info = Gauge(prefix + "model_info", "The served model (value 1).",
                     ("model", "max_model_len", "device", "engine"), registry=self.registry)
        info.labels(served_model_name, str(max_model_len), device, "transformers").set(1)


def _error(error: RequestError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def create_app(backend: Any, served_model_name: str, *, default_max_tokens: int = 256) -> Starlette:
    """Build the application around a loaded backend."""
    metrics = Metrics(served_model_name, backend.max_model_len, str(getattr(backend, "device", "cpu")))
    created = int(time.time())

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": served_model_name})

    async def models(request: Request) -> Response:
        metrics.requests.labels("/v1/models", "200").inc()
        return JSONResponse({"object": "list", "data": [{
            "id": served_model_name, "object": "model", "created": created, "owned_by": "deepseek-infra",
            "root": getattr(backend, "model_path", served_model_name), "max_model_len": backend.max_model_len,
        }]})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def _prepare(request: GenerationRequest) -> tuple[GenerationRequest, list[int]]:
        if request.model != served_model_name:
            raise RequestError(f"The model `{request.model}` does not exist; this engine serves "
                               f"`{served_model_name}`.", "model", status=404, code="model_not_found")
        try:
            ids = backend.encode_chat(request.messages) if request.kind == "chat" else backend.encode_prompt(request.prompt)
        except ValueError as error:
            raise RequestError(str(error), "messages" if request.kind == "chat" else "prompt") from None
        room = backend.max_model_len - len(ids)
        if room < 1:
            raise RequestError(f"This model's maximum context length is {backend.max_model_len} tokens; the prompt "
                               f"has {len(ids)}.", "messages" if request.kind == "chat" else "prompt")
        if request.params.max_tokens > room:
            if request.max_tokens_given:
                raise RequestError(
                    f"This model's maximum context length is {backend.max_model_len} tokens; {len(ids)} prompt "
                    f"tokens + max_tokens {request.params.max_tokens} exceed it.", "max_tokens")
            # max_tokens was defaulted: generate at most what the context has room for.
            request = replace(request, params=replace(request.params, max_tokens=room))
        return request, ids

    def _run(request: GenerationRequest, ids: list[int], started: float) -> Iterator[tuple[str, list[TokenLogprob], str | None]]:
        """Yield (text to send, tokens it covers, finish reason) while generating."""
        tracker = StopTracker(request.params.stop)
        tokens: list[TokenLogprob] = []
        metrics.running.inc()
        metrics.prompt_tokens.inc(len(ids))
        try:
            for step in backend.generate(ids, request.params):
                if not tokens:
                    metrics.first_token.observe(time.monotonic() - started)
                metrics.generation_tokens.inc()
                tokens.append(step.logprob)
                text, stopped = tracker.feed(step.text)
                if stopped:
                    yield text, [step.logprob], "stop"
                    return
                if step.finished:
                    yield text + tracker.flush(), [step.logprob], step.finished
                    return
                yield text, [step.logprob], None
        finally:
            metrics.running.dec()

    async def generate(request: Request, kind: str) -> Response:
        endpoint = f"/v1/{'chat/' if kind == 'chat' else ''}completions"
        started = time.monotonic()
        try:
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise RequestError("expected a JSON body") from None
            parsed = (protocol.parse_chat(body, default_max_tokens) if kind == "chat"
                      else protocol.parse_completion(body, min(default_max_tokens, 16)))
            parsed, ids = _prepare(parsed)
        except RequestError as error:
            metrics.requests.labels(endpoint, str(error.status)).inc()
            return _error(error)
        request_id, now = protocol.new_id(kind), int(time.time())

        if not parsed.stream:
            def complete() -> dict[str, Any]:
                text, tokens, reason = "", [], "length"
                for piece, covered, finish in _run(parsed, ids, started):
                    text += piece
                    tokens += covered
                    reason = finish or reason
                return protocol.completion_body(parsed, request_id, text, tokens, reason, len(ids), now)

            body = await run_in_threadpool(complete)
            metrics.latency.labels(endpoint).observe(time.monotonic() - started)
            metrics.requests.labels(endpoint, "200").inc()
            return JSONResponse(body)

        def events() -> Iterator[str]:
            generated, offset = 0, 0
            if parsed.kind == "chat":
                yield protocol.sse(protocol.chunk_body(parsed, request_id, now, "", [], None, first=True))
            for piece, covered, finish in _run(parsed, ids, started):
                generated += len(covered)
                yield protocol.sse(protocol.chunk_body(parsed, request_id, now, piece, covered, finish, offset))
                offset += len(piece)
            if parsed.include_usage:
                yield protocol.sse(protocol.usage_chunk(parsed, request_id, now, len(ids), generated))
            yield protocol.sse("[DONE]")
            metrics.latency.labels(endpoint).observe(time.monotonic() - started)
            metrics.requests.labels(endpoint, "200").inc()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def completions(request: Request) -> Response:
        return await generate(request, "completion")

    async def chat_completions(request: Request) -> Response:
        return await generate(request, "chat")

    return Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ])
