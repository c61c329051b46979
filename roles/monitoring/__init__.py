"""monitoring: Prometheus configuration, alert rules and the Grafana dashboard for the fleet.

``fleet_files`` builds every file from the inventory (one scrape target per host and
exporter, ``host`` label) and the alert thresholds; ``install`` puts them on a host of the
``monitoring`` group running Debian's prometheus package; deploy/monitoring.py writes them
to a controller directory instead for sites that run their own Prometheus.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
