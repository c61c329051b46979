"""nvidia_repo: the package source every NVIDIA role installs from.

One setting for the stack (``nvidia_repo_source``): NVIDIA's CUDA repository for the node's
distribution (key fetched and checked against its fingerprint), an internal mirror with
its key (air-gapped sites, the lab), or an offline bundle of .debs indexed on the node.
Each writes one deb822 source, ``/etc/apt/sources.list.d/deepseek-nvidia.sources``.
Pinning and holds belong to the roles that install packages (deepseek_infra.nvidia_repo).
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.server import Arch
from pyinfra.operations import apt, files, server

from deepseek_node import paths
from deepseek_infra.facts.host import hardware_part
from deepseek_infra.hardware import OsRelease
from deepseek_infra.nvidia_repo import (
    KEYRING_DIR, SOURCES_FILE, UnsupportedPlatformError, distro_dir, mirror_url_for, nvidia_repo_url, repo_key,
    sources_entry,
)
from deepseek_infra.operations import nvidia, sync
from roles.nvidia_repo.defaults import NvidiaRepoDefaults

BUNDLE_DIR = f"{paths.SOFTWARE_DIR}/nvidia-bundle"


def key_is_armored(path: str) -> bool:
    """True for an ASCII-armored key file (apt picks the format by the .asc/.gpg extension)."""
    return Path(path).read_bytes().lstrip().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")


@deploy("nvidia_repo: configure")
def configure(config: NvidiaRepoDefaults) -> None:
    """Write the NVIDIA package source and refresh apt's index when it changed."""
    source = config.nvidia_repo_source
    if source == "nvidia":
        os_release = hardware_part(host, OsRelease)
        try:
            url = nvidia_repo_url(os_release.id, os_release.version_id, host.get_fact(Arch),
                                  base=config.nvidia_repo_base_url)
            key_file, fingerprint = repo_key(distro_dir(os_release.id, os_release.version_id))
        except UnsupportedPlatformError as error:
            raise DeployError(f"{host.name}: nvidia_repo_source: {error}") from None
        keyring = f"{KEYRING_DIR}/deepseek-nvidia-cuda.asc"
        key = nvidia.nvidia_repo_key(name="Ensure NVIDIA's CUDA repository key is installed (fingerprint checked)",
                                     url=url + key_file, dest=keyring, fingerprint=fingerprint)
        entry, changed = sources_entry(url, signed_by=keyring), key.changed
    elif source == "mirror":
        key_path = str(config.nvidia_repo_mirror_key)
        if not Path(key_path).is_file():
            raise DeployError(f"{host.name}: nvidia_repo_mirror_key: expected a key file on the controller, "
                              f"found none at {key_path!r}")
        keyring = f"{KEYRING_DIR}/deepseek-nvidia-mirror.{'asc' if key_is_armored(key_path) else 'gpg'}"
        key = sync.file_synced(name="Ensure the NVIDIA mirror's signing key is installed",
                               src=key_path, dest=keyring, user="root", group="root", mode="0644")
        os_release = hardware_part(host, OsRelease)
        try:
            mirror_url = mirror_url_for(str(config.nvidia_repo_mirror_url), os_release.id, os_release.version_id,
                                        host.get_fact(Arch))
        except UnsupportedPlatformError as error:
            raise DeployError(f"{host.name}: nvidia_repo_mirror_url: {error}") from None
        entry, changed = sources_entry(mirror_url, signed_by=keyring), key.changed
    else:
        bundle = str(config.nvidia_repo_bundle_dir)
        if not Path(bundle).is_dir() or not any(Path(bundle).glob("*.deb")):
            raise DeployError(f"{host.name}: nvidia_repo_bundle_dir: expected a directory of .debs on the "
                              f"controller, found none at {bundle!r}")
        apt.packages(name="Ensure apt-ftparchive is installed to index the bundle", packages=["apt-utils"])
        synced = files.sync(name=f"Ensure the NVIDIA bundle is copied to {BUNDLE_DIR}", src=bundle,
                            dest=BUNDLE_DIR, delete=True)
        # The index is built on the node from the copied files; apt trusts it because the
        # files came from the controller over the deploy's own authenticated connection.
        server.shell(name="Ensure the bundle is indexed as a local repository",
                     commands=[f"cd {BUNDLE_DIR} && apt-ftparchive packages . > Packages"],
                     _if=synced.did_change)
        entry, changed = sources_entry(f"file:{BUNDLE_DIR}/", trusted=True), synced.changed
    sources = sync.file_synced(name=f"Ensure {SOURCES_FILE} names the NVIDIA {source} repository",
                               src=StringIO(entry), dest=SOURCES_FILE, user="root", group="root", mode="0644")
    if sources.changed or changed:
        apt.update(name="Update apt's index after the NVIDIA source changed")
