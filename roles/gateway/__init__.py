"""gateway: the access-controlled OpenAI-compatible front of the node's engine.

Installs ``deepseek-gateway`` (the app in ``node/deepseek_node/gateway``, built into a wheel on the
controller) into a venv under /opt/deepseek/gateway from a wheelhouse or an internal
index, writes /etc/deepseek/gateway.yaml, a TLS certificate (provided, or self-signed on
the node), the inventory's users/grants/key hashes (seed file, applied with
``deepseek-gateway seed``), logrotate for the request log, and a hardened systemd unit.
The service restarts only when its software, configuration, certificate or unit changed.

Draining for rolling upgrades (the fleet-operations side): ``deepseek-gateway drain
--wait 120`` on the node (health turns 503, in-flight requests finish), then upgrade and
restart; or just ``systemctl restart deepseek-gateway``, whose SIGTERM drains for up to
``gateway_drain_timeout_s`` before the new process starts.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
