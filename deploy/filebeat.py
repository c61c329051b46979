"""Per-role rollout of the filebeat role: `pyinfra inventories/prod.py deploy/filebeat.py`."""

from pyinfra import host

from roles.filebeat import tasks as filebeat
from roles.settings import settings_for

filebeat.install(settings_for(host).filebeat)
