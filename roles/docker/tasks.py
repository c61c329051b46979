"""docker: the Docker engine with the NVIDIA container runtime, merged daemon.json, CDI spec.

Engine: Debian's ``docker.io`` or ``docker-ce`` from a configured repository and key. The
NVIDIA container toolkit comes from the stack's source (roles/nvidia_repo), pinned and held.
``/etc/docker/daemon.json`` is merged with what the file already holds
(``deepseek_infra.docker_config``): the nvidia runtime registered, the optional default runtime,
log rotation, data-root on the data volume; Docker restarts only when the file changed.
The CDI spec (``nvidia-ctk cdi generate``) is generated only when it is missing or names
another driver than the loaded one.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import deploy, operation
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, files, server, systemd

from deepseek_node import paths
from deepseek_infra.docker_config import (
    CDI_SPEC,
    DAEMON_JSON,
    DaemonConfigError,
    merge_daemon_config,
    parse_daemon_config,
    render_apt_source,
    render_daemon_config,
)
from deepseek_infra.facts.docker import DockerState
from deepseek_infra.facts.host import hardware_part
from deepseek_infra.hardware import OsRelease
from deepseek_infra.nvidia_repo import KEYRING_DIR, preferences_path, render_preferences
from deepseek_infra.operations import nvidia, sync
from deepseek_infra.versions import PackageVersion
from roles.nvidia_repo import tasks as nvidia_repo
from roles.docker.defaults import DockerDefaults
from roles.nvidia_repo.defaults import NvidiaRepoDefaults

RECORD_FILE = f"{paths.CONFIG_DIR}/docker.json"
DOCKER_CE_SOURCES = "/etc/apt/sources.list.d/deepseek-docker.sources"
DOCKER_CE_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io")
# All four at one version, as NVIDIA's install guide pins them: from 1.18.0 the toolkit
# depends on libnvidia-container-tools (= its version) (NVIDIA/nvidia-container-toolkit
# packaging/debian/control, f0ea60a2), and before it (>=), so the libraries would float.
TOOLKIT_PACKAGES = ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
                    "libnvidia-container1")
TOOLKIT_MANAGED = r"^(nvidia-container-toolkit(-base)?|libnvidia-container-tools|libnvidia-container1)$"
CDI_DOCKER_MAJOR = 25  # Docker has CDI (opt-in, features.cdi) from 25; Debian 12's docker.io is 20.10


def toolkit_pins(config: DockerDefaults) -> dict[str, PackageVersion]:
    return {name: config.docker_nvidia_container_toolkit_version for name in TOOLKIT_PACKAGES}


@deploy("docker: install")
def install(config: DockerDefaults, repo: NvidiaRepoDefaults) -> None:
    state = host.get_fact(DockerState)
    try:
        merged = merge_daemon_config(parse_daemon_config(state["daemon_json"]), config.managed())
    except DaemonConfigError as error:
        raise DeployError(f"{host.name}: {error}; refused before any change") from None

    # Written before the engine is installed, so the package's first start already uses it
    # (a daemon that cannot start with its defaults would otherwise hit its restart limit).
    daemon = sync.file_synced(name=f"Ensure {DAEMON_JSON} registers the nvidia runtime (merged with its other keys)",
                              src=StringIO(render_daemon_config(merged)), dest=DAEMON_JSON,
                              user="root", group="root", mode="0644", create_remote_dir=True)
    _engine(config)
    nvidia_repo.configure(repo)
    pins = toolkit_pins(config)
    sync.file_synced(name=f"Ensure apt pins the NVIDIA container toolkit at {config.docker_nvidia_container_toolkit_version}",
                     src=StringIO(render_preferences(pins, owner="docker")), dest=preferences_path("docker"),
                     user="root", group="root", mode="0644")
    nvidia.pinned_packages(name=f"Ensure the NVIDIA container toolkit {config.docker_nvidia_container_toolkit_version} "
                                "is installed and held",
                           packages=pins, managed=TOOLKIT_MANAGED, patterns=TOOLKIT_PACKAGES,
                           what="NVIDIA container toolkit")
    # A failed start before the change (its restart limit hit) must not block the restart.
    server.shell(name=f"Restart Docker because {DAEMON_JSON} changed",
                 commands=["systemctl reset-failed docker.service; systemctl restart docker.service"],
                 _if=daemon.did_change)
    systemd.service(name="Ensure Docker is enabled and running", service="docker", enabled=True, running=True)
    if config.docker_cdi and tuple(config.docker_nvidia_container_toolkit_version.parts[:2]) >= (1, 18):
        # nvidia-cdi-refresh.service (toolkit >= 1.18) keeps /var/run/cdi/nvidia.yaml itself:
        # a second spec would name nvidia.com/gpu twice.
        logger.info(f"{host.name}: container toolkit >= 1.18 writes its own CDI spec (nvidia-cdi-refresh); "
                    f"{CDI_SPEC} not generated")
    elif config.docker_cdi:
        cdi_spec(name=f"Ensure {CDI_SPEC} describes the loaded NVIDIA driver")
    sync.file_synced(name=f"Ensure {RECORD_FILE} records the Docker settings",
                     src=StringIO(json.dumps({"settings": config.model_dump(mode="json"), "managed": config.managed()},
                     indent=2, sort_keys=True) + "\n"),
                     dest=RECORD_FILE, user="root", group="root", mode="0644")


def _engine(config: DockerDefaults) -> None:
    if config.docker_engine == "docker.io":
        files.file(name="Ensure no Docker CE source is left over", path=DOCKER_CE_SOURCES, present=False)
        apt.packages(name="Ensure Debian's Docker engine is installed (docker.io)", packages=["docker.io"],
                     update=True, cache_time=3600)
        return
    key_path = str(config.docker_ce_repo_key)
    if not Path(key_path).is_file():
        raise DeployError(f"{host.name}: docker_ce_repo_key: expected a key file on the controller, "
                          f"found none at {key_path!r}")
    codename = hardware_part(host, OsRelease).codename
    if not codename:
        raise DeployError(f"{host.name}: docker_engine: docker-ce needs the distribution's codename, "
                          "found none in /etc/os-release")
    armored = Path(key_path).read_bytes().lstrip().startswith(b"-----BEGIN PGP")
    keyring = f"{KEYRING_DIR}/deepseek-docker.{'asc' if armored else 'gpg'}"
    key = sync.file_synced(name="Ensure the Docker CE repository key is installed", src=key_path, dest=keyring,
                           user="root", group="root", mode="0644")
    source = sync.file_synced(name=f"Ensure {DOCKER_CE_SOURCES} names the Docker CE repository",
                              src=StringIO(render_apt_source(str(config.docker_ce_repo_url), codename, keyring)),
                              dest=DOCKER_CE_SOURCES, user="root", group="root", mode="0644")
    if key.changed or source.changed:
        apt.update(name="Update apt's index after the Docker CE source changed")
    apt.packages(name="Ensure Docker CE is installed", packages=list(DOCKER_CE_PACKAGES))


@operation()
def cdi_spec():
    """
    Generate the CDI spec when it is missing or names another driver than the loaded one.

    Reads the driver when it runs, so a driver installed earlier in the same deploy counts
    (the first run writes the final spec; a second run changes nothing).
    """
    state = host.get_fact(DockerState)
    if state["docker_major"] is not None and state["docker_major"] < CDI_DOCKER_MAJOR:
        host.noop(f"Docker {state['docker_major']} has no CDI (Docker >= {CDI_DOCKER_MAJOR}): containers get GPUs "
                  f"through the nvidia runtime; no {CDI_SPEC} written")
        return
    if state["cdi_current"]:
        host.noop(f"{CDI_SPEC} was generated for the loaded driver {state['driver']}")
        return
    if state["driver"] is None:
        logger.warning(f"{host.name}: no loaded NVIDIA driver answers nvidia-smi (not installed, or a reboot is "
                       f"pending): {CDI_SPEC} not generated; rerun after deploy/nvidia_driver.py and any reboot")
        return
    yield f"mkdir -p {Path(CDI_SPEC).parent} && nvidia-ctk cdi generate --output={CDI_SPEC}"