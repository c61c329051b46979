"""The engine answers with the served model, generates for real, and listens only where configured."""

from __future__ import annotations

import json
import shlex

from deepseek_infra import engine


def curl(host, url: str, body: dict | None = None) -> tuple[int, str]:
    data = f"-H 'Content-Type: application/json' --data {shlex.quote(json.dumps(body))}" if body else ""
    result = host.run(f"curl -sS --max-time 120 -o - -w '\\n%{{http_code}}' {data} {shlex.quote(url)}")
    assert result.rc == 0, f"{host.backend.hostname}: {url}: curl failed: {result.stderr.strip()}"
    text, _, status = result.stdout.rpartition("\n")
    return int(status), text


def test_health(host, http_engine):
    status, body = curl(host, f"{http_engine['url']}/health")
    assert status == 200, f"{host.backend.hostname}: /health: expected 200, found {status} {body[:200]}"


def test_models_lists_the_served_name(host, http_engine):
    status, body = curl(host, f"{http_engine['url']}/v1/models")
    assert status == 200, f"{host.backend.hostname}: /v1/models: expected 200, found {status}"
    ids = [model["id"] for model in json.loads(body)["data"]]
    assert ids == [http_engine["served_model_name"]], (
        f"{host.backend.hostname}: /v1/models: expected [{http_engine['served_model_name']!r}], found {ids}"
    )


def test_real_completion(host, http_engine):
    name = http_engine["served_model_name"]
    request = {"model": name, "prompt": "The capital of France is", "max_tokens": 4, "temperature": 0, "logprobs": 1}
    status, body = curl(host, f"{http_engine['url']}/v1/completions", request)
    assert status == 200, f"{host.backend.hostname}: /v1/completions: expected 200, found {status} {body[:300]}"
    answer = json.loads(body)
    assert answer["model"] == name, f"{host.backend.hostname}: completion model: expected {name!r}, found {answer['model']!r}"
    generated = answer["usage"]["completion_tokens"]
    assert 1 <= generated <= 4, f"{host.backend.hostname}: completion_tokens: expected 1..4, found {generated}"
    logprobs = answer["choices"][0]["logprobs"]["token_logprobs"]
    assert len(logprobs) == generated and all(v <= 0 for v in logprobs), (
        f"{host.backend.hostname}: logprobs: expected {generated} values <= 0, found {logprobs}"
    )


def test_real_chat_completion(host, http_engine):
    name = http_engine["served_model_name"]
    request = {"model": name, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3, "temperature": 0}
    status, body = curl(host, f"{http_engine['url']}/v1/chat/completions", request)
    assert status == 200, f"{host.backend.hostname}: /v1/chat/completions: expected 200, found {status} {body[:300]}"
    message = json.loads(body)["choices"][0]["message"]
    assert message["role"] == "assistant" and isinstance(message["content"], str)


def test_listens_only_on_the_configured_address(host, http_engine):
    """Every TCP socket the engine listens on is the configured address:port.

    The engine's sockets are found by its process (``ss -p``) where the checker may see
    other users' file descriptors; a container without CAP_SYS_PTRACE cannot, and then
    every listener on the engine's port must be the configured address.
    """
    port = http_engine["listen"]["port"]
    address = http_engine["listen"]["address"]
    with host.sudo():
        pid = host.check_output(f"systemctl show -p MainPID --value {engine.UNIT}").strip()
        sockets = [line.split() for line in host.check_output("ss -Hltnp").splitlines() if line.strip()]
    expected = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    # ss names the owning process only where it may read that process's descriptors
    # (root's own daemons, say, but not the engine's account without CAP_SYS_PTRACE).
    mine = [fields[3] for fields in sockets if f"pid={pid}," in " ".join(fields)]
    if not mine:
        mine = [fields[3] for fields in sockets if fields[3].rsplit(":", 1)[1] == str(port)]
    assert mine == [expected], (
        f"{host.backend.hostname}: {engine.UNIT} listening sockets: expected only {expected}, found {mine}"
    )
