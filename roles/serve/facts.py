"""Facts of the serve role."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase
from typing_extensions import override


class DockerImageId(FactBase[str | None]):
    """Id of a local Docker image, or None when it is absent (or Docker is not installed).

    .. code:: python

        "sha256:5b1f..."
    """

    requires_command = "docker"

    @staticmethod
    def default() -> None:
        return None

    @override
    def command(self, image: str) -> str:
        return f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(image)} 2>/dev/null || true"

    @override
    def process(self, output: list[str]) -> str | None:
        lines = [line.strip() for line in output if line.strip().startswith("sha256:")]
        return lines[0] if lines else None
