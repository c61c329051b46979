"""netcheck: measure bandwidth between node pairs and export it for the alert rule.

iperf3 over TCP between every pair (ring or all, data), and ib_write_bw over InfiniBand
where both ends have an RDMA device (skipped with a warning otherwise). Each client writes
its results as node-exporter textfile metrics (deepseek_network_bandwidth_bytes_per_second
{peer,transport}); the controller prints one table per client against the threshold
monitoring_network_min_bytes_per_s and can write a JSON report of every pair. This is a
measurement, not state: every run measures again.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
