"""serve: the inference engine as a hardened, health-checked systemd unit.

Plans the layout on this node's GPUs (deepseek_infra/sizing.py), installs the engine offline (a
pinned venv from a wheelhouse or internal index, or a container image from the site's
registry or a saved tarball) and the health tool (the deepseek-node wheel's
``deepseek-engine-health``, in its own standard-library venv), renders ``deepseek-engine.service`` from the plan
(deepseek_infra/engine.py), and starts it; the start job ends only when ``/health`` answers
(ExecStartPost), so a deploy that returns has a serving engine, and fails as soon as the
engine's process dies while starting, with the unit's last journal lines. The engine listens on
loopback; the gateway is the way in. ``/etc/deepseek/engine.json`` records what runs.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
