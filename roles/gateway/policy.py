"""The inventory's users, grants and keys as the seed document nodes apply.

Runs on the controller, without pyinfra. Plaintext keys are read from the site's secret
file and reduced here to key id + SHA-256; only that reaches the node, and pyinfra never
prints a pushed file's content.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from deepseek_node.gateway import keys as apikeys


class KeysFileError(ValueError):
    """The secret keys file is unreadable or malformed (the message never shows a key)."""


def read_keys_file(path: str) -> dict[str, list[str]]:
    """``{user: [key, ...]}`` from a YAML mapping of user -> key or list of keys."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise KeysFileError(f"{path}: cannot read it as YAML ({type(error).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise KeysFileError(f"{path}: expected a mapping of user -> key or list of keys")
    keys: dict[str, list[str]] = {}
    for user, value in data.items():
        values = value if isinstance(value, list) else [value]
        for position, key in enumerate(values, start=1):
            if not isinstance(key, str) or apikeys.key_id(key) is None:
                raise KeysFileError(
                    f"{path}: {user}: key #{position} is not a gateway key (dsk-<12 hex>-<43 chars>); "
                    "create one with `deepseek-gateway key create` or deepseek_node.gateway.keys.generate_key()"
                )
        keys[str(user)] = [key.strip() for key in values]
    return keys


def seed_document(users: Mapping[str, Mapping[str, str]], keys: Mapping[str, Iterable[str]],
                  models: Iterable[str]) -> str:
    """The seed file's content: stable JSON (same inventory, same bytes)."""
    document = {
        "version": 1,
        "models": sorted(set(models) | {model for grants in users.values() for model in grants}),
        "users": {user: dict(sorted(grants.items())) for user, grants in sorted(users.items())},
        "keys": {
            user: sorted(({"key_id": apikeys.key_id(key), "sha256": apikeys.hash_key(key)} for key in user_keys),
                         key=lambda entry: entry["key_id"])
            for user, user_keys in sorted(keys.items())
        },
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def seed_warnings(host_name: str, seed_output: str) -> list[str]:
    """Deploy warnings from ``deepseek-gateway seed``'s counts: keys revoked on the node that
    the inventory still lists stay revoked until the inventory drops or rotates them."""
    lines = [line for line in seed_output.splitlines() if line.startswith("{")]
    counts = json.loads(lines[-1]) if lines else {}
    return [f"{host_name}: gateway key {key_id} was revoked on the node and stays revoked; "
            f"remove or rotate it in gateway_keys_file to stop this warning"
            for key_id in counts.get("kept_revoked", ())]


def derived_input_hash_key(keys_file: str) -> str:
    """The site's input-hash key, derived from the gateway keys file: the same on every node,
    new whenever the keys file changes, and unknown to whoever reads only the request log."""
    secret = Path(keys_file).read_bytes()
    return hmac.new(secret, b"deepseek-gateway input hash key v1", hashlib.sha256).hexdigest()
