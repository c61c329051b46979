"""Operations for the NVIDIA stack's packages: the repository key and pinned, held packages."""

from __future__ import annotations

import re

from pyinfra import host
from pyinfra.api import OperationValueError, QuoteString, StringCommand, operation
from pyinfra.facts.files import File

from deepseek_infra.facts.nvidia import DpkgPackages, NvidiaDriverState
from deepseek_infra.nvidia_driver import apt_commands, plan_packages
from deepseek_infra.nvidia_repo import NVIDIA_REPO_KEY_FINGERPRINT
from deepseek_infra.versions import PackageVersion


@operation()
def nvidia_repo_key(url: str, dest: str, fingerprint: str = NVIDIA_REPO_KEY_FINGERPRINT):
    """
    Download a repository signing key and install it only if its fingerprint matches.

    + url: where the armored key is published (``<repo>/3bf863cc.pub``)
    + dest: keyring path for ``Signed-By`` (``.asc``: apt reads armored keys by extension)
    + fingerprint: the full fingerprint the key must have

    A key already in place is left alone (rotate it by removing the file).
    """
    if not dest.endswith(".asc"):
        raise OperationValueError(f"{host.name}: dest: expected a .asc path for an armored key, found {dest!r}")
    if host.get_fact(File, path=dest):
        host.noop(f"{dest} is in place")
        return
    tmp = f"{dest}.download"
    yield StringCommand(
        "curl", "-fsSL", "--retry", "3", "-o", QuoteString(tmp), QuoteString(url), "&&",
        "gpg", "--show-keys", "--with-colons", QuoteString(tmp), "|",
        "grep", "-q", QuoteString(f"^fpr:::::::::{fingerprint}:"), "&&",
        "install", "-m", "0644", QuoteString(tmp), QuoteString(dest), ";",
        "rc=$?;", "rm", "-f", QuoteString(tmp), ";",
        "[ $rc -eq 0 ] || { echo", QuoteString(f"{url}: key fingerprint is not {fingerprint}"), ">&2; exit 1; }",
    )


@operation()
def pinned_packages(packages: dict[str, PackageVersion], managed: str | None = None,
                    patterns: tuple[str, ...] | None = None, what: str = "NVIDIA", where: str | None = None):
    """
    Install exactly these package versions, remove the managed ones not listed, hold them.

    + packages: package name -> exact Debian version (``deepseek_infra.nvidia_driver.target_packages``)
    + managed: regex of the names the calling role owns (installed, not listed: removed);
      None: the driver's (``deepseek_infra.nvidia_driver.MANAGED``)
    + patterns: dpkg-query patterns covering ``managed``; None: the driver's state fact
    + what: the package family, in the no-change message
    + where: the host's distribution (``debian12``): before installing, check that the
      configured repositories carry every version, failing with the missing ones named

    One apt transaction: held packages that must move are unheld first, conflicting
    packages (the other kernel-module flavour, another branch's fabric manager, another
    CUDA toolkit) are removed in the same ``apt-get install``, everything wanted is held
    afterwards. Nothing runs when dpkg already shows the set installed and held.

    **Example:**

    .. code:: python

        nvidia.pinned_packages(packages={"libnccl2": PackageVersion("2.21.5-1+cuda12.4")},
                               managed=cuda.MANAGED.pattern, patterns=cuda.DPKG_PATTERNS, what="CUDA")
    """
    if (managed is None) != (patterns is None):
        raise OperationValueError(f"{host.name}: managed and patterns: give both or neither")
    if patterns is None:
        plan = plan_packages(packages, host.get_fact(NvidiaDriverState)["packages"])
    else:
        plan = plan_packages(packages, host.get_fact(DpkgPackages, patterns=tuple(patterns)),
                             managed=re.compile(managed))
    if plan.empty:
        host.noop(f"{len(packages)} {what} packages installed at their pinned versions and held")
        return
    if plan.changes_packages:
        yield "apt-get update -q"
    for command in apt_commands(plan, where):
        yield command
