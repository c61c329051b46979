"""deepseek-node: everything the collection runs on a node, in one wheel.

Standard library only at its core; each component's third-party needs are an extra of
the ``deepseek-node`` distribution (``node/pyproject.toml``), installed into that
component's pinned venv by the roles:

- ``deepseek_node.paths``: where things live on a node (the contract users read);
- ``deepseek_node.weights``: the weights tool (manifest, AES-256-GCM, fetch, release);
- ``deepseek_node.engine_health``: the engine's health and weights checks;
- ``deepseek_node.gateway``: the access-controlled OpenAI-compatible gateway;
- ``deepseek_node.engine_server``: the transformers engine server.

Nothing here imports the controller's packages (deepseek_infra, roles, fleet, lab) or
pyinfra: a unit test holds it to that.
"""

__version__ = "0.2.0"
