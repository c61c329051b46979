"""Per-role rollout of Docker with the NVIDIA container runtime:
`pyinfra inventories/prod.py deploy/docker.py` (after deploy/nvidia_driver.py)."""

from pyinfra import host

from roles.docker import tasks as docker
from roles.settings import settings_for

settings = settings_for(host)
docker.install(settings.docker, settings.nvidia_repo)
