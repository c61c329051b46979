"""The transformers engine server against a real tiny checkpoint (DeepSeek-V3 architecture).

Starlette's TestClient drives the ASGI app in-process; the model is lab/tiny_model.py's
random checkpoint, so every path (chat template, MLA + MoE forward, sampling, logprobs,
SSE) runs for real in about a second.
"""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("torch", reason="the engine's test dependencies (torch CPU, transformers) are not installed")
pytest.importorskip("transformers", reason="the engine's test dependencies are not installed")

from starlette.testclient import TestClient  # noqa: E402

from lab.tiny_model import MAX_POSITION_EMBEDDINGS, build  # noqa: E402
from deepseek_node.engine_server.app import create_app  # noqa: E402
from deepseek_node.engine_server.backend import TransformersBackend  # noqa: E402

NAME = "deepseek-lab/tiny-deepseek-v3"


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    return TransformersBackend(str(build(tmp_path_factory.mktemp("models"), log=lambda _: None)), device="cpu")


@pytest.fixture(scope="module")
def client(backend):
    with TestClient(create_app(backend, NAME, default_max_tokens=8)) as test_client:
        yield test_client


def events(response) -> list:
    assert response.headers["content-type"].startswith("text/event-stream")
    data = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]", f"stream must end with [DONE], found {data[-1]!r}"
    return [json.loads(item) for item in data[:-1]]


def test_health_and_models(client, backend):
    assert client.get("/health").json()["status"] == "ok"
    models = client.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == [NAME]
    assert models["data"][0]["max_model_len"] == backend.max_model_len == MAX_POSITION_EMBEDDINGS


def test_completion_is_deterministic_with_greedy_decoding(client):
    body = {"model": NAME, "prompt": "The quick brown fox", "max_tokens": 6, "temperature": 0}
    first, second = client.post("/v1/completions", json=body).json(), client.post("/v1/completions", json=body).json()
    assert first["object"] == "text_completion"
    assert first["choices"][0]["text"] == second["choices"][0]["text"]
    assert first["choices"][0]["finish_reason"] in ("length", "stop")
    usage = first["usage"]
    assert usage["prompt_tokens"] > 0 and 1 <= usage["completion_tokens"] <= 6
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_completion_logprobs_are_real_log_probabilities(client):
    body = {"model": NAME, "prompt": "Hello", "max_tokens": 4, "temperature": 0, "logprobs": 3}
    choice = client.post("/v1/completions", json=body).json()["choices"][0]
    logprobs = choice["logprobs"]
    count = len(logprobs["tokens"])
    assert count >= 1 and len(logprobs["token_logprobs"]) == len(logprobs["top_logprobs"]) == count
    for token, value, top in zip(logprobs["tokens"], logprobs["token_logprobs"], logprobs["top_logprobs"], strict=True):
        assert value <= 0
        assert len(top) == 3 and all(v <= 0 for v in top.values())
        # Greedy: the chosen token is the most likely one.
        assert math.isclose(value, max(top.values()), abs_tol=1e-5) and token in top
    assert logprobs["text_offset"][0] == 0


def test_chat_completion_with_top_logprobs(client):
    body = {"model": NAME, "messages": [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Hello, world!"}],
            "max_tokens": 5, "temperature": 0, "logprobs": True, "top_logprobs": 2}
    result = client.post("/v1/chat/completions", json=body).json()
    assert result["object"] == "chat.completion"
    choice = result["choices"][0]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    content = choice["logprobs"]["content"]
    assert len(content) == result["usage"]["completion_tokens"]
    assert all(len(item["top_logprobs"]) == 2 and item["bytes"] == list(item["token"].encode()) for item in content)


def test_streamed_chat_matches_the_whole_answer(client):
    body = {"model": NAME, "messages": [{"role": "user", "content": "Paris is"}], "max_tokens": 6,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}, "logprobs": True}
    whole = client.post("/v1/chat/completions", json={**body, "stream": False}).json()
    chunks = events(client.post("/v1/chat/completions", json=body))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    finals = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finals == [whole["choices"][0]["finish_reason"]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    streamed = [t for c in chunks if c["choices"] and c["choices"][0]["logprobs"] for t in c["choices"][0]["logprobs"]["content"]]
    assert streamed == whole["choices"][0]["logprobs"]["content"]


def test_streamed_completion_with_logprobs(client):
    body = {"model": NAME, "prompt": "Numbers:", "max_tokens": 5, "temperature": 0, "stream": True, "logprobs": 1}
    whole = client.post("/v1/completions", json={**body, "stream": False}).json()["choices"][0]
    chunks = events(client.post("/v1/completions", json=body))
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["text"]
    tokens = [t for c in chunks if c["choices"][0]["logprobs"] for t in c["choices"][0]["logprobs"]["tokens"]]
    assert tokens == whole["logprobs"]["tokens"]


def test_seeded_sampling_is_reproducible(client):
    body = {"model": NAME, "prompt": "Hello", "max_tokens": 8, "temperature": 1.0, "top_p": 0.9, "seed": 7}
    texts = {client.post("/v1/completions", json=body).json()["choices"][0]["text"] for _ in range(2)}
    assert len(texts) == 1


def test_stop_sequence_ends_the_text_before_it(client):
    greedy = {"model": NAME, "prompt": "The quick brown fox", "max_tokens": 8, "temperature": 0}
    text = client.post("/v1/completions", json=greedy).json()["choices"][0]["text"]
    if len(text) < 3:
        pytest.skip(f"the random checkpoint produced only {text!r}; nothing to stop on")
    stop = text[2:4] if len(text) >= 4 else text[2]
    stopped = client.post("/v1/completions", json={**greedy, "stop": [stop]}).json()["choices"][0]
    assert stopped["finish_reason"] == "stop"
    assert stopped["text"] == text[: text.index(stop)]


@pytest.mark.parametrize(("path", "body", "status", "param"), [
    ("/v1/completions", {"model": "other", "prompt": "x"}, 404, "model"),
    ("/v1/completions", {"model": NAME, "prompt": 3}, 400, "prompt"),
    ("/v1/completions", {"model": NAME, "prompt": "x", "logprobs": 9}, 400, "logprobs"),
    ("/v1/completions", {"model": NAME, "prompt": "x", "n": 2}, 400, "n"),
    ("/v1/completions", {"model": NAME, "prompt": "x", "max_tokens": MAX_POSITION_EMBEDDINGS}, 400, "max_tokens"),
    ("/v1/chat/completions", {"model": NAME, "messages": []}, 400, "messages"),
    ("/v1/chat/completions", {"model": NAME, "messages": [{"role": "tool", "content": "x"}]}, 400, "messages[0].role"),
    ("/v1/chat/completions", {"model": NAME, "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2},
     400, "top_logprobs"),
])
def test_bad_requests_are_refused_naming_the_parameter(client, path, body, status, param):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


def test_metrics_count_requests_and_tokens(client):
    before = client.get("/metrics").text
    client.post("/v1/completions", json={"model": NAME, "prompt": "Hi", "max_tokens": 3, "temperature": 0})
    after = client.get("/metrics").text

    def value(text: str, name: str) -> float:
        lines = [line for line in text.splitlines() if line.startswith(name)]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0

    assert value(after, "deepseek_engine_generation_tokens_total") > value(before, "deepseek_engine_generation_tokens_total")
    assert 'deepseek_engine_requests_total{endpoint="/v1/completions",status="200"}' in after
    assert f'model="{NAME}"' in after and "deepseek_engine_requests_running 0.0" in after
