"""What the gateway changes in OpenAI-style requests and responses, and nothing more.

When the client did not ask for logprobs (and, streaming, for the final usage chunk) the
gateway asks the engine for them to compute the logged confidence and token counts, then
removes them again, so the client receives what it would have received directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from .requestlog import Confidence

CHAT = "chat"
COMPLETIONS = "completions"


class LimitError(ValueError):
    """The request exceeds a per-model limit; the message is shown to the client."""


@dataclass(slots=True)
class Exchange:
    """What was injected into one request and what its response told us."""

    kind: str
    stream: bool
    injected_logprobs: bool = False
    injected_usage: bool = False
    confidence: Confidence = field(default_factory=Confidence)
    tokens_in: int | None = None
    tokens_out: int | None = None

    @property
    def rewrites(self) -> bool:
        return self.injected_logprobs or self.injected_usage

    def observe(self, payload: MutableMapping[str, Any]) -> bool:
        """Record logprobs/usage of a response or chunk and strip what we injected.

        Returns False when the whole chunk was ours (the usage-only final chunk).
        """
        for choice in payload.get("choices") or ():
            if isinstance(choice, MutableMapping):
                self.confidence.add_choice(choice)
                if self.injected_logprobs and "logprobs" in choice:
                    choice["logprobs"] = None
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self.tokens_in = usage.get("prompt_tokens", self.tokens_in)
            self.tokens_out = usage.get("completion_tokens", self.tokens_out)
        if self.injected_usage and "usage" in payload:
            if not payload.get("choices"):
                return False
            del payload["usage"]
        return True

    @property
    def output_tokens(self) -> int | None:
        return self.tokens_out if self.tokens_out is not None else (self.confidence.count or None)


def prepare(body: dict[str, Any], kind: str, limits: dict[str, Any] | None, want_confidence: bool) -> Exchange:
    """Apply the model's limits to ``body`` in place and inject what logging needs."""
    limits = limits or {}
    token_field = "max_completion_tokens" if kind == CHAT and "max_completion_tokens" in body else "max_tokens"
    requested = body.get(token_field)
    if requested is None and limits.get("default_max_tokens"):
        body[token_field] = requested = limits["default_max_tokens"]
    ceiling = limits.get("max_tokens_limit")
    if ceiling and isinstance(requested, int) and requested > ceiling:
        raise LimitError(f"{token_field} {requested} exceeds this model's limit of {ceiling}")
    temperature, hottest = body.get("temperature"), limits.get("max_temperature")
    if hottest is not None and isinstance(temperature, int | float) and temperature > hottest:
        raise LimitError(f"temperature {temperature} exceeds this model's limit of {hottest}")

    exchange = Exchange(kind=kind, stream=bool(body.get("stream")))
    if want_confidence:
        if kind == CHAT and not body.get("logprobs"):
            body["logprobs"] = True
            exchange.injected_logprobs = True
        elif kind == COMPLETIONS and body.get("logprobs") is None:
            body["logprobs"] = 0  # the sampled token's logprob, no alternatives
            exchange.injected_logprobs = True
    if exchange.stream:
        options = body.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage")):
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
            exchange.injected_usage = True
    return exchange


class EventStream:
    """Relays a server-sent event stream, observing every ``data:`` JSON payload.

    Without rewrites the upstream bytes pass through unchanged (as they arrive); with
    rewrites each complete event is re-serialised after ``Exchange.observe``.
    """

    def __init__(self, exchange: Exchange):
        self.exchange = exchange
        self._buffer = b""

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self._buffer += chunk
        while True:
            cut = _event_end(self._buffer)
            if cut is None:
                break
            event, self._buffer = self._buffer[:cut[0]], self._buffer[cut[1]:]
            rewritten = self._event(event)
            if self.exchange.rewrites and rewritten is not None:
                yield rewritten
        if not self.exchange.rewrites:
            yield chunk

    def close(self) -> Iterator[bytes]:
        rest, self._buffer = self._buffer, b""
        if rest.strip() and self.exchange.rewrites:
            rewritten = self._event(rest)
            if rewritten is not None:
                yield rewritten

    def _event(self, event: bytes) -> bytes | None:
        lines = event.decode("utf-8", errors="replace").splitlines()
        out: list[str] = []
        for line in lines:
            if line.startswith("data:"):
                data = line[5:].strip()
                if data and data != "[DONE]":
                    try:
                        payload = json.loads(data)
                    except ValueError:
                        out.append(line)
                        continue
                    if isinstance(payload, dict):
                        if not self.exchange.observe(payload):
                            return None
                        line = "data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
            out.append(line)
        return ("\n".join(out) + "\n\n").encode()


def _event_end(buffer: bytes) -> tuple[int, int] | None:
    """(end of the first event, start of the next) in ``buffer``, or None if incomplete."""
    positions = [(buffer.find(sep), len(sep)) for sep in (b"\r\n\r\n", b"\n\n", b"\r\r")]
    found = [(pos, size) for pos, size in positions if pos >= 0]
    if not found:
        return None
    pos, size = min(found)
    return pos, pos + size
