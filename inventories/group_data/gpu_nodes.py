"""Settings for every GPU server (group `gpu_nodes`)."""

# NTP servers reachable from the GPU network; empty keeps the distribution's pool.
base_ntp_servers = ()
