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
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer, PlainValidator, ValidationError

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


def node_path(path: str) -> str:
    """A path on the node: absolute (the node has no working directory of ours), one line."""
    if not path.startswith("/") or any(character in path for character in "\0\n\r"):
        raise ValueError(f"expected an absolute path on the node, found {path!r}")
    return path


#: A path on the node (controller paths may be relative to where pyinfra runs; node paths may not).
NodePath = Annotated[str, AfterValidator(node_path)]


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


def cidr_networks(networks: Iterable[str]) -> tuple[str, ...]:
    """``networks`` (addresses or CIDRs) in canonical CIDR form; ValueError naming a bad one."""
    canonical = []
    for network in networks:
        try:
            canonical.append(str(ipaddress.ip_network(network, strict=False)))
        except ValueError as error:
            raise ValueError(f"{network!r} is not a CIDR network: {error}") from None
    return tuple(canonical)


def pyinfra_data_keys() -> frozenset[str]:
    """Host-data keys that pyinfra's connectors read (``ssh_user``, ``docker_identifier`` ...)."""
    from pyinfra.api.connectors import get_all_connectors  # local: keep module import light

    keys: set[str] = set()
    for connector in get_all_connectors().values():
        keys.update(getattr(connector, "data_meta", {}) or {})
    return frozenset(keys)


def pyinfra_global_arguments() -> frozenset[str]:
    """Global operation arguments pyinfra reads from host data (``_sudo``, ``_env`` ...)."""
    from pyinfra.api.arguments import all_global_arguments  # local: keep module import light

    return frozenset(name for name, _type in all_global_arguments() if name.startswith("_"))


def _is_pyinfra_key(key: str, connector_keys: frozenset[str]) -> bool:
    # Global operation arguments (_sudo, _env, ...) are set as data with a leading underscore.
    return key.startswith("_") or key in connector_keys


#: Settings that are ports a service of the host listens on: two equal ones cannot both bind.
LISTEN_PORTS = (
    "serve_port", "gateway_port", "exporters_node_exporter_port", "exporters_dcgm_exporter_port",
    "exporters_engine_relay_port", "netcheck_port", "serve_ray_port", "serve_dist_port",
)


def port_collisions(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, message)`` for each listen port another setting of the same host also claims."""
    claimed: dict[int, str] = {}
    problems = []
    for key in LISTEN_PORTS:
        port = values.get(key)
        if not isinstance(port, int) or isinstance(port, bool):
            continue
        if port in claimed:
            problems.append((key, f"port {port} is already {claimed[port]}'s on this host; give one of them another port"))
        else:
            claimed[port] = key
    return problems


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
    global_arguments: frozenset[str] | None = None,
) -> tuple[dict[type[RoleDefaults], RoleDefaults], list[tuple[str, str, str]]]:
    """Validate one host's data against every role model.

    Returns the parsed settings per role and the list of problems (empty when valid).
    ``global_arguments``: pyinfra's global argument names; given, any other ``_`` key is
    refused (``_sudo_usr`` would otherwise be ignored silently), with a did-you-mean.
    ``cross_checks`` are callables ``check(settings_by_role) -> list[(key, message)]``
    for rules that span roles (e.g. tensor parallel size against GPU count).
    """
    roles = list(roles)
    known = set().union(*(role.keys() for role in roles)) if roles else set()
    problems: list[tuple[str, str, str]] = []

    for key in sorted(data):
        if global_arguments is not None and key.startswith("_") and key not in global_arguments:
            close = difflib.get_close_matches(key, sorted(global_arguments), n=3, cutoff=0.7)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            problems.append((host_name, key, f"unknown pyinfra global argument{hint}"))
            continue
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

    # ports of the roles that parsed: reported beside the other problems, all in one run
    ports = {key: getattr(settings, key) for settings in parsed.values() for key in LISTEN_PORTS
             if key in type(settings).model_fields}
    problems.extend((host_name, key, message) for key, message in port_collisions(ports))
    if not problems:
        for check in cross_checks:
            problems.extend((host_name, key, message) for key, message in check(parsed))
    return parsed, problems
