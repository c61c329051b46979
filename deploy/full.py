"""Every role, in order, on every host: `pyinfra inventories/prod.py deploy/full.py`.

Host data is validated for the whole inventory first (roles/settings.py), then preflight
checks each host read-only; a host that fails it gets no change at all. The order matters:
the InfiniBand stack before the driver (nvidia-peermem), the driver before tuning (the
pinning plan reads `nvidia-smi topo -m`), weights before the engine, the engine before
the gateway, and the node facts file last, once the driver can describe the GPUs.
Rolling reboots (deploy/reboot.py), the network check (deploy/netcheck.py) and the
monitoring host (deploy/monitoring.py) run separately; rolling upgrades with health gates
and rollback: `python deploy/upgrade.py` (fleet/upgrade.py).
"""

from pyinfra import host

from roles.base import tasks as base
from roles.cuda import tasks as cuda
from roles.docker import tasks as docker
from roles.exporters import tasks as exporters
from roles.filebeat import tasks as filebeat
from roles.gateway import tasks as gateway
from roles.infiniband import tasks as infiniband
from roles.kernel import tasks as kernel
from roles.kvm import tasks as kvm
from roles.nvidia_driver import tasks as nvidia_driver
from roles.preflight import tasks as preflight
from roles.serve import tasks as serve
from roles.tuning import tasks as tuning
from roles.weights import tasks as weights
from roles.settings import settings_for

settings = settings_for(host)
if preflight.check(settings.preflight, settings.deployment, settings.tuning, settings.serve, settings.weights):
    base.install(settings.base, node_facts=False)
    kernel.tune(settings.kernel)
    rdma = infiniband.install(settings.infiniband, settings.kernel)
    nvidia_driver.install(settings.nvidia_driver, settings.nvidia_repo, settings.cuda, ib_stack_in_this_run=rdma)
    cuda.install(settings.cuda, settings.nvidia_driver, settings.nvidia_repo)
    docker.install(settings.docker, settings.nvidia_repo)
    tuning.place(settings.tuning, settings.deployment)
    if kvm.applies(settings.kvm):
        kvm.install(settings.kvm, settings.tuning)
    weights.install(settings.weights, settings.deployment)
    serve.install(settings.serve, settings.deployment, settings.weights)
    gateway.install(settings.gateway, settings.deployment)
    exporters.install(settings.exporters)
    filebeat.install(settings.filebeat)
    base.facts()
