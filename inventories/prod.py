"""Example production fleet over SSH. Copy it, replace the hosts, keep the groups.

    pyinfra inventories/prod.py deploy/preflight.py      # read-only checks first
    pyinfra inventories/prod.py deploy/full.py           # everything, in order
    pyinfra inventories/prod.py deploy/base.py --limit gpu_nodes   # one role

Groups the collection reads:
  gpu_nodes  every GPU server that serves the model
  ib_fabric  the GPU servers on the InfiniBand fabric (RDMA, nvidia-peermem)
  monitoring (a separate inventory or --limit) Prometheus and Alertmanager for the fleet:
             deploy/monitoring.py only; alert receivers as in README, "Alerts that reach someone"
Hosts that serve one replica together (deepseek_nodes > 1) name it in deepseek_replica
(README, "Multi-node replicas"). Group-wide settings go in group_data/<group>.py; per-host settings in the host's dict
below. Every key is validated before any host is changed (see README, "Variables").
"""

_ssh = {"ssh_user": "deploy", "_sudo": True}

gpu_nodes = [
    # An 8x H200 HGX node serving DeepSeek-V3 alone.
    ("gpu-a01.dc1.example.internal", {**_ssh}),
    ("gpu-a02.dc1.example.internal", {**_ssh}),
    # A node reached through a jump host, with its own NTP server.
    ("gpu-b01.dc2.example.internal", {**_ssh, "ssh_port": 2222, "base_ntp_servers": ("ntp.dc2.example.internal",)}),
]

ib_fabric = [name for name, _ in gpu_nodes if ".dc1." in name]
