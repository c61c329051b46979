"""Acceptance gate of each host: `pyinfra inventories/prod.py deploy/acceptance.py`.

DCGM diagnostics, NCCL all-reduce bus bandwidth across the node's GPUs, ib_write_bw per pair
of InfiniBand HCAs, a GPU memory-bandwidth and matmul burn-in on the engine's PyTorch, and
the all-reduce across the nodes of a multi-node replica (every host of the replica in the
same run); thresholds from the hardware (roles/acceptance/defaults.py). Each verdict goes to
/etc/deepseek/acceptance.json; a failed check fails the host, naming the check, the measured
figure and the threshold, and the node's gateway reports 503 on /health until a run passes.
`--data acceptance_checks='["dcgm"]'` runs one check; run it after a driver change.
"""

from pyinfra import host

from roles.acceptance import tasks as acceptance
from roles.settings import settings_for

settings = settings_for(host)
acceptance.check(settings.acceptance, place=acceptance.replica_place(settings.serve.serve_head_address,
                                                                     settings.tuning.tuning_nccl_env))
