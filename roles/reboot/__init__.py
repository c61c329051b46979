"""reboot: reboot the hosts whose roles asked for it, a batch at a time.

Reads the per-host state the roles write (``deepseek_infra.facts.reboot.RebootRequired``); a host
with no request is left alone. A container cannot be rebooted from inside (its "reboot"
would stop the container, and its kernel is the host's): it is reported and skipped, with
the state kept, so the request stays visible.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
