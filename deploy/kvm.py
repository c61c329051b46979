"""Optional KVM guests: `pyinfra inventories/prod.py deploy/kvm.py` (hosts in `kvm_hosts` or with `kvm_guests`).

    pyinfra inventories/lab.py deploy/kvm.py --limit ds-node-2 \\
        --data kvm_domain_type=qemu --data 'kvm_guests=[{"name": "g0", "vcpus": 1, "memory_mib": 512}]'
"""

from pyinfra import host, logger

from roles.kvm import tasks as kvm
from roles.settings import settings_for

settings = settings_for(host)
if kvm.applies(settings.kvm):
    kvm.install(settings.kvm, settings.tuning)
else:
    logger.info(f"{host.name}: not in kvm_hosts and no kvm_guests: kvm role skipped")
