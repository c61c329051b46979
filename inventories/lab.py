"""The running lab fleet (`make lab-up` / `python -m lab up N`), as pyinfra hosts.

Every lab node is in `gpu_nodes` and `lab`; nodes whose hardware profile has InfiniBand
HCAs are also in `ib_fabric`, as they would be in a real inventory; the first node is
also in `monitoring` (Prometheus for the fleet). Lab-only settings
live in lab_settings.py beside this file and apply to the `lab` group.
"""

import contextlib as _contextlib
import runpy as _runpy
import sys as _sys
import types as _types
from pathlib import Path as _Path

from lab import hwsim
from lab.nodes import list_nodes, node_addresses


def _lab_settings() -> dict:
    # Its progress lines (wheelhouse downloads) go to stderr: stdout may be pyinfra's --json.
    with _contextlib.redirect_stdout(_sys.stderr):
        names = _runpy.run_path(str(_Path(__file__).with_name("lab_settings.py")))
    return {
        key: value for key, value in names.items()
        if not key.startswith("_") and not isinstance(value, (_types.ModuleType, _types.FunctionType, type))
    }


_nodes = [node for node in list_nodes() if node.status == "running"]
if not _nodes:
    raise SystemExit("inventories/lab.py: no lab node is running; start some with `make lab-up` (python -m lab up 2)")

_hosts = [f"@docker/{node.name}" for node in _nodes]
lab = (_hosts, _lab_settings())
# Each node's address on the fleet's Docker network is its cluster address (Ray / NCCL
# bootstrap of a multi-node replica), as a real inventory sets it per host.
_addresses = node_addresses([node.name for node in _nodes])
gpu_nodes = [(f"@docker/{node.name}", {"serve_cluster_address": _addresses.get(node.name)}) for node in _nodes]
# The first node is also the fleet's monitoring host (deploy/monitoring.py installs Prometheus there).
monitoring = _hosts[:1]
ib_fabric = [f"@docker/{node.name}" for node in _nodes if hwsim.load_profile(node.profile).get("infiniband")]
