"""gateway: the access-controlled OpenAI-compatible front of the node's engine.

Installs ``deepseek-node[gateway]`` (the deepseek-node wheel built on the controller, whose
``deepseek-gateway`` console script runs ``node/deepseek_node/gateway``) and its lock
(node/locks/gateway.txt) into a venv under /opt/deepseek/gateway from a wheelhouse or an
internal index, writes /etc/deepseek/gateway.yaml, a TLS certificate (provided, or self-signed on
the node), the inventory's users/grants/key hashes (seed file, applied with
``deepseek-gateway seed``), logrotate for the request log, and a hardened systemd unit.
The service restarts only when its software, configuration, certificate or unit changed.

Draining for rolling upgrades (the fleet-operations side): ``deepseek-gateway drain
--wait 120`` on the node (health turns 503, in-flight requests finish), then upgrade and
restart; or just ``systemctl restart deepseek-gateway``, whose SIGTERM drains for up to
``gateway_drain_timeout_s`` before the new process starts.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
