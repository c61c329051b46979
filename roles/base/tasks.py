"""base: what every node needs before any GPU software.

Packages, time sync (chrony), the locked-down ``deepseek`` service account, the directory
tree (config /etc/deepseek, software /opt/deepseek, data /var/lib/deepseek) and the node
facts file written from the discovered hardware.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from deepseek_node import paths
from deepseek_infra.operations import node, sync
from roles import template_path
from roles.base.defaults import BaseDefaults
from deepseek_infra.facts.host import prepared_hardware

# (path, owner, group, mode): the service account may read config, owns data and logs.
DIRECTORIES = (
    (paths.CONFIG_DIR, "root", paths.SERVICE_USER, "0750"),
    (paths.SOFTWARE_DIR, "root", "root", "0755"),
    (paths.DATA_DIR, paths.SERVICE_USER, paths.SERVICE_USER, "0750"),
    (paths.MODELS_DIR, paths.SERVICE_USER, paths.SERVICE_USER, "0750"),
    (paths.STATE_DIR, "root", "root", "0755"),
    (paths.LOG_DIR, paths.SERVICE_USER, paths.SERVICE_USER, "0750"),
)
CHRONY_SOURCES = "/etc/chrony/sources.d/deepseek.sources"


@deploy("base: install")
def install(config: BaseDefaults, node_facts: bool = True) -> None:
    """Everything above; ``node_facts=False`` leaves the facts file to ``facts()`` at the end
    of a full deploy, so it is written once, after the driver can describe the GPUs."""
    # Taken from the hardware reading preflight already made in this run (one round trip
    # fewer per host); read here when base runs alone.
    in_container = bool(prepared_hardware(host).virtualization.container)

    apt.packages(
        name="Ensure base packages are installed",
        packages=sorted({*config.base_packages, *config.base_extra_packages}),
        update=True,
        cache_time=config.base_apt_cache_valid_s,
    )
    _time_sync(config, in_container)
    _service_account(config)
    for path, owner, group, mode in DIRECTORIES:
        files.directory(
            name=f"Ensure {path} exists ({owner}:{group} {mode})",
            path=path, user=owner, group=group, mode=mode,
        )
    if node_facts:
        _node_facts_file()


@deploy("base: node facts")
def facts() -> None:
    _node_facts_file()


def _node_facts_file() -> None:
    node.node_facts_file(
        name=f"Ensure {paths.NODE_FACTS_FILE} describes the discovered hardware",
        user="root", group=paths.SERVICE_USER, mode="0640",
    )


def _time_sync(config: BaseDefaults, in_container: bool) -> None:
    if config.base_ntp_servers:
        sources = sync.template_synced(
            name="Ensure chrony uses the site's NTP servers",
            src=template_path(__package__, CHRONY_SOURCES), dest=CHRONY_SOURCES,
            servers=config.base_ntp_servers, mode="0644",
        )
        pool = files.replace(
            name="Ensure the distribution's NTP pool is off when site servers are set",
            path="/etc/chrony/chrony.conf", text="^pool ", replace="#pool ",
        )
        changes = (sources, pool)
    else:
        changes = (files.file(
            name="Ensure no site NTP sources file is left over", path=CHRONY_SOURCES, present=False,
        ),)
    # chronyd needs CAP_SYS_TIME, which a container lacks (its unit is skipped by a
    # condition there): enable it for the real host it may become, start it only on one.
    systemd.service(
        name="Ensure chrony is enabled" + ("" if in_container else " and running"),
        service="chrony", enabled=True, running=None if in_container else True,
    )
    if not in_container:
        # Decided when the sources step has run (`_if`), not by asking `.changed` while
        # preparing, which would read the sources' facts twice per run.
        systemd.service(
            name="Restart chrony when its sources changed",
            service="chrony", restarted=True, _if=any_changed(*changes),
        )


def _service_account(config: BaseDefaults) -> None:
    server.group(
        name=f"Ensure the {paths.SERVICE_USER} group exists",
        group=paths.SERVICE_USER, system=True, gid=config.base_service_uid,
    )
    server.user(
        name=f"Ensure the {paths.SERVICE_USER} service account exists, locked, without a login shell",
        user=paths.SERVICE_USER, system=True, uid=config.base_service_uid,
        group=paths.SERVICE_USER, home=paths.DATA_DIR, create_home=False,
        shell="/usr/sbin/nologin",
    )