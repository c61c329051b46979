"""Per-role rollout of the base role: `pyinfra inventories/prod.py deploy/base.py`."""

from pyinfra import host

from roles.base import tasks as base
from roles.settings import settings_for

base.install(settings_for(host).base)
