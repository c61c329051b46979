"""Per-role rollout of the tuning role: `pyinfra inventories/prod.py deploy/tuning.py`.

Run it again after the NVIDIA driver role: with the driver loaded the plan comes from
`nvidia-smi topo -m` (GPU-HCA links) instead of sysfs.
"""

from pyinfra import host

from roles.tuning import tasks as tuning
from roles.settings import settings_for

settings = settings_for(host)
tuning.place(settings.tuning, settings.deployment)
