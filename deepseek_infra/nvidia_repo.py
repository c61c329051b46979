"""Where the NVIDIA stack's packages come from, and how they are pinned (pure, no pyinfra).

Three sources, one setting for every NVIDIA role (roles/nvidia_repo):

* ``nvidia``: NVIDIA's public CUDA repository for the node's distribution. The URL
  pattern is the one in NVIDIA's CUDA and driver installation guides ("network repo"):
  ``https://developer.download.nvidia.com/compute/cuda/repos/<distro>/<arch>/`` with
  ``<distro>`` ``debian12``, ``debian13``, ``ubuntu2204``, ``ubuntu2404`` and ``<arch>``
  ``x86_64`` or ``sbsa`` (arm64 servers). It is a flat repository (``Suites: /``) signed by
  the key published in it: ``3bf863cc.pub`` (fingerprint ``EB693B30...3BF863CC``) for
  Debian 12 and Ubuntu 22.04/24.04, ``8793F200.pub`` (``02182E60...8793F200``) for Debian 13.
* ``mirror``: an internal mirror of that repository (same layout) and its signing key:
  what an air-gapped site runs, and what the lab serves. Its URL may name ``{distro}`` and
  ``{arch}``, filled in per node, so one inventory serves a mixed fleet.
* ``bundle``: a directory of .debs copied to the node and indexed there as a local
  repository (sites without any mirror).

Pins go to /etc/apt/preferences.d at priority 1001 (which also allows the downgrade of a
branch switch) and every pinned package is held, so an unattended upgrade never moves them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

#: NVIDIA's public CUDA repositories (production default; the lab uses its mirror).
NVIDIA_REPO_BASE: Final = "https://developer.download.nvidia.com/compute/cuda/repos"
#: The repository signing key NVIDIA publishes in each repository directory.
NVIDIA_REPO_KEY_FILE: Final = "3bf863cc.pub"
NVIDIA_REPO_KEY_FINGERPRINT: Final = "EB693B3035CD5710E231E123A4B469963BF863CC"

# NVIDIA's newer repositories (debian13, ubuntu2604) are signed with another key (public
# install scripts fetching debian13/x86_64/8793F200.pub; its fingerprint as pinned by them).
DEBIAN13_KEY_FILE: Final = "8793F200.pub"
DEBIAN13_KEY_FINGERPRINT: Final = "02182E60104FCDC26EAE1B8597A5D4CB8793F200"

# (os-release ID, VERSION_ID) -> NVIDIA's directory name for it.
DISTRO_DIRS: Final[Mapping[tuple[str, str], str]] = MappingProxyType({
    ("debian", "12"): "debian12",
    ("debian", "13"): "debian13",
    ("ubuntu", "22.04"): "ubuntu2204",
    ("ubuntu", "24.04"): "ubuntu2404",
})
# uname -m / dpkg architecture -> NVIDIA's directory name.
ARCH_DIRS: Final[Mapping[str, str]] = MappingProxyType({
    "x86_64": "x86_64", "amd64": "x86_64", "aarch64": "sbsa", "arm64": "sbsa",
})

# NVIDIA's directory name -> (key file in the repository, its full fingerprint).
REPO_KEYS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType({
    "debian12": (NVIDIA_REPO_KEY_FILE, NVIDIA_REPO_KEY_FINGERPRINT),
    "ubuntu2204": (NVIDIA_REPO_KEY_FILE, NVIDIA_REPO_KEY_FINGERPRINT),
    "ubuntu2404": (NVIDIA_REPO_KEY_FILE, NVIDIA_REPO_KEY_FINGERPRINT),
    "debian13": (DEBIAN13_KEY_FILE, DEBIAN13_KEY_FINGERPRINT),
})

KEYRING_DIR: Final = "/usr/share/keyrings"
SOURCES_FILE: Final = "/etc/apt/sources.list.d/deepseek-nvidia.sources"
PREFERENCES_DIR: Final = "/etc/apt/preferences.d"


class UnsupportedPlatformError(ValueError):
    """NVIDIA publishes no repository for this distribution or architecture."""


def distro_dir(os_id: str | None, version_id: str | None) -> str:
    """NVIDIA's name for a distribution: ``("debian", "12")`` -> ``"debian12"``."""
    key = ((os_id or "").lower(), version_id or "")
    if key not in DISTRO_DIRS:
        known = ", ".join(f"{i} {v}" for i, v in DISTRO_DIRS)
        raise UnsupportedPlatformError(
            f"no NVIDIA CUDA repository for {os_id} {version_id}; supported: {known}"
        )
    return DISTRO_DIRS[key]


def nvidia_repo_url(os_id: str | None, version_id: str | None, arch: str = "x86_64",
                    base: str = NVIDIA_REPO_BASE) -> str:
    """The repository URL for a distribution and architecture (ends in ``/``).

    **Example:** ``nvidia_repo_url("ubuntu", "22.04")`` ->
    ``"https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/"``
    """
    if arch not in ARCH_DIRS:
        raise UnsupportedPlatformError(
            f"no NVIDIA CUDA repository for architecture {arch!r}; supported: {', '.join(ARCH_DIRS)}"
        )
    return f"{base.rstrip('/')}/{distro_dir(os_id, version_id)}/{ARCH_DIRS[arch]}/"


def repo_key(distro: str) -> tuple[str, str]:
    """(key file, fingerprint) NVIDIA signs ``distro``'s repository with."""
    return REPO_KEYS[distro]


def mirror_url_for(url: str, os_id: str | None, version_id: str | None, arch: str = "x86_64") -> str:
    """A mirror URL with ``{distro}`` / ``{arch}`` filled in for one node.

    **Example:** ``mirror_url_for("http://m/compute/cuda/repos/{distro}/{arch}/", "debian", "13")``
    -> ``"http://m/compute/cuda/repos/debian13/x86_64/"``
    """
    if "{distro}" not in url and "{arch}" not in url:
        return url
    if arch not in ARCH_DIRS:
        raise UnsupportedPlatformError(f"no NVIDIA CUDA repository for architecture {arch!r}")
    return url.replace("{distro}", distro_dir(os_id, version_id)).replace("{arch}", ARCH_DIRS[arch])


def sources_entry(uri: str, *, signed_by: str | None = None, trusted: bool = False) -> str:
    """A deb822 ``.sources`` stanza for a flat repository (``Suites: /``, no components).

    + uri: repository URL (``https://...``, ``http://mirror/...``, ``file:/dir``)
    + signed_by: keyring that must have signed the repository's InRelease
    + trusted: accept an unsigned index (only for a bundle indexed on the node itself)
    """
    if not signed_by and not trusted:
        raise ValueError(f"repository {uri}: needs a signing keyring (signed_by) or trusted=True")
    lines = [
        "# Managed by deepseek-infra (roles/nvidia_repo): the NVIDIA stack's packages.",
        "Types: deb",
        f"URIs: {uri.rstrip('/')}/" if not uri.startswith("file:") else f"URIs: {uri}",
        "Suites: /",
    ]
    lines.append(f"Signed-By: {signed_by}" if signed_by else "Trusted: yes")
    return "\n".join(lines) + "\n"


def render_preferences(pins: Mapping[str, object], *, owner: str) -> str:
    """apt preferences pinning each package to an exact version (priority 1001).

    + pins: package name -> Debian version (``PackageVersion`` or its text, ``"550.90.12-1"``)
    + owner: the role writing the file, named in its header

    Packages sharing a version share a stanza; output is sorted, so it is stable.

    **Example:** ``render_preferences({"nvidia-smi": "550.90.12-1"}, owner="nvidia_driver")``
    """
    if not pins:
        raise ValueError("no packages to pin")
    by_version: dict[str, list[str]] = {}
    for name, pin in pins.items():
        version = str(pin) if pin is not None else ""
        if not name or any(c.isspace() for c in name) or not version or any(c.isspace() for c in version):
            raise ValueError(f"cannot pin {name!r} to {version!r}")
        by_version.setdefault(version, []).append(name)
    stanzas = [
        f"Package: {' '.join(sorted(names))}\nPin: version {version}\nPin-Priority: 1001\n"
        for version, names in sorted(by_version.items())
    ]
    header = (
        f"# Managed by deepseek-infra ({owner}): these packages stay at these exact versions;\n"
        "# they are also held (apt-mark hold). Change the role's variables to move them.\n"
    )
    return header + "\n".join(stanzas)


def preferences_path(owner: str) -> str:
    return f"{PREFERENCES_DIR}/deepseek-{owner.replace('_', '-')}"
