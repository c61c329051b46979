"""Per-role rollout of the exporters role: `pyinfra inventories/prod.py deploy/exporters.py`."""

from pyinfra import host

from roles.exporters import tasks as exporters
from roles.settings import settings_for

exporters.install(settings_for(host).exporters)
