"""acceptance: the gate a node passes before it serves (issue 21).

Runs DCGM diagnostics (``dcgmi diag -r N``), nccl-tests ``all_reduce_perf`` across the node's
GPUs and ``ib_write_bw`` per pair of active InfiniBand HCAs, judges each figure against a
threshold derived from the hardware (deepseek_infra/acceptance.py), writes every verdict to
/etc/deepseek/acceptance.json and fails the host naming each failed check with its measured
figure and threshold. The node's gateway answers 503 on /health while the record says failed,
so the load balancer keeps the node out. A measurement, not state: every run measures again.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
