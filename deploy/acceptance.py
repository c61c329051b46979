"""Acceptance gate of each host: `pyinfra inventories/prod.py deploy/acceptance.py`.

DCGM diagnostics, NCCL all-reduce bus bandwidth across the node's GPUs, ib_write_bw per pair
of InfiniBand HCAs; thresholds from the hardware (roles/acceptance/defaults.py). Each verdict
goes to /etc/deepseek/acceptance.json; a failed check fails the host, naming the check, the
measured figure and the threshold, and the node's gateway reports 503 on /health until a run
passes. `--data acceptance_checks='["dcgm"]'` runs one check; run it after a driver change.
"""

from pyinfra import host

from roles.acceptance import tasks as acceptance
from roles.settings import settings_for

acceptance.check(settings_for(host).acceptance)
