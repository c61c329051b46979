"""exporters: the metrics every node exposes to the monitoring network.

Prometheus node exporter (Debian package, port 9100) with a textfile directory for the
collection's own metrics (network check, weights verification, node state); NVIDIA DCGM
and dcgm-exporter (port 9400) when the configured apt sources offer them (the NVIDIA
source or site mirror), skipped with a warning otherwise; a relay that exposes only the
engine's loopback /metrics; nftables rules that keep these ports to the monitoring network.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
