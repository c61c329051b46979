"""The gateway app against a fake engine: auth, RBAC, passthrough, limits, logs, drain."""

from __future__ import annotations

import hashlib
import json

import pytest

from .conftest import EXPECTED_CONFIDENCE, LOGPROBS, MODEL, OTHER_MODEL, PROMPT_TOKENS, TOKENS, UNROUTED, FakeEngine

MESSAGES = [{"role": "user", "content": "Say hello — 你好"}]
CHAT = {"model": MODEL, "messages": MESSAGES}


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"]), body
    return body["error"]


# -- authentication and authorisation ---------------------------------------------------

def test_no_key_is_401_and_logged(gw):
    response = gw.client.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_api_key"
    assert gw.engine.received == []
    (line,) = gw.log_lines()
    assert (line["status"], line["user"], line["error"]) == (401, None, "invalid_api_key")
    assert line["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("header", [
    "Bearer dsk-000000000000-" + "A" * 43,  # well-formed, unknown
    "Bearer not-a-key",
    "Basic dXNlcjpwYXNz",
])
def test_bad_key_is_401(gw, header):
    response = gw.client.get("/v1/models", headers={"Authorization": header})
    assert response.status_code == 401, response.text
    assert error_of(response)["code"] == "invalid_api_key"


def test_right_key_id_wrong_secret_is_401(gw):
    key = gw.keys["reader"]
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    response = gw.client.get("/v1/models", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_revoked_key_is_401(gw):
    key = gw.keys["reader"]
    assert gw.client.get("/v1/models", headers=gw.auth("reader")).status_code == 200
    gw.db.revoke_key(key.split("-")[1])
    assert gw.client.get("/v1/models", headers=gw.auth("reader")).status_code == 401


def test_no_grant_is_403_and_logged(gw):
    response = gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("nogrant"))
    assert response.status_code == 403
    assert error_of(response)["type"] == "permission_error"
    assert gw.engine.received == []
    (line,) = gw.log_lines()
    assert (line["status"], line["user"], line["model"]) == (403, "nogrant", MODEL)


def test_grant_on_another_model_is_403(gw):
    response = gw.client.post("/v1/chat/completions", json={**CHAT, "model": OTHER_MODEL}, headers=gw.auth("admin"))
    assert response.status_code == 403


def test_read_grant_may_query(gw):
    response = gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader"))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "".join(TOKENS)
    assert gw.engine.paths == ["/v1/chat/completions"]


def test_models_lists_only_granted_routed_models(gw):
    gw.db.grant("reader", UNROUTED, "read")  # granted but not served here: not listed
    listed = gw.client.get("/v1/models", headers=gw.auth("reader")).json()
    assert [m["id"] for m in listed["data"]] == [MODEL]
    assert gw.client.get("/v1/models", headers=gw.auth("nogrant")).json()["data"] == []


def test_granted_but_unrouted_model_is_404(gw):
    gw.db.grant("reader", UNROUTED, "read")
    response = gw.client.post("/v1/chat/completions", json={**CHAT, "model": UNROUTED}, headers=gw.auth("reader"))
    assert response.status_code == 404
    assert error_of(response)["code"] == "model_not_found"


@pytest.mark.parametrize("path", ["/v1/load_lora_adapter", "/reset_prefix_cache", "/v1/embeddings",
                                  "/start_profile", "/v1/engine/health"])
def test_engine_control_endpoints_are_not_exposed(gw, path):
    response = gw.client.post(path, json={}, headers=gw.auth("admin"))
    assert response.status_code in (404, 405)
    assert gw.engine.received == []


# -- write and admin semantics -------------------------------------------------------------

def test_read_may_view_but_not_patch_model_settings(gw):
    assert gw.client.get(f"/admin/models/{MODEL}", headers=gw.auth("reader")).status_code == 200
    response = gw.client.patch(f"/admin/models/{MODEL}", json={"max_tokens_limit": 10}, headers=gw.auth("reader"))
    assert response.status_code == 403


def test_write_patches_limits_which_then_apply(gw):
    response = gw.client.patch(f"/admin/models/{MODEL}", headers=gw.auth("writer"),
                               json={"default_max_tokens": 64, "max_tokens_limit": 128, "max_temperature": 1.0})
    assert response.status_code == 200, response.text
    assert response.json()["max_tokens_limit"] == 128

    assert gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader")).status_code == 200
    assert gw.engine.received[-1]["max_tokens"] == 64  # default filled in
    too_many = gw.client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 129}, headers=gw.auth("reader"))
    assert too_many.status_code == 400 and "limit of 128" in error_of(too_many)["message"]
    too_hot = gw.client.post("/v1/chat/completions", json={**CHAT, "temperature": 1.5}, headers=gw.auth("reader"))
    assert too_hot.status_code == 400
    assert len(gw.engine.received) == 1


@pytest.mark.parametrize("change", [{"max_tokens_limit": -1}, {"max_temperature": 9}, {"upstream": "http://x"},
                                    {"default_max_tokens": 100, "max_tokens_limit": 10}])
def test_bad_patch_is_400(gw, change):
    response = gw.client.patch(f"/admin/models/{MODEL}", json=change, headers=gw.auth("writer"))
    assert response.status_code == 400, response.text
    assert gw.db.model(MODEL)["max_tokens_limit"] is None


def test_write_may_not_manage_access(gw):
    response = gw.client.post(f"/admin/models/{MODEL}/access", json={"user": "nogrant", "permission": "read"},
                              headers=gw.auth("writer"))
    assert response.status_code == 403
    assert gw.db.permission("nogrant", MODEL) is None


def test_admin_grants_and_revokes_other_users(gw):
    grant = gw.client.post(f"/admin/models/{MODEL}/access", json={"user": "nogrant", "permission": "read"},
                           headers=gw.auth("admin"))
    assert grant.status_code == 200, grant.text
    assert gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("nogrant")).status_code == 200
    listing = gw.client.get(f"/admin/models/{MODEL}/access", headers=gw.auth("admin")).json()["data"]
    assert {"user": "nogrant", "model": MODEL, "permission": "read", "managed": 0} in listing

    revoke = gw.client.request("DELETE", f"/admin/models/{MODEL}/access", json={"user": "nogrant"},
                               headers=gw.auth("admin"))
    assert revoke.json()["revoked"] is True
    assert gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("nogrant")).status_code == 403


def test_admin_of_one_model_cannot_manage_another(gw):
    response = gw.client.post(f"/admin/models/{OTHER_MODEL}/access", json={"user": "admin", "permission": "admin"},
                              headers=gw.auth("admin"))
    assert response.status_code == 403
    assert gw.db.permission("admin", OTHER_MODEL) is None


def test_admin_grant_to_unknown_user_or_permission_is_refused(gw):
    unknown = gw.client.post(f"/admin/models/{MODEL}/access", json={"user": "mallory", "permission": "read"},
                             headers=gw.auth("admin"))
    assert unknown.status_code == 404
    bad = gw.client.post(f"/admin/models/{MODEL}/access", json={"user": "nogrant", "permission": "root"},
                         headers=gw.auth("admin"))
    assert bad.status_code == 400


# -- forwarding, confidence, logs -----------------------------------------------------------

def test_logprobs_requested_transparently_and_stripped(gw):
    response = gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader"))
    assert gw.engine.received[0]["logprobs"] is True
    assert response.json()["choices"][0]["logprobs"] is None
    (line,) = gw.log_lines()
    assert line["confidence"] == EXPECTED_CONFIDENCE
    assert (line["tokens_in"], line["tokens_out"]) == (PROMPT_TOKENS, len(TOKENS))


def test_client_logprobs_are_kept(gw):
    response = gw.client.post("/v1/chat/completions", json={**CHAT, "logprobs": True}, headers=gw.auth("reader"))
    content = response.json()["choices"][0]["logprobs"]["content"]
    assert [t["logprob"] for t in content] == list(LOGPROBS)
    assert gw.log_lines()[0]["confidence"] == EXPECTED_CONFIDENCE


def test_completions_confidence_from_token_logprobs(gw):
    response = gw.client.post("/v1/completions", json={"model": MODEL, "prompt": "Hi"}, headers=gw.auth("reader"))
    assert response.status_code == 200
    assert gw.engine.paths == ["/v1/completions"] and gw.engine.received[0]["logprobs"] == 0
    assert response.json()["choices"][0]["logprobs"] is None
    assert gw.log_lines()[0]["confidence"] == EXPECTED_CONFIDENCE


def test_confidence_null_when_disabled_or_unavailable(make_gateway):
    gw = make_gateway(confidence=False)
    gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader"))
    assert "logprobs" not in gw.engine.received[0]
    assert gw.log_lines()[0]["confidence"] is None


def test_log_line_fields_and_input_hash(gw):
    response = gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader"))
    (line,) = gw.log_lines()
    canonical = json.dumps(MESSAGES, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert line["input_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert line["request_id"] == response.headers["x-request-id"] and len(line["request_id"]) == 32
    assert (line["user"], line["model"], line["status"], line["stream"]) == ("reader", MODEL, 200, False)
    assert line["key_id"] == gw.keys["reader"].split("-")[1]
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["timestamp"].endswith("Z") and line["path"] == "/v1/chat/completions" and line["error"] is None
    raw = gw.config.request_log and open(gw.config.request_log).read()
    assert "Say hello" not in raw and "input" not in line  # the input itself is never logged by default


def test_input_hash_ignores_key_order_and_spacing(gw):
    reordered = '{"messages":[{"content":"Say hello — 你好","role":"user"}],  "model":"%s"}' % MODEL
    gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader"))
    gw.client.post("/v1/chat/completions", content=reordered.encode(),
                   headers={**gw.auth("reader"), "content-type": "application/json"})
    first, second = gw.log_lines()
    assert first["input_sha256"] == second["input_sha256"]


def test_input_logged_when_opted_in(make_gateway):
    gw = make_gateway(log_input_text=True)
    gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader"))
    assert gw.log_lines()[0]["input"] == MESSAGES


def test_upstream_error_is_the_gateways_own(make_gateway):
    gw = make_gateway(engine=FakeEngine(status=500))
    response = gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader"))
    assert response.status_code == 502 and "engine says no" not in response.text
    assert response.headers["x-request-id"] in response.json()["error"]["message"]
    assert gw.log_lines()[0]["error"] == "upstream_error" and gw.log_lines()[0]["engine_status"] == 500


# -- streaming --------------------------------------------------------------------------------

def sse_payloads(text: str) -> list:
    events = [e for e in text.split("\n\n") if e.strip()]
    return [e.removeprefix("data: ") if e.endswith("[DONE]") else json.loads(e.removeprefix("data: ")) for e in events]


def test_streaming_passthrough_strips_what_was_injected(gw):
    with gw.client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True},
                          headers=gw.auth("reader")) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        request_id = response.headers["x-request-id"]
        text = "".join(response.iter_text())
    payloads = sse_payloads(text)
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "".join(TOKENS)
    assert all(c["choices"][0]["logprobs"] is None for c in chunks)
    assert all("usage" not in c and c["choices"] for c in chunks)  # the usage-only chunk was ours
    sent = gw.engine.received[0]
    assert sent["logprobs"] is True and sent["stream_options"] == {"include_usage": True}
    (line,) = gw.log_lines()
    assert line["request_id"] == request_id and line["stream"] is True and line["status"] == 200
    assert line["confidence"] == EXPECTED_CONFIDENCE
    assert (line["tokens_in"], line["tokens_out"]) == (PROMPT_TOKENS, len(TOKENS))


def test_streaming_bytes_unchanged_when_client_asked_for_everything(gw):
    body = {**CHAT, "stream": True, "logprobs": True, "stream_options": {"include_usage": True}}
    with gw.client.stream("POST", "/v1/chat/completions", json=body, headers=gw.auth("reader")) as response:
        text = "".join(response.iter_text())
    payloads = sse_payloads(text)
    assert payloads[-2]["usage"]["completion_tokens"] == len(TOKENS)
    assert payloads[0]["choices"][0]["logprobs"]["content"][0]["logprob"] == LOGPROBS[0]
    assert 'data: {"id": "cmpl-1"' in text  # upstream's own serialisation, untouched
    assert gw.log_lines()[0]["confidence"] == EXPECTED_CONFIDENCE


def test_streaming_completions(gw):
    body = {"model": MODEL, "prompt": "Hi", "stream": True}
    with gw.client.stream("POST", "/v1/completions", json=body, headers=gw.auth("reader")) as response:
        payloads = sse_payloads("".join(response.iter_text()))
    assert "".join(p["choices"][0]["text"] for p in payloads[:-1]) == "".join(TOKENS)
    assert gw.log_lines()[0]["confidence"] == EXPECTED_CONFIDENCE


# -- limits -----------------------------------------------------------------------------------

def test_oversized_body_is_413_without_reaching_the_engine(make_gateway):
    gw = make_gateway(max_request_bytes=1024)
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 2000}]}
    response = gw.client.post("/v1/chat/completions", json=big, headers=gw.auth("reader"))
    assert response.status_code == 413 and error_of(response)["code"] == "request_too_large"
    assert gw.engine.received == []
    assert gw.log_lines()[0]["status"] == 413


def test_oversized_chunked_body_is_413(make_gateway):
    gw = make_gateway(max_request_bytes=1024)

    def chunks():
        yield b'{"model": "%s", "prompt": "' % MODEL.encode()
        for _ in range(10):
            yield b"y" * 200
        yield b'"}'

    response = gw.client.post("/v1/completions", content=chunks(),
                              headers={**gw.auth("reader"), "content-type": "application/json"})
    assert response.status_code == 413


def test_slow_engine_is_504(make_gateway):
    gw = make_gateway(engine=FakeEngine(delay_s=2), upstream_timeout_s=0.2)
    response = gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader"))
    assert response.status_code == 504 and error_of(response)["code"] == "upstream_timeout"
    assert gw.log_lines()[0]["error"] == "upstream_timeout"


def test_unreachable_engine_is_502(make_gateway, tmp_path):
    import httpx

    from deepseek_node.gateway.app import create_app
    from deepseek_node.gateway.config import GatewayConfig
    from deepseek_node.gateway.db import Database
    from starlette.testclient import TestClient

    from .conftest import seed_users

    config = GatewayConfig.from_mapping({"tls_cert": None, "tls_key": None, "log_to_stdout": False,
                                         "database_path": str(tmp_path / "u.db"),
                                         "request_log": str(tmp_path / "u.jsonl"),
                                         "admin_token_file": str(tmp_path / "u.token"),
                                         "upstreams": {MODEL: "http://127.0.0.1:9"}, "connect_timeout_s": 1})
    database = Database(path=config.database_path)
    keys = seed_users(database)
    with TestClient(create_app(config, database, transport=httpx.AsyncHTTPTransport())) as client:
        response = client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {keys['reader']}"})
    assert response.status_code == 502, response.text


def test_invalid_json_and_missing_model_are_400(gw):
    bad = gw.client.post("/v1/chat/completions", content=b"{nope", headers=gw.auth("reader"))
    assert bad.status_code == 400
    missing = gw.client.post("/v1/chat/completions", json={"messages": MESSAGES}, headers=gw.auth("reader"))
    assert missing.status_code == 400 and error_of(missing)["code"] == "model_required"


# -- health, metrics, drain ---------------------------------------------------------------------

def test_metrics_count_by_key_model_status(gw):
    gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader"))
    gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("nogrant"))
    gw.client.post("/v1/chat/completions", json={**CHAT, "model": "random-123"}, headers=gw.auth("reader"))
    text = gw.client.get("/metrics").text
    from deepseek_node.gateway.keys import key_id

    reader, nogrant = (key_id(gw.keys[user]) for user in ("reader", "nogrant"))
    assert f'deepseek_gateway_requests_total{{key_id="{reader}",model="{MODEL}",status="200"}} 1.0' in text
    assert f'deepseek_gateway_requests_total{{key_id="{nogrant}",model="{MODEL}",status="403"}} 1.0' in text
    assert "reader" not in text and "nogrant" not in text  # no user ids unless metrics_user_ids
    assert 'model="random-123"' not in text  # unknown names do not become label values
    assert f'deepseek_gateway_request_duration_seconds_count{{model="{MODEL}"}} 2.0' in text


def test_drain_from_loopback_stops_new_requests(gw):
    assert gw.client.get("/health").json()["status"] == "ok"
    assert gw.client.post("/admin/drain", headers=gw.admin()).json() == {"draining": True, "in_flight": 0}
    health = gw.client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "draining"
    refused = gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader"))
    assert refused.status_code == 503 and error_of(refused)["code"] == "draining"
    assert gw.engine.received == []
    assert "deepseek_gateway_draining 1.0" in gw.client.get("/metrics").text
    gw.client.delete("/admin/drain", headers=gw.admin())
    assert gw.client.get("/health").status_code == 200
    assert gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader")).status_code == 200


def test_drain_from_elsewhere_is_403(make_gateway):
    gw = make_gateway(client_address=("10.0.0.7", 40000))
    response = gw.client.post("/admin/drain", headers=gw.auth("admin"))
    assert response.status_code == 403
    assert gw.client.get("/health").status_code == 200


def test_client_leaving_mid_stream_is_logged_499_and_frees_its_slot(gw):
    """Drive the ASGI app directly: the client's socket fails after the first chunk."""
    import anyio

    app = gw.client.app
    body = json.dumps({**CHAT, "stream": True}).encode()
    incoming = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if incoming:
            return incoming.pop(0)
        await anyio.sleep(5)
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.body" and message.get("body"):
            raise OSError("connection reset by peer")

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
             "root_path": "", "query_string": b"", "client": ("10.1.2.3", 5555), "server": ("testserver", 80),
             "headers": [(b"authorization", gw.auth("reader")["Authorization"].encode()),
                         (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "state": {}}

    async def scenario():
        try:
            await app(scope, receive, send)
        except OSError:
            pass

    anyio.run(scenario)
    (line,) = gw.log_lines()
    assert (line["status"], line["error"], line["stream"]) == (499, "client_disconnected", True)
    assert app.state.gateway.in_flight == 0
