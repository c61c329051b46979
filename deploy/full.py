"""Every role, in order, on every host: `pyinfra inventories/prod.py deploy/full.py`.

Host data is validated for the whole inventory first (roles/settings.py), so a bad entry
stops the run before any host is changed.
"""

from pyinfra import host

from roles import base
from roles.settings import settings_for

settings = settings_for(host)
base.install(settings.base)
