"""The policy store on SQLite and on a real PostgreSQL server (started on loopback here)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

from deepseek_node.gateway import keys as apikeys
from deepseek_node.gateway.db import LATEST, MIGRATIONS, Database, PolicyError, allows

MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"


def _postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else (os.path.dirname(shutil.which("initdb")) if shutil.which("initdb") else None)


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth); yields a DSN factory."""
    pytest.importorskip("psycopg", reason="psycopg is not installed in this environment")
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb) not found; `apt-get install postgresql` enables this test")
    import psycopg

    workdir = tempfile.mkdtemp(prefix="gw-pg-", dir="/tmp")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        import pwd

        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' account to run the server as")
        os.chown(workdir, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = os.path.join(workdir, "data")
    subprocess.run([*as_user, f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(workdir, "log"),
                    "-o", f"-h 127.0.0.1 -p {port} -k {workdir} -F", "start"], check=True, capture_output=True)
    admin_dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def new_database() -> str:
        name = f"gw_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin_dsn, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{port}/{name}"

    try:
        yield new_database
    finally:
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        db = Database(path=str(tmp_path / "gateway.db"))
    else:
        db = Database(dsn=request.getfixturevalue("postgres_server")())
    yield db
    db.close()


def test_fresh_database_migrates_to_latest_once(database):
    assert database.schema_version() == 0
    assert database.migrate() == [m.version for m in MIGRATIONS]
    assert database.schema_version() == LATEST
    assert database.migrate() == []


def test_old_database_is_upgraded_keeping_its_data(database):
    assert database.migrate(target=1) == [1]
    # a version-1 gateway's data, written with version-1 columns only
    database._execute("INSERT INTO users (id, created_at) VALUES ('old', '2024-01-01T00:00:00+00:00')")
    key = apikeys.generate_key()
    database._execute("INSERT INTO api_keys (key_id, user_id, key_hash, created_at) VALUES (?, 'old', ?, 'x')",
                      (apikeys.key_id(key), apikeys.hash_key(key)))
    database._execute("INSERT INTO models (id, created_at) VALUES (?, 'x')", (MODEL,))
    database._execute("INSERT INTO model_access (user_id, model_id, permission_level) VALUES ('old', ?, 'write')",
                      (MODEL,))
    with pytest.raises(Exception):  # version 1 has no limits yet
        database.model(MODEL)
    database.close()

    assert database.migrate() == [2]
    assert database.authenticate(key) == ("old", apikeys.key_id(key))
    assert database.permission("old", MODEL) == "write"
    assert database.model(MODEL) == {"id": MODEL, "default_max_tokens": None, "max_tokens_limit": None,
                                     "max_temperature": None}
    assert database.access(MODEL)[0]["managed"] == 0


def test_permission_check_constraint(database):
    database.migrate()
    database.add_user("u")
    with pytest.raises(PolicyError):
        database.grant("u", MODEL, "owner")
    with pytest.raises(Exception):  # the table itself refuses it too
        database._execute("INSERT INTO model_access (user_id, model_id, permission_level) VALUES ('u', ?, 'root')",
                          (MODEL,))


def test_grants_and_keys(database):
    database.migrate()
    assert database.add_user("alice") is True and database.add_user("alice") is False
    with pytest.raises(PolicyError):
        database.grant("bob", MODEL, "read")  # unknown user
    database.grant("alice", MODEL, "read")
    database.grant("alice", MODEL, "admin")  # upgrade in place
    assert database.permissions("alice") == {MODEL: "admin"}
    key = database.create_key("alice")
    assert database.authenticate(key) == ("alice", apikeys.key_id(key))
    stored = database._execute("SELECT key_hash FROM api_keys")[0][0]
    assert key not in stored and stored == apikeys.hash_key(key)
    assert database.revoke_key(apikeys.key_id(key)) and database.authenticate(key) is None
    assert database.revoke("alice", MODEL) is True and database.revoke("alice", MODEL) is False


def test_seed_manages_only_its_own_rows(database):
    database.migrate()
    key_a, key_b = apikeys.generate_key(), apikeys.generate_key()
    document = {
        "models": [MODEL],
        "users": {"alice": {MODEL: "admin"}, "bob": {MODEL: "read"}},
        "keys": {"alice": [{"key_id": apikeys.key_id(key_a), "sha256": apikeys.hash_key(key_a)}],
                 "bob": [{"key_id": apikeys.key_id(key_b), "sha256": apikeys.hash_key(key_b)}]},
    }
    database.seed(document, "d1")
    database.add_user("carol")  # made through the CLI: seeding must leave her alone
    database.grant("carol", MODEL, "read")
    carol_key = database.create_key("carol")
    assert database.authenticate(key_b) == ("bob", apikeys.key_id(key_b))

    counts = database.seed({**document, "users": {"alice": {MODEL: "write"}}, "keys": {"alice": document["keys"]["alice"]}},
                           "d2")
    assert counts["revoked_grants"] == 1 and counts["revoked_keys"] == 1
    assert database.permission("alice", MODEL) == "write"
    assert database.permission("bob", MODEL) is None and database.authenticate(key_b) is None
    assert database.permission("carol", MODEL) == "read" and database.authenticate(carol_key)[0] == "carol"
    assert database.seed({**document, "users": {"alice": {MODEL: "write"}}, "keys": {"alice": document["keys"]["alice"]}},
                         "d2")["revoked_keys"] == 0


def test_revocation_on_the_node_wins_over_reseeding(database):
    """Issue 19, item 1: a routine re-seed must not silently re-enable a revoked key."""
    database.migrate()
    kept, revoked, rotated = (apikeys.generate_key() for _ in range(3))
    entry = lambda key: {"key_id": apikeys.key_id(key), "sha256": apikeys.hash_key(key)}  # noqa: E731
    document = {"models": [MODEL], "users": {"alice": {MODEL: "read"}}, "keys": {"alice": [entry(kept), entry(revoked)]}}
    database.seed(document, "d1")
    assert database.revoke_key(apikeys.key_id(revoked))  # deepseek-gateway key revoke, on the node

    counts = database.seed({**document, "models": [MODEL, "other"]}, "d2")  # any later seed
    assert database.authenticate(revoked) is None
    assert database.authenticate(kept) == ("alice", apikeys.key_id(kept))
    assert counts["kept_revoked"] == [apikeys.key_id(revoked)]

    # the inventory rotates it: the old key stays revoked, the new one works, no warning
    counts = database.seed({**document, "keys": {"alice": [entry(kept), entry(rotated)]}}, "d3")
    assert counts["kept_revoked"] == [] and counts["revoked_keys"] == 0
    assert database.authenticate(rotated) and database.authenticate(revoked) is None


def test_seed_with_key_for_unknown_user_changes_nothing(database):
    database.migrate()
    key = apikeys.generate_key()
    with pytest.raises(PolicyError):
        database.seed({"users": {"alice": {MODEL: "read"}},
                       "keys": {"mallory": [{"key_id": apikeys.key_id(key), "sha256": apikeys.hash_key(key)}]}}, "d")
    assert database.users() == []  # one transaction: all or nothing


def test_concurrent_migrations_apply_each_version_once(database):
    errors: list[Exception] = []

    def run():
        other = Database(path=database.path, dsn=database.dsn)
        try:
            other.migrate()
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            other.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [row[0] for row in database._execute("SELECT version FROM schema_migrations ORDER BY version")] == [1, 2]


def test_gateways_opening_one_fresh_sqlite_file_at_once(tmp_path):
    """Switching a new file to WAL does not wait on SQLite's busy handler: without a retry about
    one round in eight here lost a gateway to "database is locked" (20 rounds of 4 at once)."""
    errors: list[Exception] = []

    def open_and_migrate(path):
        gateway = Database(path=str(path))
        try:
            gateway.migrate()
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            gateway.close()

    for round_ in range(20):
        path = tmp_path / f"round{round_}.db"
        threads = [threading.Thread(target=open_and_migrate, args=(path,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert errors == []


def test_permission_order():
    assert allows("admin", "write") and allows("write", "read") and allows("read", "read")
    assert not allows("read", "write") and not allows("write", "admin") and not allows(None, "read")


def test_sqlite_file_in_wal_mode(tmp_path):
    db = Database(path=str(tmp_path / "g.db"))
    db.migrate()
    assert sqlite3.connect(tmp_path / "g.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_gateway_over_postgresql(postgres_server, make_gateway):
    """The whole request path with the policy in PostgreSQL (several gateways share it)."""
    dsn = postgres_server()
    first = make_gateway(database_dsn=dsn)
    second = make_gateway(database_dsn=dsn, engine=None)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    # users were created through the first gateway's database: the second one sees them
    assert second.client.post("/v1/chat/completions", json=body, headers=first.auth("reader")).status_code == 200
    assert second.client.post("/v1/chat/completions", json=body, headers=first.auth("nogrant")).status_code == 403
    grant = first.client.post(f"/admin/models/{MODEL}/access", json={"user": "nogrant", "permission": "read"},
                              headers=first.auth("admin"))
    assert grant.status_code == 200
    time.sleep(0.01)
    assert second.client.post("/v1/chat/completions", json=body, headers=first.auth("nogrant")).status_code == 200
