"""The collection's roles: one pyinfra ``@deploy`` per concern, each with its defaults."""

from __future__ import annotations

from importlib.resources import files


def template_path(role_package: str, destination: str) -> str:
    """Path of a role's template named after its destination (``etc/x.conf`` -> ``etc/x.conf.j2``)."""
    return str(files(role_package) / "templates" / f"{destination.lstrip('/')}.j2")
