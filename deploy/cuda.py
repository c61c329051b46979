"""Per-role rollout of CUDA, cuDNN and NCCL: `pyinfra inventories/prod.py deploy/cuda.py`
(after deploy/nvidia_driver.py; the stack is checked against the driver before any change)."""

from pyinfra import host

from roles.cuda import tasks as cuda
from roles.settings import settings_for

settings = settings_for(host)
cuda.install(settings.cuda, settings.nvidia_driver, settings.nvidia_repo)
