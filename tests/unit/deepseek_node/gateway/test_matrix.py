"""The access matrix, generated: every (user, model, endpoint) against the app.

Sixteen users hold every combination of {none, read, write, admin} on the two routed
models; each case sends one request and checks that it is allowed exactly when the
policy says so (``db.allows``'s order is retyped here on purpose: read < write < admin),
that a refusal is 401/403 with an OpenAI-style error and changes nothing, and that the
request got its log line. Malformed requests get a 4xx and a normal request works after.
"""

from __future__ import annotations

import itertools

import pytest

from .conftest import MODEL, OTHER_MODEL, TOKENS

LEVELS = (None, "read", "write", "admin")
MODELS = (MODEL, OTHER_MODEL)
NEEDED = {"infer": "read", "patch": "write", "grant": "admin", "revoke": "admin"}
RANK = {None: 0, "read": 1, "write": 2, "admin": 3}
TARGET = "target"  # granted read on both models; the one admins grant to and revoke from


def user_name(grants: tuple[str | None, str | None]) -> str:
    return "m-" + "-".join(level or "none" for level in grants)


USERS = {user_name(grants): dict(zip(MODELS, grants, strict=True))
         for grants in itertools.product(LEVELS, repeat=len(MODELS))}


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"]), body
    return body["error"]


@pytest.fixture
def mgw(make_gateway):
    """The conftest gateway plus the sixteen matrix users and TARGET."""
    gw = make_gateway()
    for user, grants in USERS.items():
        gw.db.add_user(user)
        for model, level in grants.items():
            if level:
                gw.db.grant(user, model, level)
        gw.keys[user] = gw.db.create_key(user)
    gw.db.add_user(TARGET)
    for model in MODELS:
        gw.db.grant(TARGET, model, "read")
    return gw


def request_for(action: str, model: str) -> tuple[str, str, dict]:
    if action == "chat":
        return "POST", "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if action == "completions":
        return "POST", "/v1/completions", {"model": model, "prompt": "hi"}
    if action == "patch":
        return "PATCH", f"/admin/models/{model}", {"max_tokens_limit": 100}
    if action == "grant":
        return "POST", f"/admin/models/{model}/access", {"user": TARGET, "permission": "write"}
    return "DELETE", f"/admin/models/{model}/access", {"user": TARGET}


def effect(gw, action: str, model: str):
    """The state an allowed request would change (compared before and after)."""
    if action in ("chat", "completions"):
        return len(gw.engine.received)
    if action == "patch":
        return gw.db.model(model)["max_tokens_limit"]
    return gw.db.permission(TARGET, model)


CASES = [pytest.param(user, model, action, id=f"{user}-{action}-{model.split('/')[-1]}")
         for user in USERS for model in MODELS
         for action in ("chat", "completions", "patch", "grant", "revoke")]


@pytest.mark.parametrize(("user", "model", "action"), CASES)
def test_matrix(mgw, user, model, action):
    held = USERS[user][model]
    needed = NEEDED["infer" if action in ("chat", "completions") else action]
    allowed = RANK[held] >= RANK[needed]
    method, path, body = request_for(action, model)
    before = effect(mgw, action, model)

    response = mgw.client.request(method, path, json=body, headers=mgw.auth(user))

    after = effect(mgw, action, model)
    line = mgw.log_lines()[-1]
    assert (line["user"], line["model"], line["path"]) == (user, model, path)
    assert line["status"] == response.status_code
    if not allowed:
        assert response.status_code == 403, f"{user} ({held}) {method} {path}: {response.status_code}"
        error = error_of(response)
        assert (error["type"], error["code"]) == ("permission_error", "model_access_denied")
        assert user in error["message"] and needed in error["message"]
        assert after == before, f"refused {action} by {user} still changed {before!r} -> {after!r}"
        return
    assert response.status_code == 200, f"{user} ({held}) {method} {path}: {response.text}"
    if action == "chat":
        assert response.json()["choices"][0]["message"]["content"] == "".join(TOKENS)
    elif action == "completions":
        assert response.json()["choices"][0]["text"] == "".join(TOKENS)
    if action in ("chat", "completions"):
        assert after == before + 1 and mgw.engine.received[-1]["model"] == model
    else:
        assert after == {"patch": 100, "grant": "write", "revoke": None}[action]


@pytest.mark.parametrize("user", USERS)
def test_models_listing_is_filtered(mgw, user):
    response = mgw.client.get("/v1/models", headers=mgw.auth(user))
    assert response.status_code == 200, response.text
    expected = sorted(model for model, level in USERS[user].items() if level)
    assert [entry["id"] for entry in response.json()["data"]] == expected


ANONYMOUS = [pytest.param(None, "GET", "/v1/models", None, id="models")] + [
    pytest.param(header, *request_for(action, model), id=f"{name}-{action}-{model.split('/')[-1]}")
    for name, header in (("nokey", None), ("garbage", "Bearer dsk-nope"), ("basic", "Basic dXNlcjpwYXNz"))
    for model in MODELS for action in ("chat", "completions", "patch", "grant", "revoke")
]


@pytest.mark.parametrize(("header", "method", "path", "body"), ANONYMOUS)
def test_without_a_valid_key_every_endpoint_is_401(mgw, header, method, path, body):
    headers = {"Authorization": header} if header else {}
    before = (len(mgw.engine.received), mgw.db.model(MODEL), mgw.db.model(OTHER_MODEL), mgw.db.access())
    response = mgw.client.request(method, path, json=body, headers=headers)
    assert response.status_code == 401, response.text
    assert error_of(response)["code"] == "invalid_api_key"
    assert (len(mgw.engine.received), mgw.db.model(MODEL), mgw.db.model(OTHER_MODEL), mgw.db.access()) == before
    line = mgw.log_lines()[-1]
    assert (line["status"], line["user"]) == (401, None)


# -- malformed requests: a clear 4xx, nothing forwarded, the gateway stays up --------------

HUGE = b'{"model": "%s", "prompt": "' % MODEL.encode() + b"x" * (5 * 1024 * 1024) + b'"}'
MALFORMED = [
    ("bad-json", "POST", "/v1/chat/completions", "reader", b"{nope", 400, "invalid_json"),
    ("json-not-object", "POST", "/v1/completions", "reader", b"[1, 2]", 400, "invalid_json"),
    ("empty-body", "POST", "/v1/chat/completions", "reader", b"", 400, "model_required"),
    ("model-not-string", "POST", "/v1/chat/completions", "reader", b'{"model": 7}', 400, "model_required"),
    ("huge-body", "POST", "/v1/completions", "reader", HUGE, 413, "request_too_large"),
    ("unknown-model", "POST", "/v1/completions", "admin", b'{"model": "no/such-model", "prompt": "x"}',
     403, "model_access_denied"),
    ("missing-key", "POST", "/v1/chat/completions", None, b'{"model": "%s"}' % MODEL.encode(), 401,
     "invalid_api_key"),
    ("key-for-another-model", "POST", "/v1/chat/completions", "m-none-admin",
     b'{"model": "%s", "messages": []}' % MODEL.encode(), 403, "model_access_denied"),
    ("patch-bad-json", "PATCH", f"/admin/models/{MODEL}", "admin", b"{nope", 400, "invalid_json"),
    ("patch-unknown-setting", "PATCH", f"/admin/models/{MODEL}", "admin", b'{"upstream": "http://x"}', 400,
     "unknown_setting"),
    ("grant-bad-permission", "POST", f"/admin/models/{MODEL}/access", "admin",
     b'{"user": "nogrant", "permission": "root"}', 400, "bad_permission"),
    ("grant-unknown-user", "POST", f"/admin/models/{MODEL}/access", "admin", b'{"user": "mallory"}', 404,
     "user_not_found"),
    ("unknown-path", "POST", "/v1/embeddings", "admin", b"{}", 404, "not_found"),
    ("wrong-method", "GET", "/v1/chat/completions", "admin", b"", 405, "method_not_allowed"),
]


@pytest.mark.parametrize(("method", "path", "user", "content", "status", "code"),
                         [pytest.param(*case[1:], id=case[0]) for case in MALFORMED])
def test_malformed_request_is_a_clear_4xx_and_gateway_stays_up(mgw, method, path, user, content, status, code):
    headers = {"content-type": "application/json", **(mgw.auth(user) if user else {})}
    before = (mgw.db.model(MODEL), mgw.db.access())
    response = mgw.client.request(method, path, content=content, headers=headers)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code and error["message"]
    assert mgw.engine.received == []
    assert (mgw.db.model(MODEL), mgw.db.access()) == before
    if path.startswith(("/v1/", "/admin/")) and status != 405 and path != "/v1/embeddings":
        assert mgw.log_lines()[-1]["status"] == status

    normal = mgw.client.post("/v1/chat/completions", headers=mgw.auth("reader"),
                             json={"model": MODEL, "messages": [{"role": "user", "content": "still there?"}]})
    assert normal.status_code == 200, normal.text
    assert normal.json()["choices"][0]["message"]["content"] == "".join(TOKENS)
    assert mgw.client.get("/health").json()["in_flight"] == 0
