"""Health gates of every serving node: `pyinfra -y inventories/prod.py deploy/health.py`.

Runs the node's health tool (``deepseek-engine-health``: node/deepseek_node/engine_health.py in
the deepseek-node wheel, installed by the serve role) with
what this inventory expects, changing nothing:

* ``gpus``: every NVIDIA GPU on the PCI bus is visible to the driver at
  ``nvidia_driver_version`` (skipped when the engine runs on the CPU: the transformers
  engine with ``serve_transformers_device: cpu``, as in the lab);
* ``engine-health``: the engine's /health answers;
* ``engine-weights``: the checkpoint the engine reports having loaded (``/v1/models``) is the
  release of ``weights_revision`` and that release is the published ``current`` (weights the
  weights role places unencrypted; an overridden ``serve_model_path`` or a decrypted copy
  names no revision);
* ``engine-completion``: a real completion of the served model through the engine;
* ``gateway-completion``: the same through the gateway, when ``serve_health_gateway_url``
  is set.

A failing host fails the run (pyinfra exits non-zero) with ``<host>: gate <gate> failed:
<why>``; rolling upgrades call this after each batch. Worker nodes of a multi-node replica
serve no HTTP: only their GPU gate runs.
"""

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand
from pyinfra.operations import server

from deepseek_infra import engine
from roles.serve.tasks import engine_settings
from roles.settings import settings_for

settings = settings_for(host)
config = settings.serve
serve = engine_settings(config, settings.deployment, settings.weights)

argv: list = [engine.HEALTH_TOOL, "check",
              "--url", engine.health_url(serve.host, serve.port),
              "--model", serve.served_model_name, "--timeout", str(config.serve_health_timeout_s)]
if config.serve_model_path is None and settings.weights.weights_revision and not settings.weights.weights_encrypt:
    argv += ["--expect-model-path", serve.model_path]
if serve.on_cpu:
    argv += ["--skip-gpus", f"the {serve.engine} engine runs on the CPU here"]
else:
    argv += ["--expect-driver", str(settings.nvidia_driver.nvidia_driver_version)]
worker = serve.nodes > 1 and serve.node_rank > 0
if worker:
    argv += ["--worker"]
if config.serve_health_gateway_url and not worker:
    argv += ["--gateway-url", config.serve_health_gateway_url]
    if config.serve_health_gateway_token_file:
        argv += ["--gateway-token-file", config.serve_health_gateway_token_file]

server.shell(
    name=f"Health gates pass on {host.name} ({serve.served_model_name})",
    commands=[StringCommand(*(QuoteString(arg) for arg in argv))],
)
