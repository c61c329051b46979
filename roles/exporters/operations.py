"""Operations of the exporters role: install what the configured apt sources offer."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import operation
from pyinfra.operations import apt

from roles.exporters.facts import AptPolicy


def installed(packages: tuple[str, ...]) -> bool:
    """True when every package is installed, read when called (use as ``_if=``)."""
    policy = host.get_fact(AptPolicy, packages=packages)
    return all(policy.get(p, {}).get("installed") for p in packages)


@operation()
def packages_if_available(packages: list[str], component: str, hint: str = "", no_recommends: bool = True):
    """
    Install packages when the configured apt sources offer all of them, else skip and say why.

    + packages: Debian packages that together make the component
    + component: what they are, for the report ("DCGM", "filebeat")
    + hint: how to make them available, appended to the report
    + no_recommends: install without recommended packages

    Reads the apt policy when the operation runs, so a source added earlier in the same
    run counts. A skip changes nothing and is reported as a warning naming the packages.

    **Example:**

    .. code:: python

        packages_if_available(packages=["datacenter-gpu-manager"], component="DCGM")
    """
    policy = host.get_fact(AptPolicy, packages=tuple(packages))
    missing = [p for p in packages if not policy.get(p, {}).get("installed")]
    if not missing:
        host.noop(f"{component}: {', '.join(packages)} installed")
        return
    unavailable = [p for p in missing if not policy.get(p, {}).get("candidate")]
    if unavailable:
        message = (f"{component} skipped: {', '.join(unavailable)} not available in the configured apt sources"
                   + (f" ({hint})" if hint else ""))
        logger.warning(f"{host.name}: {message}")
        host.noop(message)
        return
    yield from apt.packages._inner(packages=missing, no_recommends=no_recommends)
