"""API keys: ``dsk-<key_id>-<secret>``, stored only as a SHA-256 digest.

The secret is 256 random bits, so a fast hash cannot be brute-forced and checking a key
costs microseconds per request (a slow KDF such as scrypt protects guessable passwords,
which these are not). The key id (12 hex chars) is the lookup index; the digest is
compared in constant time. The plaintext key is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "dsk"
KEY_RE = re.compile(r"^dsk-(?P<key_id>[0-9a-f]{12})-(?P<secret>[A-Za-z0-9_-]{43})$")


def generate_key() -> str:
    """A new key; its id is ``key_id(key)``."""
    return f"{PREFIX}-{secrets.token_hex(6)}-{secrets.token_urlsafe(32)}"


def key_id(key: str) -> str | None:
    """The key id of a well-formed key, else None."""
    match = KEY_RE.match(key.strip())
    return match.group("key_id") if match else None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.strip().encode()).hexdigest()


def matches(key: str, digest: str) -> bool:
    return hmac.compare_digest(hash_key(key), digest)


def bearer_key(authorization: str | None) -> str | None:
    """The key from an ``Authorization: Bearer <key>`` header value."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None
