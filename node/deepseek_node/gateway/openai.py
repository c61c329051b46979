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
    engine_error: str | None = None  # an error event's text, for the node's log only

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


# Sampling fields the engine (vLLM's OpenAI server) reads, with the values it can act on:
# (integer, lowest, highest, lowest excluded). Anything else in a body is passed through:
# none of it changes how many tokens are generated or how they are sampled.
SAMPLING_FIELDS: dict[str, tuple[bool, float | None, float | None, bool]] = {
    "max_tokens": (True, 1, None, False),
    "max_completion_tokens": (True, 1, None, False),
    "min_tokens": (True, 0, None, False),
    "n": (True, 1, 128, False),
    "best_of": (True, 1, 128, False),
    "temperature": (False, 0, None, False),
    "top_p": (False, 0, 1, True),
    "top_k": (True, -1, None, False),
    "min_p": (False, 0, 1, False),
    "presence_penalty": (False, -2, 2, False),
    "frequency_penalty": (False, -2, 2, False),
    "repetition_penalty": (False, 0, None, True),
    "length_penalty": (False, None, None, False),
    "seed": (True, -(2**63), 2**64 - 1, False),
    "top_logprobs": (True, 0, 20, False),
    "prompt_logprobs": (True, 0, 20, False),
    "truncate_prompt_tokens": (True, -1, None, False),
}
# token budget fields, in the order vLLM reads them (``max_completion_tokens or max_tokens``)
TOKEN_FIELDS = {CHAT: ("max_completion_tokens", "max_tokens"), COMPLETIONS: ("max_tokens",)}


def _number(name: str, value: Any, integer: bool) -> int | float:
    """``value`` as the engine will read it: a JSON number; integral floats become ints."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LimitError(f"{name}: expected a JSON number, found {type(value).__name__} {value!r:.40}")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise LimitError(f"{name}: expected a finite number, found {value!r}")
        if integer:
            if not value.is_integer():
                raise LimitError(f"{name}: expected an integer, found {value!r}")
            value = int(value)
    return value


def normalise_sampling(body: dict[str, Any], kind: str) -> None:
    """Check every sampling field's type and range in place; nulls are dropped.

    The engine would coerce ``"100000"`` or ``1e9`` itself, after our limits were checked, so
    only values that are already what the engine reads are forwarded.
    """
    for name, (integer, low, high, low_open) in SAMPLING_FIELDS.items():
        if name not in body:
            continue
        if body[name] is None:
            del body[name]
            continue
        value = body[name] = _number(name, body[name], integer)
        if low is not None and (value <= low if low_open else value < low):
            raise LimitError(f"{name}: {value} is below the smallest allowed value ({'above ' if low_open else ''}{low})")
        if high is not None and value > high:
            raise LimitError(f"{name}: {value} is above the largest allowed value ({high})")
    if kind == COMPLETIONS and "logprobs" in body and body["logprobs"] is not None:
        logprobs = body["logprobs"] = _number("logprobs", body["logprobs"], True)
        if not 0 <= logprobs <= 20:
            raise LimitError(f"logprobs: {logprobs} is outside 0..20")
    if kind == CHAT and "logprobs" in body and not isinstance(body["logprobs"], bool | None):
        raise LimitError(f"logprobs: expected true or false, found {body['logprobs']!r:.40}")
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise LimitError(f"stream: expected true or false, found {body['stream']!r:.40}")


def prepare(body: dict[str, Any], kind: str, limits: dict[str, Any] | None, want_confidence: bool) -> Exchange:
    """Apply the model's limits to ``body`` in place and inject what logging needs.

    One token budget is forwarded, the one the engine would use, so a zero or null
    ``max_completion_tokens`` beside a large ``max_tokens`` cannot slip past the ceiling.
    """
    limits = limits or {}
    normalise_sampling(body, kind)
    names = TOKEN_FIELDS[kind]
    given = [name for name in names if name in body]
    token_field = given[0] if given else names[-1]
    requested = body.get(token_field)
    for name in names:
        body.pop(name, None)
    if requested is None and limits.get("default_max_tokens"):
        requested = limits["default_max_tokens"]
    ceiling = limits.get("max_tokens_limit")
    if ceiling and requested is not None and requested > ceiling:
        raise LimitError(f"{token_field} {requested} exceeds this model's limit of {ceiling}")
    if requested is not None:
        body[token_field] = requested
    floor = body.get("min_tokens")
    if floor and (ceiling and floor > ceiling or requested is not None and floor > requested):
        raise LimitError(f"min_tokens {floor} exceeds the token budget of {requested or ceiling}")
    temperature, hottest = body.get("temperature"), limits.get("max_temperature")
    if hottest is not None and temperature is not None and temperature > hottest:
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

    Each complete event is relayed as the engine sent it, or re-serialised after
    ``Exchange.observe`` when the gateway injected something. An engine error event
    (``data: {"error": ...}``) is replaced by ``error_event``: its text may hold internal
    detail, and is kept in ``exchange.engine_error`` for the node's log.
    """

    def __init__(self, exchange: Exchange, error_event: bytes = b""):
        self.exchange = exchange
        self.error_event = error_event
        self._buffer = b""

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self._buffer += chunk
        while True:
            cut = _event_end(self._buffer)
            if cut is None:
                break
            event, raw, self._buffer = self._buffer[:cut[0]], self._buffer[:cut[1]], self._buffer[cut[1]:]
            out = self._event(event, raw)
            if out is not None:
                yield out

    def close(self) -> Iterator[bytes]:
        rest, self._buffer = self._buffer, b""
        if rest.strip():
            out = self._event(rest, rest)
            if out is not None:
                yield out

    def _event(self, event: bytes, raw: bytes) -> bytes | None:
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
                        if "error" in payload and not payload.get("choices"):
                            self.exchange.engine_error = data[:4096]
                            return self.error_event
                        if not self.exchange.observe(payload):
                            return None
                        line = "data: " + json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
            out.append(line)
        if not self.exchange.rewrites:
            return raw
        return ("\n".join(out) + "\n\n").encode()


def _event_end(buffer: bytes) -> tuple[int, int] | None:
    """(end of the first event, start of the next) in ``buffer``, or None if incomplete."""
    positions = [(buffer.find(sep), len(sep)) for sep in (b"\r\n\r\n", b"\n\n", b"\r\r")]
    found = [(pos, size) for pos, size in positions if pos >= 0]
    if not found:
        return None
    pos, size = min(found)
    return pos, pos + size
