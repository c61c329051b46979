"""The in-memory policy cache: hits skip the store, and any commit to it is seen on the next request."""

from __future__ import annotations

import functools

from deepseek_node.gateway import keys as apikeys
from deepseek_node.gateway.db import Database

from .conftest import MODEL

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def other_process(gw) -> Database:
    """Another connection to the same file, as ``deepseek-gateway`` (the CLI) opens."""
    return Database(path=gw.config.database_path)


def test_repeated_requests_read_the_policy_once(gw):
    calls: list[tuple] = []
    for name in ("active_key", "permission", "model"):
        original = getattr(gw.db, name)

        @functools.wraps(original)
        def counted(*args, _original=original, _name=name):
            calls.append((_name, *args))
            return _original(*args)

        setattr(gw.db, name, counted)
    for _ in range(3):
        assert gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader")).status_code == 200
    assert sorted(call[0] for call in calls) == ["active_key", "model", "permission"]


def test_key_revoked_elsewhere_is_refused_on_the_next_request(gw):
    assert gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader")).status_code == 200
    assert other_process(gw).revoke_key(apikeys.key_id(gw.keys["reader"]))
    assert gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader")).status_code == 401


def test_disabled_user_is_refused_on_the_next_request(gw):
    assert gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader")).status_code == 200
    other_process(gw)._execute("UPDATE users SET disabled = 1 WHERE id = ?", ("reader",))
    assert gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader")).status_code == 401


def test_grant_revoked_elsewhere_is_refused_on_the_next_request(gw):
    assert gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader")).status_code == 200
    assert other_process(gw).revoke("reader", MODEL)
    assert gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader")).status_code == 403


def test_limit_set_elsewhere_applies_to_the_next_request(gw):
    hot = {**CHAT, "temperature": 1.5}
    assert gw.client.post("/v1/chat/completions", json=hot, headers=gw.auth("reader")).status_code == 200
    other_process(gw).update_model(MODEL, {"max_temperature": 1.0})
    assert gw.client.post("/v1/chat/completions", json=hot, headers=gw.auth("reader")).status_code == 400


def test_a_wrong_secret_is_refused_even_when_the_key_row_is_cached(gw):
    key = gw.keys["reader"]
    assert gw.client.post("/v1/chat/completions", json=CHAT, headers=gw.auth("reader")).status_code == 200
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    response = gw.client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_change_counter_moves_on_every_commit(tmp_path):
    database = Database(path=str(tmp_path / "g.db"))
    database.migrate()
    before = database.change_counter()
    assert database.change_counter() == before  # reading changes nothing
    database.add_user("alice")  # this object's own (thread's) connection: still counted
    assert database.change_counter() != before
    database.close()
    assert Database(path=str(tmp_path / "g.db"), dsn=None).change_counter() is not None
