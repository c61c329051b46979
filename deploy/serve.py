"""Per-role rollout of the inference engine: `pyinfra inventories/prod.py deploy/serve.py`.

Needs the base role (service account, directories) and the weights role (published
weights) first; on GPU nodes the driver and tuning roles.
"""

from pyinfra import host

from roles.serve import tasks as serve
from roles.settings import settings_for

settings = settings_for(host)
serve.install(settings.serve, settings.deployment, settings.weights)
