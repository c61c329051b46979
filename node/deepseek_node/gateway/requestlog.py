"""Structured request log lines (fields: see the package docstring) and their inputs.

``input_sha256`` hashes the input's canonical JSON, so the same prompt hashes the same
whatever the client's key order or whitespace; ``Confidence`` turns the engine's
logprobs (chat ``logprobs.content[].logprob`` or completions
``logprobs.token_logprobs[]``) into the mean token probability.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import logging.handlers
import math
import re
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

FIELDS = (
    "timestamp", "request_id", "method", "path", "user", "key_id", "model", "status", "stream",
    "input_sha256", "input_hmac", "confidence", "tokens_in", "tokens_out", "duration_ms", "client", "error",
    "engine_status",
)


def canonical_input(body: Mapping[str, Any]) -> str | None:
    """The input of a chat (``messages``) or completions (``prompt``) body as canonical JSON."""
    for name in ("messages", "prompt"):
        if name in body:
            return json.dumps(body[name], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return None


def input_sha256(body: Mapping[str, Any]) -> str | None:
    text = canonical_input(body)
    return hashlib.sha256(text.encode()).hexdigest() if text is not None else None


def input_hmac(body: Mapping[str, Any], key: bytes) -> str | None:
    """HMAC-SHA256 of the canonical input under the site's key: a guessable prompt (a record
    number, "yes") cannot be found by hashing guesses without the key."""
    text = canonical_input(body)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest() if text is not None else None


def load_hash_key(path: str) -> bytes:
    """The input-hash key: the file's bytes without surrounding whitespace, at least 16."""
    key = open(path, "rb").read().strip()
    if len(key) < 16:
        raise ValueError(f"{path}: an input hash key needs at least 16 bytes, found {len(key)}")
    return key


class Confidence:
    """Accumulates token logprobs of one response; ``value`` is the mean probability."""

    __slots__ = ("total", "count")

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def add_logprob(self, logprob: Any) -> None:
        if isinstance(logprob, int | float) and not isinstance(logprob, bool) and not math.isnan(logprob):
            self.total += math.exp(min(float(logprob), 0.0))
            self.count += 1

    def add_choice(self, choice: Mapping[str, Any]) -> None:
        logprobs = choice.get("logprobs")
        if not isinstance(logprobs, Mapping):
            return
        content = logprobs.get("content")
        if isinstance(content, list):  # chat completions
            for token in content:
                if isinstance(token, Mapping):
                    self.add_logprob(token.get("logprob"))
        token_logprobs = logprobs.get("token_logprobs")
        if isinstance(token_logprobs, list):  # legacy completions
            for logprob in token_logprobs:
                self.add_logprob(logprob)

    @property
    def value(self) -> float | None:
        return round(self.total / self.count, 6) if self.count else None


# Characters json.dumps(ensure_ascii=False) leaves raw that can split or break a line:
# unpaired surrogates (not encodable: the handler would drop the line), C1 controls
# (U+0085 is NEL) and the Unicode line and paragraph separators.
_UNSAFE = re.compile("[\ud800-\udfff\u0080-\u009f\u2028\u2029]")


def log_line(record: Mapping[str, Any]) -> str:
    """One record as one JSON line that is valid UTF-8 and reads as one line to any reader."""
    line = json.dumps({name: record.get(name) for name in (*FIELDS, *sorted(set(record) - set(FIELDS)))},
                      ensure_ascii=False, separators=(",", ":"), default=repr)
    # outside strings JSON is ASCII, so every match is inside a string and \uXXXX is its escape
    return _UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", line)


def utc_timestamp(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RequestLog:
    """Writes one JSON line per request to ``path`` (reopened after rotation) and stdout."""

    def __init__(self, path: str | None, to_stdout: bool = True):
        self.path = path
        self._logger = logging.Logger(f"deepseek_gateway.requests.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        formatter = logging.Formatter("%(message)s")
        if path:
            # WatchedFileHandler reopens the file when logrotate moved it (``create`` mode).
            handler: logging.Handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
            handler.setFormatter(formatter)
            self._logger.addHandler(handler)
        if to_stdout:
            stream = logging.StreamHandler(sys.stdout)
            stream.setFormatter(formatter)
            self._logger.addHandler(stream)

    def write(self, record: Mapping[str, Any]) -> str:
        line = log_line(record)
        self._logger.info(line)
        return line

    def close(self) -> None:
        for handler in list(self._logger.handlers):
            handler.close()
            self._logger.removeHandler(handler)
