"""Fuzzing the gateway's request parsing (issue 19): hypothesis drives whole HTTP requests.

Brief in CI (DEEPSEEK_FUZZ_EXAMPLES, default 150 examples a target); a longer run by hand:
``DEEPSEEK_FUZZ_EXAMPLES=20000 .venv/bin/pytest -q tests/unit/deepseek_node/gateway/test_fuzz.py``.
Properties: never a 500; every request leaves exactly one log line, with its request id,
that is one valid UTF-8 JSON line; what reaches the engine is within the model's limits.
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings, strategies as st

from deepseek_node.gateway.openai import SAMPLING_FIELDS

from .conftest import MODEL

EXAMPLES = int(os.environ.get("DEEPSEEK_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="DEEPSEEK_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
LIMITS = {"max_tokens_limit": 256, "max_temperature": 1.0, "default_max_tokens": 64}

# every code point, unpaired surrogates, C1 controls and line separators included
any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=12)
numbers = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True))
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text, st.sampled_from(["100000", "1e9", "1.9", "", "0"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(any_text, inner, max_size=4)),
                           max_leaves=12)
sampling = st.dictionaries(st.sampled_from(sorted({*SAMPLING_FIELDS, "logprobs", "stream", "stream_options"})),
                           json_values, max_size=5)
messages = st.one_of(json_values, st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]),
                                                                   "content": any_text}), max_size=3))


@st.composite
def bodies(draw) -> bytes:
    """A request body: mostly JSON objects shaped like chat requests, sometimes raw bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=64))
    body = {"model": draw(st.one_of(st.just(MODEL), any_text)), "messages": draw(messages), **draw(sampling)}
    if draw(st.booleans()):
        body["prompt"] = draw(json_values)
    depth = draw(st.sampled_from([0, 0, 0, 50, 5000]))
    text = json.dumps(body, allow_nan=True, ensure_ascii=draw(st.booleans()))
    return ("[" * depth + text + "]" * depth if depth else text).encode("utf-8", "surrogatepass")


def _check_reply(gw, response, lines_before: int) -> None:
    assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
    request_id = response.headers["x-request-id"]
    raw_lines = open(gw.config.request_log, "rb").read().decode("utf-8").splitlines()
    assert len(raw_lines) == lines_before + 1, "one log line per request"
    line = json.loads(raw_lines[-1])
    assert line["request_id"] == request_id and line["status"] == response.status_code
    assert "\u2028" not in raw_lines[-1] and "\x85" not in raw_lines[-1]


@FUZZ
@given(body=bodies(), path=st.sampled_from(["/v1/chat/completions", "/v1/completions"]))
def test_fuzzed_requests_are_answered_logged_and_limited(make_gateway, body, path):
    gw = _gateway(make_gateway)
    before = len(gw.log_lines())
    received = len(gw.engine.received)
    response = gw.client.post(path, content=body, headers={**gw.auth("reader"), "content-type": "application/json"})
    _check_reply(gw, response, before)
    for sent in gw.engine.received[received:]:  # what the engine was asked to do
        budget = sent.get("max_completion_tokens", sent.get("max_tokens"))
        assert type(budget) is int and 1 <= budget <= LIMITS["max_tokens_limit"], sent
        assert not ("max_completion_tokens" in sent and "max_tokens" in sent)
        temperature = sent.get("temperature", 0)
        assert type(temperature) in (int, float) and 0 <= temperature <= LIMITS["max_temperature"]
        for name, (integer, _low, _high, _open) in SAMPLING_FIELDS.items():
            if name in sent:
                assert type(sent[name]) is int if integer else type(sent[name]) in (int, float), (name, sent[name])


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
       path=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#"), max_size=30),
       header=st.one_of(st.none(), st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)))
def test_fuzzed_paths_and_keys_are_answered_and_logged(make_gateway, method, path, header):
    gw = _gateway(make_gateway)
    before = len(gw.log_lines())
    headers = {"Authorization": header} if header is not None else {}
    response = gw.client.request(method, "/" + path.lstrip("/"), headers=headers)  # "//x" would be a host
    if response.request.url.path in ("/health", "/metrics"):  # probes: unlogged by design
        return
    _check_reply(gw, response, before)


_BUILT: dict[int, object] = {}


def _gateway(make_gateway):
    """One gateway per test (hypothesis reuses the function's fixtures across examples)."""
    key = id(make_gateway)
    if key not in _BUILT:
        _BUILT.clear()
        gw = make_gateway()
        gw.db.update_model(MODEL, LIMITS)
        _BUILT[key] = gw
    return _BUILT[key]
