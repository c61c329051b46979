"""Per-role rollout of the kernel role: `pyinfra inventories/prod.py deploy/kernel.py`.

Then `deploy/reboot.py` reboots the hosts whose new command line is not running yet.
"""

from pyinfra import host

from roles.kernel import tasks as kernel
from roles.settings import settings_for

kernel.tune(settings_for(host).kernel)
