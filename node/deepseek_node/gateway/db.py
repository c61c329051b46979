"""The access policy: users, API keys, models and the brief's ``model_access`` table.

SQLite by default (one file per gateway), PostgreSQL when a DSN is configured (several
gateways share one policy). Plain DB-API (``sqlite3`` / ``psycopg``) rather than an ORM:
the policy is four small tables and a dozen statements, all written in the SQL both
dialects share (``?`` placeholders become ``%s`` for psycopg), so SQLAlchemy would add a
large compiled dependency to every node for no query it would simplify.

``model_access`` follows the design brief (user_id, model_id, permission_level in read /
write / admin, model_id referencing models) with one correction: its key is
(user_id, model_id), since a user id alone as primary key would allow one model per user.

Schema migrations are numbered and applied in order inside one transaction, recorded in
``schema_migrations``; on PostgreSQL an advisory lock makes gateways that start together
apply each migration once. Each worker thread keeps its own connection.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import keys as apikeys

PERMISSIONS = ("read", "write", "admin")  # ordered: each implies the ones before it
MODEL_SETTINGS = ("default_max_tokens", "max_tokens_limit", "max_temperature")
_ADVISORY_LOCK = 0x6473_6777  # "dsgw"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "users, api keys, models, model access", (
        "CREATE TABLE users (id VARCHAR(64) PRIMARY KEY, created_at VARCHAR(32) NOT NULL,"
        " disabled INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE api_keys (key_id VARCHAR(32) PRIMARY KEY,"
        " user_id VARCHAR(64) NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        " key_hash CHAR(64) NOT NULL, created_at VARCHAR(32) NOT NULL, revoked_at VARCHAR(32))",
        "CREATE TABLE models (id VARCHAR(200) PRIMARY KEY, created_at VARCHAR(32) NOT NULL)",
        "CREATE TABLE model_access (user_id VARCHAR(64) NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        " model_id VARCHAR(200) NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
        " permission_level VARCHAR(8) NOT NULL CHECK (permission_level IN ('read', 'write', 'admin')),"
        " PRIMARY KEY (user_id, model_id))",
        "CREATE INDEX api_keys_user ON api_keys (user_id)",
    )),
    Migration(2, "per-model limits, inventory-managed rows, seed state", (
        "ALTER TABLE models ADD COLUMN default_max_tokens INTEGER",
        "ALTER TABLE models ADD COLUMN max_tokens_limit INTEGER",
        "ALTER TABLE models ADD COLUMN max_temperature REAL",
        "ALTER TABLE users ADD COLUMN managed INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE api_keys ADD COLUMN managed INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE model_access ADD COLUMN managed INTEGER NOT NULL DEFAULT 0",
        "CREATE TABLE gateway_meta (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)",
    )),
)
LATEST = MIGRATIONS[-1].version


def _write_ahead_log(connection, timeout_s: float = 30.0) -> None:
    """Put the SQLite file in WAL mode (persistent in the file), waiting out other connections.

    Switching the journal mode does not wait on the busy handler: gateways that open a fresh
    file at once get "database is locked" from one of them, so the switch is retried here.
    """
    import sqlite3

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            mode = None
        if mode == "wal":
            return
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(f"journal mode stays {mode!r}, not WAL, after {timeout_s:.0f} s")
        time.sleep(0.01)


class PolicyError(ValueError):
    """A policy change that cannot be made (unknown user, bad permission, ...)."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def allows(held: str | None, needed: str) -> bool:
    """True when permission ``held`` includes ``needed`` (read < write < admin)."""
    return held in PERMISSIONS and PERMISSIONS.index(held) >= PERMISSIONS.index(needed)


class Database:
    """One policy store; ``dsn`` selects PostgreSQL, else SQLite at ``path``."""

    def __init__(self, path: str | None = None, dsn: str | None = None):
        if not path and not dsn:
            raise ValueError("a database path or DSN is required")
        self.path, self.dsn = path, dsn
        self.dialect = "postgresql" if dsn else "sqlite"
        self._local = threading.local()
        self._watch = None  # SQLite: a connection that only reads PRAGMA data_version
        self._watch_lock = threading.Lock()

    # -- connections -----------------------------------------------------------------

    def _connect(self):
        if self.dsn:
            import psycopg  # local: only PostgreSQL sites need it installed

            return psycopg.connect(self.dsn, autocommit=True)
        import sqlite3

        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA busy_timeout = 30000")
        _write_ahead_log(connection)
        return connection

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None or (self.dsn and connection.closed):
            connection = self._local.connection = self._connect()
        return connection

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
        with self._watch_lock:
            if self._watch is not None:
                self._watch.close()
                self._watch = None

    def change_counter(self) -> int | None:
        """A number that changes whenever any connection commits to the SQLite file, else None.

        SQLite's ``data_version`` counts commits made by other connections (threads and
        processes alike), so a connection that never writes sees every change; reading it
        costs microseconds, which lets callers cache policy reads and still see a
        revocation on the very next request. None on PostgreSQL: nothing that cheap.
        """
        if self.dsn:
            return None
        with self._watch_lock:
            if self._watch is None:
                self._watch = self._connect()
            return self._watch.execute("PRAGMA data_version").fetchone()[0]

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.dsn else statement

    def _execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        cursor = self._connection().execute(self._sql(statement), tuple(params))
        rows = cursor.fetchall() if cursor.description else []
        return [tuple(row) for row in rows]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        connection = self._connection()
        if self.dsn:
            with connection.transaction():
                yield
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    # -- migrations --------------------------------------------------------------------

    def schema_version(self) -> int:
        try:
            rows = self._execute("SELECT MAX(version) FROM schema_migrations")
        except Exception:  # no schema_migrations table yet: a fresh database
            return 0
        return rows[0][0] or 0

    def migrate(self, target: int = LATEST) -> list[int]:
        """Apply the migrations up to ``target`` that are missing; returns their versions."""
        applied: list[int] = []
        with self.transaction():
            if self.dsn:
                self._execute("SELECT pg_advisory_xact_lock(?)", (_ADVISORY_LOCK,))
            self._execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " description VARCHAR(200) NOT NULL, applied_at VARCHAR(32) NOT NULL)"
            )
            done = {row[0] for row in self._execute("SELECT version FROM schema_migrations")}
            for migration in MIGRATIONS:
                if migration.version > target or migration.version in done:
                    continue
                for statement in migration.statements:
                    self._execute(statement)
                self._execute(
                    "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.description, now()),
                )
                applied.append(migration.version)
        return applied

    # -- users and keys ----------------------------------------------------------------

    def add_user(self, user: str, managed: bool = False) -> bool:
        """Create ``user``; False when it exists already."""
        if not user or len(user) > 64 or not all(c.isalnum() or c in "._@-" for c in user):
            raise PolicyError(f"user {user!r}: expected 1-64 letters, digits or . _ @ -")
        if self._execute("SELECT 1 FROM users WHERE id = ?", (user,)):
            return False
        self._execute("INSERT INTO users (id, created_at, managed) VALUES (?, ?, ?)", (user, now(), int(managed)))
        return True

    def users(self) -> list[str]:
        return [row[0] for row in self._execute("SELECT id FROM users ORDER BY id")]

    def _require_user(self, user: str) -> None:
        if not self._execute("SELECT 1 FROM users WHERE id = ?", (user,)):
            raise PolicyError(f"user {user!r} does not exist")

    def create_key(self, user: str) -> str:
        """A new key for ``user``; the plaintext is returned once and never stored."""
        self._require_user(user)
        key = apikeys.generate_key()
        self.store_key(user, apikeys.key_id(key), apikeys.hash_key(key))
        return key

    def store_key(self, user: str, key_id: str, key_hash: str, managed: bool = False) -> None:
        """Add or update a key; storing a revoked key again keeps it revoked (a new hash is a new key)."""
        self._execute(
            "INSERT INTO api_keys (key_id, user_id, key_hash, created_at, managed) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (key_id) DO UPDATE SET user_id = excluded.user_id, key_hash = excluded.key_hash,"
            " revoked_at = CASE WHEN api_keys.key_hash = excluded.key_hash THEN api_keys.revoked_at END,"
            " managed = excluded.managed",
            (key_id, user, key_hash, now(), int(managed)),
        )

    def revoke_key(self, key_id: str) -> bool:
        rows = self._execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL RETURNING key_id",
            (now(), key_id),
        )
        return bool(rows)

    def keys(self, user: str | None = None) -> list[dict[str, Any]]:
        rows = self._execute(
            "SELECT key_id, user_id, created_at, revoked_at, managed FROM api_keys"
            + (" WHERE user_id = ?" if user else "") + " ORDER BY user_id, created_at, key_id",
            (user,) if user else (),
        )
        names = ("key_id", "user", "created_at", "revoked_at", "managed")
        return [dict(zip(names, row, strict=True)) for row in rows]

    def authenticate(self, key: str | None) -> tuple[str, str] | None:
        """``(user, key_id)`` for a valid, unrevoked key of an enabled user, else None."""
        key_id = apikeys.key_id(key or "")
        if key_id is None:
            return None
        found = self.active_key(key_id)
        if found is not None and apikeys.matches(key, found[1]):
            return found[0], key_id
        return None

    def active_key(self, key_id: str) -> tuple[str, str] | None:
        """``(user, key_hash)`` of an unrevoked key of an enabled user, else None."""
        rows = self._execute(
            "SELECT k.user_id, k.key_hash FROM api_keys k JOIN users u ON u.id = k.user_id"
            " WHERE k.key_id = ? AND k.revoked_at IS NULL AND u.disabled = 0",
            (key_id,),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    # -- models and grants ---------------------------------------------------------------

    def ensure_model(self, model: str) -> None:
        if not model or len(model) > 200:
            raise PolicyError(f"model {model!r}: expected 1-200 characters")
        self._execute(
            "INSERT INTO models (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING", (model, now()),
        )

    def model(self, model: str) -> dict[str, Any] | None:
        rows = self._execute(
            f"SELECT id, {', '.join(MODEL_SETTINGS)} FROM models WHERE id = ?", (model,),
        )
        return dict(zip(("id", *MODEL_SETTINGS), rows[0], strict=True)) if rows else None

    def models(self) -> list[str]:
        return [row[0] for row in self._execute("SELECT id FROM models ORDER BY id")]

    def update_model(self, model: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(settings) - set(MODEL_SETTINGS)
        if unknown:
            raise PolicyError(f"unknown model setting(s): {', '.join(sorted(unknown))}")
        if settings:
            assignments = ", ".join(f"{name} = ?" for name in settings)
            self._execute(f"UPDATE models SET {assignments} WHERE id = ?", (*settings.values(), model))
        return self.model(model)

    def grant(self, user: str, model: str, permission: str, managed: bool = False) -> None:
        if permission not in PERMISSIONS:
            raise PolicyError(f"permission {permission!r}: expected one of {', '.join(PERMISSIONS)}")
        self._require_user(user)
        self.ensure_model(model)
        self._execute(
            "INSERT INTO model_access (user_id, model_id, permission_level, managed) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id, model_id) DO UPDATE SET permission_level = excluded.permission_level,"
            " managed = excluded.managed",
            (user, model, permission, int(managed)),
        )

    def revoke(self, user: str, model: str) -> bool:
        rows = self._execute(
            "DELETE FROM model_access WHERE user_id = ? AND model_id = ? RETURNING user_id", (user, model),
        )
        return bool(rows)

    def permission(self, user: str, model: str) -> str | None:
        rows = self._execute(
            "SELECT permission_level FROM model_access WHERE user_id = ? AND model_id = ?", (user, model),
        )
        return rows[0][0] if rows else None

    def permissions(self, user: str) -> dict[str, str]:
        rows = self._execute("SELECT model_id, permission_level FROM model_access WHERE user_id = ?", (user,))
        return dict(rows)

    def access(self, model: str | None = None) -> list[dict[str, Any]]:
        rows = self._execute(
            "SELECT user_id, model_id, permission_level, managed FROM model_access"
            + (" WHERE model_id = ?" if model else "") + " ORDER BY model_id, user_id",
            (model,) if model else (),
        )
        return [dict(zip(("user", "model", "permission", "managed"), row, strict=True)) for row in rows]

    # -- seeding from inventory ----------------------------------------------------------

    def seed(self, document: Mapping[str, Any], digest: str) -> dict[str, Any]:
        """Make the inventory-managed rows match ``document`` (see ``roles/gateway``).

        ``{"models": [id], "users": {user: {model: permission}},
        "keys": {user: [{"key_id": id, "sha256": digest}]}}``. Rows the document no
        longer lists lose their grant (or are revoked, for keys) only if seeding made
        them; rows created through the CLI or the admin API are left alone. A key revoked
        on the node stays revoked while the document lists it unchanged: revocation wins,
        and ``kept_revoked`` names those keys so the deploy can say so.
        """
        counts: dict[str, Any] = {"users": 0, "grants": 0, "revoked_grants": 0, "keys": 0, "revoked_keys": 0,
                                  "kept_revoked": []}
        users: Mapping[str, Mapping[str, str]] = document.get("users", {})
        keys: Mapping[str, Sequence[Mapping[str, str]]] = document.get("keys", {})
        with self.transaction():
            for model in document.get("models", ()):
                self.ensure_model(model)
            for user, grants in users.items():
                counts["users"] += self.add_user(user, managed=True)
                for model, permission in grants.items():
                    self.grant(user, model, permission, managed=True)
                    counts["grants"] += 1
            wanted_grants = {(u, m) for u, grants in users.items() for m in grants}
            for user, model in self._execute("SELECT user_id, model_id FROM model_access WHERE managed = 1"):
                if (user, model) not in wanted_grants:
                    counts["revoked_grants"] += self.revoke(user, model)
            wanted_keys = set()
            for user, entries in keys.items():
                self._require_user(user)
                for entry in entries:
                    self.store_key(user, entry["key_id"], entry["sha256"], managed=True)
                    wanted_keys.add(entry["key_id"])
                    counts["keys"] += 1
            for (key_id,) in self._execute("SELECT key_id FROM api_keys WHERE managed = 1 AND revoked_at IS NOT NULL"
                                           " ORDER BY key_id"):
                if key_id in wanted_keys:
                    counts["kept_revoked"].append(key_id)
            for (key_id,) in self._execute("SELECT key_id FROM api_keys WHERE managed = 1 AND revoked_at IS NULL"):
                if key_id not in wanted_keys:
                    counts["revoked_keys"] += self.revoke_key(key_id)
            self._execute(
                "INSERT INTO gateway_meta (name, value) VALUES ('seed', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (json.dumps({"sha256": digest, "at": now()}),),
            )
        return counts
