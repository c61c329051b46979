"""filebeat: ship the gateway's JSON-lines request log to Logstash (ELK, design brief 6.2).

Filebeat is not in Debian's archive: the role adds the configured Elastic apt repository
(or mirror) when filebeat_apt_repo_url is set, installs filebeat when the apt sources offer
it, and skips with a warning when they do not or when no Logstash host is configured.
A Logstash pipeline example is in roles/filebeat/files/logstash/deepseek-requests.conf.
"""

from __future__ import annotations

from io import StringIO

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import apt, files, systemd

from deepseek_infra.operations import sync
from roles import template_path
from roles.exporters.operations import installed, packages_if_available
from roles.filebeat.defaults import FilebeatDefaults

CONFIG = "/etc/filebeat/filebeat.yml"
KEYRING = "/etc/apt/keyrings/deepseek-elastic.gpg"
SOURCE = "/etc/apt/sources.list.d/deepseek-elastic.list"


def render_context(config: FilebeatDefaults) -> dict:
    return {"request_log": config.filebeat_request_log, "logstash_hosts": list(config.filebeat_logstash_hosts),
            "ssl_ca": config.filebeat_logstash_ssl_ca}


@deploy("filebeat: install")
def install(config: FilebeatDefaults) -> None:
    if not config.filebeat_logstash_hosts:
        logger.warning(f"{host.name}: filebeat skipped: filebeat_logstash_hosts is empty (no Logstash to ship to)")
        return
    if config.filebeat_apt_repo_url:
        signed = ""
        if config.filebeat_apt_keyring:
            files.directory(name="Ensure /etc/apt/keyrings exists", path="/etc/apt/keyrings", mode="0755")
            sync.file_synced(name=f"Ensure {KEYRING} is the Elastic repository key", src=config.filebeat_apt_keyring,
                             dest=KEYRING, mode="0644")
            signed = f"[signed-by={KEYRING}] "
        source = sync.file_synced(
            name=f"Ensure {SOURCE} names the Elastic repository",
            src=StringIO(f"deb {signed}{config.filebeat_apt_repo_url} {config.filebeat_apt_suite} main\n"),
            dest=SOURCE, mode="0644",
        )
        apt.update(name="Update apt after adding the Elastic repository", _if=source.did_change)
    package = (config.filebeat_package,)
    packages_if_available(name="Ensure filebeat is installed (when the apt sources offer it)",
                          packages=list(package), component="filebeat",
                          hint="set filebeat_apt_repo_url to the Elastic apt repository or its mirror")
    present = lambda: installed(package)
    conf = sync.template_synced(
        name=f"Ensure {CONFIG} ships {config.filebeat_request_log} to Logstash",
        src=template_path(__package__, CONFIG), dest=CONFIG, mode="0600", _if=present, **render_context(config),
    )
    systemd.service(name="Ensure filebeat is enabled and running", service="filebeat", enabled=True,
                    running=True, restarted=conf.changed, _if=present)
