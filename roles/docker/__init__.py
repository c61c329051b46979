"""docker: the Docker engine with the NVIDIA container runtime, merged daemon.json, CDI spec.

Engine: Debian's ``docker.io`` or ``docker-ce`` from a configured repository and key. The
NVIDIA container toolkit comes from the stack's source (roles/nvidia_repo), pinned and held.
``/etc/docker/daemon.json`` is merged with what the file already holds
(``deepseek_infra.docker_config``): the nvidia runtime registered, the optional default runtime,
log rotation, data-root on the data volume; Docker restarts only when the file changed.
The CDI spec (``nvidia-ctk cdi generate``) is generated only when it is missing or names
another driver than the loaded one.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
