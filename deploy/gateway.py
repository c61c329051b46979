"""Per-role rollout of the gateway: `pyinfra inventories/prod.py deploy/gateway.py`.

Needs the base role first (the deepseek account and the /etc, /var/lib, /var/log trees).
"""

from pyinfra import host

from roles.gateway import tasks as gateway
from roles.settings import settings_for

settings = settings_for(host)
gateway.install(settings.gateway, settings.deployment)
