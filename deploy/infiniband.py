"""Per-role rollout of InfiniBand: `pyinfra inventories/prod.py deploy/infiniband.py`
(hosts in ib_fabric or with RDMA devices; run before deploy/nvidia_driver.py so nvidia-peermem
finds the IB stack)."""

from pyinfra import host

from roles.infiniband import tasks as infiniband
from roles.settings import settings_for

settings = settings_for(host)
infiniband.install(settings.infiniband, settings.kernel)
