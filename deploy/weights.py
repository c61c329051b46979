"""Per-role rollout of the weights role: `pyinfra inventories/prod.py deploy/weights.py`.

Roll back to the previous release: `pyinfra inventories/prod.py deploy/weights.py --data weights_action=rollback`.
Needs the base role (the deepseek account, /var/lib/deepseek) to have run.
"""

from pyinfra import host

from roles.weights import tasks as weights
from roles.settings import settings_for

settings = settings_for(host)
weights.install(settings.weights, settings.deployment)
