"""Lab-side inputs of the gateway role: a wheelhouse, a secret keys file, a fake engine.

Production sites provide their own wheelhouse (or index) and keys file; the lab makes
them here, under .lab/ (never in the repository). The fake engine (lab/fake_engine.py)
is started on a node by tests only; the role knows nothing about it.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from lab.constants import STATE_DIR
from lab.wheelhouse import wheelhouse
from deepseek_node.gateway import keys as apikeys

REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "node" / "locks" / "gateway.txt"
KEYS_FILE = STATE_DIR / "secrets" / "gateway-keys.yaml"
FAKE_ENGINE = Path(__file__).resolve().parent / "fake_engine.py"
#: users the lab seeds: user -> permission on the lab's model
LAB_USERS = {"lab-reader": "read", "lab-admin": "admin"}


def requirements() -> list[str]:
    lines = REQUIREMENTS_FILE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def gateway_wheelhouse(log=print) -> str:
    """The lab's wheelhouse for node/locks/gateway.txt (downloaded once)."""
    return str(wheelhouse("gateway", requirements(), log=log))


def keys_file() -> str:
    """A keys file with one key per lab user, created 0600 on first use, then reused."""
    if not KEYS_FILE.exists():
        KEYS_FILE.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        keys = {user: apikeys.generate_key() for user in LAB_USERS}
        descriptor = os.open(KEYS_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write("# Lab-only gateway keys (user -> key); a real site keeps this file secret.\n")
            yaml.safe_dump(keys, handle)
    return str(KEYS_FILE)


def lab_key(user: str) -> str:
    return yaml.safe_load(Path(keys_file()).read_text())[user]
