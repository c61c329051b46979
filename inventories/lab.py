"""The running lab fleet (`make lab-up` / `lab up N`), as pyinfra hosts.

Every lab node is in `gpu_nodes` and `lab`; nodes whose hardware profile has InfiniBand
HCAs are also in `ib_fabric`, as they would be in a real inventory. Lab-only settings
live in group_data/lab.py.
"""

from lab import hwsim
from lab.fleet import list_nodes

_nodes = [node for node in list_nodes() if node.status == "running"]
if not _nodes:
    raise SystemExit("inventories/lab.py: no lab node is running; start some with `make lab-up` (lab up 2)")

lab = [f"@docker/{node.name}" for node in _nodes]
gpu_nodes = list(lab)
ib_fabric = [f"@docker/{node.name}" for node in _nodes if hwsim.load_profile(node.profile).get("infiniband")]
