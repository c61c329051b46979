"""preflight: read-only checks of each host against the configured model and engine.

Reads the batched hardware fact and the filesystem under the weights path, compares them
with the requirements (deepseek_infra/preflight.py), prints the table, optionally writes a JSON
report on the controller, and stops a failing host (or the whole run) before any role
changes anything. Runs unchanged with ``--dry``.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
