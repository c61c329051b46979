"""Names every lab module agrees on: where the lab keeps its state, which fleet it is.

A leaf: it imports nothing from ``lab``, so the fleet, its mirrors, the tiny model and the
wheelhouses can all read it without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("DEEPSEEK_LAB_STATE", REPO_ROOT / ".lab"))
# Several independent fleets can share one Docker daemon (one per developer or test run).
FLEET = os.environ.get("DEEPSEEK_LAB_FLEET", "ds")
FLEET_DIR = STATE_DIR / "fleets" / FLEET
NETWORK = f"deepseek-lab-{FLEET}"  # one bridge per fleet so nodes reach each other by name
NODE_PREFIX = f"{FLEET}-node-"
LABEL_NODE = "deepseek-lab.node"  # value: the fleet's name
LABEL_PROFILE = "deepseek-lab.profile"
DATA_VOLUME = "/var/lib/deepseek"  # where a real node mounts its NVMe data volume
