"""Every role, in order, on every host: `pyinfra inventories/prod.py deploy/full.py`.

Host data is validated for the whole inventory first (roles/settings.py), then preflight
checks each host read-only; a host that fails it gets no change at all.
"""

from pyinfra import host

from roles import base, preflight
from roles.settings import settings_for

settings = settings_for(host)
if preflight.check(settings.preflight, settings.deployment):
    base.install(settings.base)
