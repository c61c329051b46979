"""Read-only preflight of every host for the configured model and engine.

    pyinfra inventories/prod.py deploy/preflight.py --data preflight_report=preflight.json
    pyinfra inventories/prod.py deploy/preflight.py --data deepseek_model=deepseek-v3 --dry
"""

from pyinfra import host

from roles.preflight import tasks as preflight
from roles.settings import settings_for

settings = settings_for(host)
preflight.check(settings.preflight, settings.deployment, settings.tuning, settings.serve, settings.weights)
