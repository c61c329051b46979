"""Variables of the filebeat role (gateway request logs to Logstash). Host-data keys.

Filebeat is not in Debian's archive: it comes from the Elastic apt source or a site mirror
of it (filebeat_apt_repo_url + filebeat_apt_keyring), or from a source already configured.
With neither, or without Logstash hosts, the role skips and says why.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field, field_validator

from deepseek_node import paths
from deepseek_infra.config import RoleDefaults

_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


class FilebeatDefaults(RoleDefaults):
    prefix: ClassVar[str] = "filebeat_"

    filebeat_package: str = Field(default="filebeat", description="Package of Filebeat in the Elastic apt source or mirror.")
    filebeat_apt_repo_url: str | None = Field(
        default=None, description="Elastic apt repository (or mirror) URL, e.g. https://mirror.example.internal/elastic/8.x/apt; None: use sources already configured.",
    )
    filebeat_apt_suite: str = Field(default="stable", description="Suite of the Elastic apt repository.")
    filebeat_apt_keyring: str | None = Field(
        default=None, description="Controller path of the repository's signing key (binary .gpg) installed to /etc/apt/keyrings.",
    )
    filebeat_logstash_hosts: tuple[str, ...] = Field(default=(), description="Logstash beats inputs as host:port; empty: skip shipping.")
    filebeat_logstash_ssl_ca: str | None = Field(
        default=None, description="CA file on the node that signs Logstash's certificate; None: plain TCP (inside a trusted network only).",
    )
    filebeat_request_log: str = Field(
        default=f"{paths.LOG_DIR}/gateway/requests.jsonl", description="The gateway's JSON-lines request log shipped to Logstash.",
    )

    @field_validator("filebeat_logstash_hosts")
    @classmethod
    def _host_ports(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for entry in hosts:
            match = _HOST_PORT.match(entry)
            if not match or not 1 <= int(match.group(2)) <= 65535:
                raise ValueError(f"{entry!r} is not host:port")
        return hosts

    @field_validator("filebeat_apt_repo_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None and (not re.match(r"^(https?|file)://\S+$", url) or '"' in url):
            raise ValueError(f"{url!r} is not an http(s):// or file:// URL")
        return url

    @field_validator("filebeat_request_log", "filebeat_logstash_ssl_ca")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        if path is not None and (not path.startswith("/") or any(c.isspace() or c in "\"'" for c in path)):
            raise ValueError(f"{path!r} must be an absolute path without spaces or quotes")
        return path
