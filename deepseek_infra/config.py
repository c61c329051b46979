"""Validation of the host data the collection reads, before any host is touched.

Every role declares its variables as a pydantic model (``RoleDefaults`` subclass) whose
field names are the host-data keys, each prefixed with the role's name. A deploy asks
``validate_inventory`` once; it checks every host of the inventory against every role's
model and raises one ``HostDataError`` listing every problem as
``<host>: <key>: <what is wrong>``. Keys that belong to pyinfra itself (connector data
such as ``ssh_user``, global arguments such as ``_sudo``) pass through untouched.

This module does not import pyinfra's runtime state: callers hand it plain dicts, so the
checks are unit-testable without an inventory.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, ValidationError

from deepseek_infra.versions import CudaRelease, CudnnVersion, DriverVersion, NcclVersion, PackageVersion

T = TypeVar("T", bound="RoleDefaults")

# Version settings: host data gives the text, the model holds the parsed value (parsed once,
# when the inventory is validated), and dumps it back as the text (records, docs).
_AS_TEXT = PlainSerializer(str, return_type=str)
CudaReleaseSetting = Annotated[CudaRelease, PlainValidator(CudaRelease.coerce), _AS_TEXT]
DriverVersionSetting = Annotated[DriverVersion, PlainValidator(DriverVersion.coerce), _AS_TEXT]
CudnnVersionSetting = Annotated[CudnnVersion, PlainValidator(CudnnVersion.coerce), _AS_TEXT]
NcclVersionSetting = Annotated[NcclVersion, PlainValidator(NcclVersion.coerce), _AS_TEXT]
PackageVersionSetting = Annotated[PackageVersion, PlainValidator(PackageVersion.coerce), _AS_TEXT]


class RoleDefaults(BaseModel):
    """Base for a role's variables: frozen, strict about unknown keys and types."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, validate_default=True)

    #: prefix every field of the role starts with, e.g. "base_"
    prefix: ClassVar[str] = ""

    @classmethod
    def keys(cls) -> frozenset[str]:
        return frozenset(cls.model_fields)

    @classmethod
    def from_data(cls: type[T], data: Mapping[str, Any]) -> T:
        """Build the role's settings from a host's data, taking only the role's keys."""
        return cls.model_validate({key: value for key, value in data.items() if key in cls.model_fields})


class HostDataError(ValueError):
    """Bad host or group data; ``problems`` holds one ``(host, key, message)`` per fault."""

    def __init__(self, problems: Sequence[tuple[str, str, str]]):
        self.problems = list(problems)
        lines = [f"{host}: {key}: {message}" for host, key, message in self.problems]
        super().__init__(
            f"invalid host data ({len(lines)} problem{'s' if len(lines) != 1 else ''}); "
            "no host was changed:\n  " + "\n  ".join(lines)
        )


def pyinfra_data_keys() -> frozenset[str]:
    """Host-data keys that pyinfra's connectors read (``ssh_user``, ``docker_identifier`` ...)."""
    from pyinfra.api.connectors import get_all_connectors  # local: keep module import light

    keys: set[str] = set()
    for connector in get_all_connectors().values():
        keys.update(getattr(connector, "data_meta", {}) or {})
    return frozenset(keys)


def _is_pyinfra_key(key: str, connector_keys: frozenset[str]) -> bool:
    # Global operation arguments (_sudo, _env, ...) are set as data with a leading underscore.
    return key.startswith("_") or key in connector_keys


def _format_pydantic_error(error: dict[str, Any]) -> tuple[str, str]:
    location = [str(part) for part in error.get("loc", ())]
    key = location[0] if location else "?"
    detail = ".".join(location[1:])
    found = error.get("input")
    message = error.get("msg", "invalid value").removeprefix("Value error, ")
    where = f" (at {detail})" if detail else ""
    return key, f"{message}{where}; found {found!r}"


def validate_host_data(
    host_name: str,
    data: Mapping[str, Any],
    roles: Iterable[type[RoleDefaults]],
    connector_keys: frozenset[str] = frozenset(),
    cross_checks: Iterable[Any] = (),
) -> tuple[dict[type[RoleDefaults], RoleDefaults], list[tuple[str, str, str]]]:
    """Validate one host's data against every role model.

    Returns the parsed settings per role and the list of problems (empty when valid).
    ``cross_checks`` are callables ``check(settings_by_role) -> list[(key, message)]``
    for rules that span roles (e.g. tensor parallel size against GPU count).
    """
    roles = list(roles)
    known = set().union(*(role.keys() for role in roles)) if roles else set()
    problems: list[tuple[str, str, str]] = []

    for key in sorted(data):
        if key in known or _is_pyinfra_key(key, connector_keys):
            continue
        close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.8)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        problems.append((host_name, key, f"unknown host data key{hint}"))

    parsed: dict[type[RoleDefaults], RoleDefaults] = {}
    for role in roles:
        try:
            parsed[role] = role.from_data(data)
        except ValidationError as error:
            for item in error.errors(include_url=False):
                key, message = _format_pydantic_error(item)
                problems.append((host_name, key, message))

    if not problems:
        for check in cross_checks:
            problems.extend((host_name, key, message) for key, message in check(parsed))
    return parsed, problems
