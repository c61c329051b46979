"""``DockerState``: what the docker role needs to know, in one round trip.

The current ``/etc/docker/daemon.json`` (merged, never clobbered), the driver version
``nvidia-smi`` reports (None when no driver answers) and the CDI spec, whose library
paths name the driver it was generated for.
"""

from __future__ import annotations

import re
from typing import Any

from pyinfra.api import FactBase
from typing_extensions import override

from deepseek_infra.docker_config import CDI_SPEC, DAEMON_JSON, cdi_spec_current
from deepseek_infra.facts.nvidia import _sections

COMMAND = "; ".join([
    "echo @@daemon",
    f"cat {DAEMON_JSON} 2>/dev/null",
    "echo; echo @@driver",
    ("command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=driver_version --format=csv,noheader "
     "2>/dev/null | head -n 1"),
    "echo @@cdi",
    f"cat {CDI_SPEC} 2>/dev/null",
    "echo @@dockerd",
    "dockerd --version 2>/dev/null",
    "true",
])


def docker_major(text: str) -> int | None:
    """The major version ``dockerd --version`` prints, None when Docker is not installed.

    >>> docker_major("Docker version 20.10.24+dfsg1, build 297e128"), docker_major("Docker version 28.2.2, build e6534b4")
    (20, 28)
    """
    match = re.search(r"Docker version (\d+)\.", text)
    return int(match.group(1)) if match else None


def parse_docker_state(lines: list[str]) -> dict[str, Any]:
    sections = _sections(lines)
    daemon = "\n".join(sections.get("daemon", [])).strip()
    driver = [line.strip() for line in sections.get("driver", []) if line.strip()]
    version = driver[0] if driver and driver[0][:1].isdigit() else None
    cdi = "\n".join(sections.get("cdi", []))
    dockerd = " ".join(sections.get("dockerd", []))
    return {
        "docker_major": docker_major(dockerd),
        "daemon_json": daemon or None,
        "driver": version,
        "cdi_present": "cdi" in sections and bool(cdi.strip()),
        "cdi_current": cdi_spec_current(cdi, version),
    }


class DockerState(FactBase[dict[str, Any]]):
    """Docker's configuration as the host has it.

    .. code:: python

        {"docker_major": 20, "daemon_json": '{"debug": true}', "driver": "550.90.12",
         "cdi_present": True, "cdi_current": False}
    """

    @override
    @staticmethod
    def default() -> dict[str, Any]:
        return parse_docker_state([])

    @override
    def command(self) -> str:
        return COMMAND

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_docker_state(output)
