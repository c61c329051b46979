"""Facts of the exporters role."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase
from typing_extensions import override

from deepseek_infra.monitoring import parse_apt_policy


class AptPolicy(FactBase[dict[str, dict[str, str | None]]]):
    """Installed and candidate version of packages in the configured apt sources.

    .. code:: python

        {"prometheus-node-exporter": {"installed": "1.5.0-1+b6", "candidate": "1.5.0-1+b6"},
         "datacenter-gpu-manager": {"installed": None, "candidate": None}}
    """

    default = dict
    requires_command = "apt-cache"

    @override
    def command(self, packages: tuple[str, ...]) -> str:
        return "LC_ALL=C apt-cache policy " + " ".join(shlex.quote(p) for p in packages) + " 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> dict[str, dict[str, str | None]]:
        return parse_apt_policy(output)
