"""Weights facts: the node tool's view of a model's releases, staging and key."""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand
from typing_extensions import override

#: The node tool the weights role installs (roles/weights).
TOOL = "/opt/deepseek/weights/bin/deepseek-weights"


class WeightsStatus(FactBase[dict[str, Any] | None]):
    """``deepseek-weights status`` for one model and revision; None until the tool is installed.

    .. code:: python

        {"current": "lab-1",
         "releases": {"lab-1": {"manifest_sha384": "…", "encrypted": False, "key_fingerprint": None,
                                "placed_at": 1764340000.0}},
         "target": {"revision": "lab-1", "present": True, "ok": True, "problems": [], …},
         "staging": {"config.json": {"size": 288, "sha384": "…"}},
         "key": {"present": False, "fingerprint": None, "error": None}}
    """

    @override
    def requires_command(self, **kwargs: Any) -> str:
        return TOOL

    @override
    def command(self, models_dir: str, slug: str, revision: str | None = None, hash_staged: bool = False,
                keys_dir: str | None = None) -> StringCommand:
        parts: list[Any] = [TOOL, "status", "--models-dir", QuoteString(models_dir), "--model", QuoteString(slug)]
        if revision:
            parts += ["--revision", QuoteString(revision)]
        if hash_staged:
            parts.append("--hash-staged")
        if keys_dir:
            parts += ["--keys-dir", QuoteString(keys_dir)]
        return StringCommand(*parts)

    @override
    def process(self, output: list[str]) -> dict[str, Any] | None:
        return parse_status(output)


def parse_status(lines: list[str]) -> dict[str, Any] | None:
    """The tool prints one JSON object; anything else means it could not run."""
    text = "\n".join(lines).strip()
    if not text:
        return None
    doc = json.loads(text)
    return doc if isinstance(doc, dict) and "releases" in doc else None
