"""Per-role rollout of the NVIDIA driver: `pyinfra inventories/prod.py deploy/nvidia_driver.py`."""

from pyinfra import host

from roles.nvidia_driver import tasks as nvidia_driver
from roles.settings import settings_for

settings = settings_for(host)
nvidia_driver.install(settings.nvidia_driver, settings.nvidia_repo, settings.cuda)
