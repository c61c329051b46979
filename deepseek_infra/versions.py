"""The versions of the NVIDIA stack as typed, immutable, ordered values, parsed once.

Pure (no pyinfra, no pydantic). Each type has one ``parse(text)`` that raises
``InvalidVersionError`` (a ``ValueError``) naming the text and the form it expects:

- ``CudaRelease``: a toolkit release, ``"12.4"`` (GA) or ``"12.4.1"`` (Update 1)
- ``DriverVersion``: a driver release, ``"550.90.12"``, ``"570.26"`` (no Debian revision)
- ``PackageVersion``: a Debian package version, ``"2.21.5-1+cuda12.4"``, ``"1:550.54.15-1"``;
  ordered as dpkg orders them
- ``CudnnVersion`` / ``NcclVersion``: the cuDNN / libnccl2 package versions
  (``"9.1.0.70-1"``, ``"8.9.7.29-1+cuda12.2"``, ``"2.21.5-1+cuda12.4"``), whose
  ``+cudaX.Y`` build tag is ``.cuda``

All of them read text with ``parse_version``'s rules, as the settings always have: an
epoch (``1:``) and a leading ``v`` are skipped, the numeric release is what follows, and a
Debian revision / build suffix (``-1+cuda12.2``) may end it. Driver and CUDA releases
compare numerically with the shorter padded by zeros (``570.26 == 570.26.0``).
``str()`` gives the text back the way host data and package pins write it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering
from typing import Any, ClassVar, TypeVar

__all__ = [
    "CudaRelease",
    "CudnnVersion",
    "DriverVersion",
    "InvalidVersionError",
    "NcclVersion",
    "PackageVersion",
    "Version",
    "compare_versions",
    "parse_version",
    "version_at_least",
    "versions_equal",
]

_EPOCH = re.compile(r"^\d+:")
_UPSTREAM = re.compile(r"^\d+(?:\.\d+)*$")
# What may follow the upstream version in a Debian version string.
_SUFFIX = re.compile(r"^[-+~][0-9A-Za-z.+~-]+$")
_CUDA_TAG = re.compile(r"\+cuda(\d+)\.(\d+)")
# Any Debian version (policy 5.6.12), for what dpkg reports of packages outside the stack.
_DEBIAN = re.compile(r"^(?:\d+:)?\d[A-Za-z0-9.+~-]*(?<!-)$")

V = TypeVar("V", bound="Version")


class InvalidVersionError(ValueError):
    """A version string could not be parsed; the message quotes it."""


def _split(text: str) -> tuple[str, str]:
    """``(numeric release, suffix)`` of a version text, by ``parse_version``'s rules."""
    if not isinstance(text, str):
        raise InvalidVersionError(f"version must be a string, got {text!r}")
    value = _EPOCH.sub("", text.strip(), count=1)
    if value[:1] in ("v", "V"):
        value = value[1:]
    cut = min([len(value)] + [pos for pos in map(value.find, "-+~") if pos != -1])
    upstream, suffix = value[:cut], value[cut:]
    if not _UPSTREAM.match(upstream) or (suffix and not _SUFFIX.match(suffix)):
        raise InvalidVersionError(f"not a version: {text!r}")
    return upstream, suffix


def parse_version(text: str) -> tuple[int, ...]:
    """Return the numeric parts of a version: ``"550.54.14"`` -> ``(550, 54, 14)``.

    + text: a version as printed by nvidia-smi, nvcc, dpkg or a release note.

    Raises ``InvalidVersionError`` naming the text when it is not a version.
    """
    return tuple(int(part) for part in _split(text)[0].split("."))


def compare_versions(a: str, b: str) -> int:
    """Return -1, 0 or 1 as version ``a`` is older than, equal to or newer than ``b``."""
    left, right = _padded_key(parse_version(a)), _padded_key(parse_version(b))
    return (left > right) - (left < right)


def version_at_least(found: str, needed: str) -> bool:
    """True when ``found`` is the same as or newer than ``needed``."""
    return compare_versions(found, needed) >= 0


def versions_equal(a: str, b: str) -> bool:
    """True when both strings name the same upstream version."""
    return compare_versions(a, b) == 0


def _padded_key(parts: tuple[int, ...]) -> tuple[int, ...]:
    # Trailing zeros dropped: tuple order then equals the zero-padded order.
    end = len(parts)
    while end > 1 and parts[end - 1] == 0:
        end -= 1
    return parts[:end]


def _expecting(text: Any, what: str, forms: str) -> InvalidVersionError:
    if not isinstance(text, str):
        return InvalidVersionError(f"{what} must be a string such as {forms.split(' or ')[0]} (quoted), got {text!r}")
    return InvalidVersionError(f"not a version: {text!r} ({what} looks like {forms})")


@total_ordering
class Version:
    """Base of the typed versions: same-type values compare by ``_key()``; ``str()`` is the text."""

    __slots__ = ()
    FORMS: ClassVar[str] = ""

    @classmethod
    def parse(cls: type[V], text: str) -> V:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    @classmethod
    def coerce(cls: type[V], value: Any) -> V:
        """``value`` itself when it already is one, else ``parse(value)`` (for validators)."""
        return value if isinstance(value, cls) else cls.parse(value)

    def _key(self) -> tuple:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version) or self._kind() is not other._kind():
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version) or self._kind() is not other._kind():
            return NotImplemented
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash((self._kind(), self._key()))

    def _kind(self) -> type:
        return type(self)


@dataclass(frozen=True, eq=False)
class CudaRelease(Version):
    """A CUDA toolkit release: ``12.4`` (GA, ``update`` None) or ``12.4.1`` (Update 1).

    **Example:** ``CudaRelease.parse("12.4.1").short == "12.4"``; ``CudaRelease.parse("12.4")
    == CudaRelease.parse("12.4.0")`` but their ``str()`` stays as written.
    """

    major: int
    minor: int
    update: int | None = None
    FORMS: ClassVar[str] = "12.4 or 12.4.1"

    @classmethod
    def parse(cls, text: str) -> CudaRelease:
        """``"12.4"``, ``"12.4.1"`` (as in ``/usr/local/cuda/version.json`` or the toolkit deb).

        nvcc's component build (``V12.4.131``) is not a toolkit update number; pass the
        toolkit release instead.
        """
        try:
            parts = parse_version(text)
        except InvalidVersionError:
            raise _expecting(text, "a CUDA release", cls.FORMS) from None
        if len(parts) not in (2, 3):
            raise InvalidVersionError(f"CUDA release must look like {cls.FORMS}, got {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @property
    def short(self) -> str:
        """``"12.4"``: major.minor, as in package names and ``/usr/local/cuda-12.4``."""
        return f"{self.major}.{self.minor}"

    @property
    def full(self) -> str:
        """``"12.4.1"``; a GA release is update 0: ``"12.4.0"`` (the toolkit deb's upstream)."""
        return f"{self.major}.{self.minor}.{self.update or 0}"

    def _key(self) -> tuple:
        return (self.major, self.minor, self.update or 0)

    def __str__(self) -> str:
        return self.short if self.update is None else self.full


@dataclass(frozen=True, eq=False)
class DriverVersion(Version):
    """An NVIDIA driver release, ``full`` as NVIDIA writes it (``"535.161.08"``: the
    leading zero is part of its package versions); ``branch`` is its major (535)."""

    full: str
    parts: tuple[int, ...] = field(init=False, repr=False)
    FORMS: ClassVar[str] = "550.90.12"

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(int(part) for part in self.full.split(".")))

    @classmethod
    def parse(cls, text: str) -> DriverVersion:
        try:
            upstream, _ = _split(text)
        except InvalidVersionError:
            raise _expecting(text, "a driver release", cls.FORMS) from None
        if upstream.count(".") not in (1, 2) or "-" in text or ":" in text:
            raise InvalidVersionError(f"expected a driver release like {cls.FORMS} (no Debian revision), got {text!r}")
        return cls(upstream)

    @classmethod
    def of_package(cls, version: PackageVersion) -> DriverVersion:
        """The driver release of a driver package's version: ``550.90.12-1`` -> ``550.90.12``."""
        return cls(version.release)

    @property
    def branch(self) -> int:
        return self.parts[0]

    def _key(self) -> tuple:
        return _padded_key(self.parts)

    def __str__(self) -> str:
        return self.full


_TILDE, _END = -1, 0


def _order(char: str) -> int:
    # dpkg's order of the non-digit characters: "~" before the end, letters before the rest.
    return _TILDE if char == "~" else ord(char) if char.isalpha() else ord(char) + 256


def _dpkg_parts(text: str) -> tuple[tuple[tuple[int, ...], int], ...]:
    """dpkg's view of an upstream or revision: (non-digit run, number) pairs, trailing empties dropped."""
    pairs = []
    for letters, digits in re.findall(r"(\D*)(\d*)", text):
        if letters or digits:
            pairs.append((tuple(map(_order, letters)) + (_END,), int(digits or 0)))
    while pairs and pairs[-1] == ((_END,), 0):
        pairs.pop()
    return tuple(pairs)


@dataclass(frozen=True, eq=False)
class PackageVersion(Version):
    """A Debian package version, kept as written (pins and dpkg compare the text).

    ``epoch`` (``1:``), ``upstream`` (up to the last ``-``), ``revision`` (after it, ``""``
    when none); ``release`` / ``parts`` are its numeric release (``"2.21.5"``) and ``cuda``
    the ``+cudaX.Y`` build tag NVIDIA's cuDNN 8 and NCCL debs carry. Ordered and equal as
    ``dpkg --compare-versions`` says.
    """

    text: str
    parts: tuple[int, ...] = field(init=False, repr=False)
    release: str = field(init=False, repr=False)
    FORMS: ClassVar[str] = "2.21.5-1+cuda12.4 or 1:550.54.15-1"
    WHAT: ClassVar[str] = "a Debian package version"

    def __post_init__(self) -> None:
        try:
            release, _ = _split(self.text)
        except InvalidVersionError:
            if not _DEBIAN.match(self.text):
                raise
            release = ""  # a Debian version without a numeric release (outside the stack)
        object.__setattr__(self, "release", release)
        object.__setattr__(self, "parts", tuple(int(p) for p in release.split(".")) if release else ())

    @classmethod
    def parse(cls: type[V], text: str) -> V:
        try:
            return cls(text.strip())  # type: ignore[call-arg,attr-defined]
        except (InvalidVersionError, AttributeError):
            raise _expecting(text, cls.WHAT, cls.FORMS) from None  # type: ignore[attr-defined]

    @property
    def epoch(self) -> int:
        match = _EPOCH.match(self.text)
        return int(match.group()[:-1]) if match else 0

    @property
    def upstream(self) -> str:
        return _EPOCH.sub("", self.text, count=1).rsplit("-", 1)[0]

    @property
    def revision(self) -> str:
        body = _EPOCH.sub("", self.text, count=1)
        return body.rsplit("-", 1)[1] if "-" in body else ""

    @property
    def cuda(self) -> tuple[int, int] | None:
        """``(12, 2)`` for ``"8.9.7.29-1+cuda12.2"``; None without a build tag."""
        match = _CUDA_TAG.search(self.text)
        return (int(match.group(1)), int(match.group(2))) if match else None

    def _key(self) -> tuple:
        return (self.epoch, _dpkg_parts(self.upstream), _dpkg_parts(self.revision))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, PackageVersion) or self._kind() is not other._kind():
            return NotImplemented
        return _dpkg_compare(self, other) < 0

    def _kind(self) -> type:
        return PackageVersion

    def __str__(self) -> str:
        return self.text


def _dpkg_compare(a: PackageVersion, b: PackageVersion) -> int:
    def pad(pairs: tuple, width: int) -> tuple:
        return pairs + (((_END,), 0),) * (width - len(pairs))

    for left, right in ((a.epoch, b.epoch),
                        (_dpkg_parts(a.upstream), _dpkg_parts(b.upstream)),
                        (_dpkg_parts(a.revision), _dpkg_parts(b.revision))):
        if isinstance(left, tuple):
            width = max(len(left), len(right))
            left, right = pad(left, width), pad(right, width)
        if left != right:
            return -1 if left < right else 1
    return 0


class _StackPackageVersion(PackageVersion):
    """A package version of the stack whose release must be numeric (``parse_version``'s form)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.release:
            raise InvalidVersionError(f"not a version: {self.text!r}")

    @property
    def major(self) -> int:
        return self.parts[0]


@dataclass(frozen=True, eq=False)
class CudnnVersion(_StackPackageVersion):
    """The cuDNN package version: ``9.1.0.70-1`` (cuDNN 9) or ``8.9.7.29-1+cuda12.2`` (cuDNN 8)."""

    FORMS: ClassVar[str] = "9.1.0.70-1 or 8.9.7.29-1+cuda12.2"
    WHAT: ClassVar[str] = "a cuDNN version"


@dataclass(frozen=True, eq=False)
class NcclVersion(_StackPackageVersion):
    """The libnccl2 package version: ``2.21.5-1+cuda12.4`` (or a plain release, ``2.21.5``)."""

    FORMS: ClassVar[str] = "2.21.5-1+cuda12.4"
    WHAT: ClassVar[str] = "an NCCL version"
