"""Reboot only the hosts a role marked "reboot required", `reboot_batch_size` at a time.

    pyinfra inventories/prod.py deploy/reboot.py                       # one host at a time
    pyinfra inventories/prod.py deploy/reboot.py --data reboot_batch_size=4

Each host's request is cleared after it is back. Lab containers are reported, never
rebooted. Rerun the role deploys afterwards: they re-check what the new boot applied.
"""

from pyinfra import host

from roles.reboot import tasks as reboot
from roles.settings import settings_for

reboot.reboot_if_required(settings_for(host).reboot)
