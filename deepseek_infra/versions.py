"""Parse and compare the dotted version strings of the NVIDIA stack.

Pure helpers (no pyinfra). They accept what the tools and packages print:

- driver versions: ``"535.161.08"``, ``"570.26"``
- CUDA releases: ``"12.4"``, ``"12.4.1"``, nvcc's ``"V12.4.131"``
- cuDNN: ``"9.1.0.70"``
- Debian package versions: ``"2.18.3-1+cuda12.2"`` (libnccl2),
  ``"550.54.15-0ubuntu1"``, ``"1:550.54.15-1"`` (epoch)

Only the upstream part is compared: an epoch (``1:``) and the Debian
revision / build suffix (``-1+cuda12.2``) are dropped.  Comparison pads the
shorter tuple with zeros, so ``"570.26" == "570.26.0"``.
"""

from __future__ import annotations

import re

__all__ = [
    "InvalidVersionError",
    "compare_versions",
    "parse_version",
    "version_at_least",
    "versions_equal",
]

_EPOCH = re.compile(r"^\d+:")
_UPSTREAM = re.compile(r"^\d+(?:\.\d+)*$")
# What may follow the upstream version in a Debian version string.
_SUFFIX = re.compile(r"^[-+~][0-9A-Za-z.+~-]+$")


class InvalidVersionError(ValueError):
    """A version string could not be parsed; the message quotes it."""


def parse_version(text: str) -> tuple[int, ...]:
    """Return the numeric parts of a version: ``"550.54.14"`` -> ``(550, 54, 14)``.

    + text: a version as printed by nvidia-smi, nvcc, dpkg or a release note.

    Raises ``InvalidVersionError`` naming the text when it is not a version.
    """
    if not isinstance(text, str):
        raise InvalidVersionError(f"version must be a string, got {text!r}")
    value = _EPOCH.sub("", text.strip(), count=1)
    if value[:1] in ("v", "V"):
        value = value[1:]
    cut = len(value)
    for sep in "-+~":
        pos = value.find(sep)
        if pos != -1:
            cut = min(cut, pos)
    upstream, suffix = value[:cut], value[cut:]
    if not _UPSTREAM.match(upstream) or (suffix and not _SUFFIX.match(suffix)):
        raise InvalidVersionError(f"not a version: {text!r}")
    return tuple(int(part) for part in upstream.split("."))


def compare_versions(a: str, b: str) -> int:
    """Return -1, 0 or 1 as version ``a`` is older than, equal to or newer than ``b``."""
    left, right = parse_version(a), parse_version(b)
    width = max(len(left), len(right))
    left += (0,) * (width - len(left))
    right += (0,) * (width - len(right))
    return (left > right) - (left < right)


def version_at_least(found: str, needed: str) -> bool:
    """True when ``found`` is the same as or newer than ``needed``."""
    return compare_versions(found, needed) >= 0


def versions_equal(a: str, b: str) -> bool:
    """True when both strings name the same upstream version."""
    return compare_versions(a, b) == 0
