"""OpenAI request parsing and response shapes (pure: no torch, no Starlette).

Only what the transformers engine implements is accepted; anything else is refused with
a 400 naming the parameter, the way vLLM does, rather than silently ignored.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

MAX_STOP_SEQUENCES = 4
MAX_COMPLETION_LOGPROBS = 5  # OpenAI's limit for /v1/completions
MAX_CHAT_TOP_LOGPROBS = 20  # OpenAI's limit for /v1/chat/completions


class RequestError(ValueError):
    """A request this engine refuses; ``status`` is the HTTP status, ``param`` the field."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.param, self.status, self.code = param, status, code

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": str(self), "type": kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True, slots=True, kw_only=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int | None = None  # number of alternatives per token; None: no logprobs


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationRequest:
    """A validated /v1/completions or /v1/chat/completions request."""

    kind: str  # "completion" or "chat"
    model: str
    prompt: str | None = None
    messages: tuple[dict[str, str], ...] = ()
    params: SamplingParams
    max_tokens_given: bool
    stream: bool = False
    include_usage: bool = False


def _number(body: dict, key: str, default: float, low: float, high: float) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise RequestError(f"{key}: expected a number in [{low}, {high}], found {value!r}", key)
    return float(value)


def _integer(body: dict, key: str, low: int, high: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise RequestError(f"{key}: expected an integer {bound}, found {value!r}", key)
    return value


def _stop(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items) or len(items) > MAX_STOP_SEQUENCES:
        raise RequestError(f"stop: expected a string or up to {MAX_STOP_SEQUENCES} non-empty strings, found {stop!r}", "stop")
    return tuple(items)


def _message_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": "..."}]
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise RequestError(f"messages[{index}].content: only text parts are supported, found {part!r}",
                                   f"messages[{index}].content")
            parts.append(part["text"])
        return "".join(parts)
    raise RequestError(f"messages[{index}].content: expected a string or text parts, found {content!r}",
                       f"messages[{index}].content")


def _common(body: dict, kind: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RequestError("expected a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model: expected the served model name", "model")
    n = body.get("n", 1)
    if n != 1:
        raise RequestError(f"n: this engine returns one choice, found {n!r}", "n")
    if body.get("echo"):
        raise RequestError("echo: not supported by this engine", "echo")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(f"stream: expected true or false, found {stream!r}", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise RequestError(f"stream_options: expected an object, found {options!r}", "stream_options")
    max_key = "max_completion_tokens" if kind == "chat" and body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _integer(body, max_key, 1)
    return {
        "model": model, "stream": stream, "include_usage": bool(options.get("include_usage")),
        "max_tokens": max_tokens,
        "temperature": _number(body, "temperature", 1.0, 0.0, 2.0),
        "top_p": _number(body, "top_p", 1.0, 0.0, 1.0) or 1.0,
        "seed": _integer(body, "seed", 0),
        "stop": _stop(body),
    }


def parse_completion(body: Any, default_max_tokens: int = 16) -> GenerationRequest:
    """Validate a /v1/completions body (OpenAI's legacy completions API)."""
    common = _common(body, "completion")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise RequestError("prompt: expected a string (or a list of one string)", "prompt")
    logprobs = _integer(body, "logprobs", 0, MAX_COMPLETION_LOGPROBS)
    return GenerationRequest(
        kind="completion", model=common["model"], prompt=prompt, stream=common["stream"],
        include_usage=common["include_usage"], max_tokens_given=common["max_tokens"] is not None,
        params=SamplingParams(
            max_tokens=common["max_tokens"] or default_max_tokens, temperature=common["temperature"],
            top_p=common["top_p"], seed=common["seed"], stop=common["stop"], logprobs=logprobs,
        ),
    )


def parse_chat(body: Any, default_max_tokens: int = 256) -> GenerationRequest:
    """Validate a /v1/chat/completions body."""
    common = _common(body, "chat")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: expected a non-empty list", "messages")
    parsed = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise RequestError(f"messages[{index}].role: expected system, user or assistant, found "
                               f"{message.get('role') if isinstance(message, dict) else message!r}",
                               f"messages[{index}].role")
        parsed.append({"role": message["role"], "content": _message_text(message.get("content"), index)})
    wants = body.get("logprobs", False)
    if not isinstance(wants, bool):
        raise RequestError(f"logprobs: expected true or false, found {wants!r}", "logprobs")
    top = _integer(body, "top_logprobs", 0, MAX_CHAT_TOP_LOGPROBS)
    if top is not None and not wants:
        raise RequestError("top_logprobs: needs logprobs: true", "top_logprobs")
    return GenerationRequest(
        kind="chat", model=common["model"], messages=tuple(parsed), stream=common["stream"],
        include_usage=common["include_usage"], max_tokens_given=common["max_tokens"] is not None,
        params=SamplingParams(
            max_tokens=common["max_tokens"] or default_max_tokens, temperature=common["temperature"],
            top_p=common["top_p"], seed=common["seed"], stop=common["stop"],
            logprobs=(top or 0) if wants else None,
        ),
    )


# --- responses -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token with its log-probability and the most likely alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


def new_id(kind: str) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion_logprobs(tokens: list[TokenLogprob], text_offset: int = 0) -> dict[str, Any]:
    """The legacy completions ``logprobs`` object (tokens, token_logprobs, top_logprobs, text_offset)."""
    offsets, position = [], text_offset
    for item in tokens:
        offsets.append(position)
        position += len(item.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [dict(t.top) for t in tokens],
        "text_offset": offsets,
    }


def chat_logprobs(tokens: list[TokenLogprob]) -> dict[str, Any]:
    """The chat ``logprobs`` object: ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""
    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}

    return {"content": [{**entry(t.token, t.logprob), "top_logprobs": [entry(s, lp) for s, lp in t.top]}
                        for t in tokens]}


def completion_body(request: GenerationRequest, request_id: str, text: str, tokens: list[TokenLogprob],
                    finish_reason: str, prompt_tokens: int, created: int | None = None) -> dict[str, Any]:
    created = int(time.time()) if created is None else created
    if request.kind == "chat":
        choice = {"index": 0, "message": {"role": "assistant", "content": text},
                  "logprobs": chat_logprobs(tokens) if request.params.logprobs is not None else None,
                  "finish_reason": finish_reason}
        kind = "chat.completion"
    else:
        choice = {"index": 0, "text": text,
                  "logprobs": completion_logprobs(tokens) if request.params.logprobs is not None else None,
                  "finish_reason": finish_reason}
        kind = "text_completion"
    return {"id": request_id, "object": kind, "created": created, "model": request.model,
            "choices": [choice], "usage": usage(prompt_tokens, len(tokens))}


def chunk_body(request: GenerationRequest, request_id: str, created: int, text: str | None,
               tokens: list[TokenLogprob], finish_reason: str | None, text_offset: int = 0,
               first: bool = False) -> dict[str, Any]:
    """One streamed chunk; ``text`` None with ``first`` sends the chat role delta."""
    wants = request.params.logprobs is not None
    if request.kind == "chat":
        delta: dict[str, Any] = {}
        if first:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        choice = {"index": 0, "delta": delta, "logprobs": chat_logprobs(tokens) if wants and tokens else None,
                  "finish_reason": finish_reason}
        kind = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text or "",
                  "logprobs": completion_logprobs(tokens, text_offset) if wants and tokens else None,
                  "finish_reason": finish_reason}
        kind = "text_completion"
    return {"id": request_id, "object": kind, "created": created, "model": request.model, "choices": [choice]}


def usage_chunk(request: GenerationRequest, request_id: str, created: int, prompt_tokens: int,
                completion_tokens: int) -> dict[str, Any]:
    kind = "chat.completion.chunk" if request.kind == "chat" else "text_completion"
    return {"id": request_id, "object": kind, "created": created, "model": request.model, "choices": [],
            "usage": usage(prompt_tokens, completion_tokens)}


def sse(data: dict[str, Any] | str) -> str:
    """One server-sent event; the stream ends with ``sse("[DONE]")``."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n"
