"""The lab node images: Debian 12 (and 13) with systemd as PID 1, built from Debian packages only.

``mmdebstrap`` writes a root filesystem tarball that ``docker import`` turns into an image;
no registry is involved. The tag carries a hash of every input (suite, packages, the apt
sources used, this file), so an unchanged input reuses the image and any change rebuilds.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from lab.docker import LabError, docker, ensure_tools, run

SUITE = "bookworm"  # Debian 12, the distribution the lab nodes run by default
# NVIDIA's repository name for a distribution -> its Debian suite; DEEPSEEK_LAB_OS picks one.
SUITES = {"debian12": "bookworm", "debian13": "trixie"}
OS_ENV = "DEEPSEEK_LAB_OS"

IMAGE_REPOSITORY = "deepseek-lab/node"
# What a freshly installed server has that the roles rely on being there already.
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "python3", "sudo", "iproute2", "procps",
    "ca-certificates", "apt-utils", "gnupg", "kmod", "udev", "util-linux",
)
# The host's own apt sources, so the image uses the same mirror the machine is set up for
# (an internal mirror on an air-gapped site); mmdebstrap's default applies when none exist.
HOST_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


def _host_sources() -> list[Path]:
    found = []
    for path in HOST_SOURCES:
        if path.is_file() and SUITE in path.read_text(errors="replace"):
            found.append(path)
    return found


def lab_os() -> str:
    """The distribution this fleet's nodes run (``DEEPSEEK_LAB_OS``, default debian12)."""
    name = os.environ.get(OS_ENV, "debian12")
    if name not in SUITES:
        raise LabError(f"{OS_ENV}={name!r}: expected one of {', '.join(SUITES)}")
    return name


def sources_for(suite: str) -> list[str]:
    """The host's apt sources rewritten for ``suite`` (its bookworm entries, suite names
    swapped: bookworm-updates -> trixie-updates...), so another Debian release comes from the
    same mirror the machine uses; empty when the host names none (mmdebstrap's default)."""
    return [path.read_text(errors="replace").replace(SUITE, suite) for path in _host_sources()]


def image_tag(suite: str = SUITE) -> str:
    digest = hashlib.sha256()
    digest.update(suite.encode())
    digest.update("\0".join(PACKAGES).encode())
    for text in sources_for(suite):
        digest.update(text.encode())
    digest.update(Path(__file__).read_bytes())
    return f"{IMAGE_REPOSITORY}:{digest.hexdigest()[:12]}"


def image_exists(tag: str) -> bool:
    return run(["docker", "image", "inspect", tag], check=False).returncode == 0


def ensure_image(log=print, os_name: str | None = None) -> str:
    """Return the node image tag for ``os_name`` (default: ``lab_os()``), building it only
    when its inputs changed."""
    suite = SUITES[os_name or lab_os()]
    tag = image_tag(suite)
    if image_exists(tag):
        log(f"image {tag}: up to date, reused")
        return tag
    ensure_tools(("mmdebstrap", "mmdebstrap"))
    log(f"image {tag}: building Debian {suite} from Debian packages (mmdebstrap | docker import)")
    with tempfile.TemporaryDirectory() as tmp:
        sources = []
        for number, text in enumerate(sources_for(suite)):
            path = Path(tmp) / f"sources-{number}.sources"
            path.write_text(text)
            sources.append(str(path))
        tarball = Path(tmp) / "rootfs.tar"
        command = [
            "mmdebstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
            # containers bring their own /dev; machine-id is made at first boot
            "--skip=output/dev", "--customize-hook=rm -f $1/etc/machine-id && touch $1/etc/machine-id",
            suite, str(tarball), *sources,
        ]
        result = subprocess.run(command, capture_output=True)
        if result.returncode != 0:
            raise LabError(f"mmdebstrap failed: {result.stderr.decode(errors='replace')[-3000:]}")
        docker("import", "--change", 'CMD ["/sbin/init"]',
               str(tarball), tag)
    log(f"image {tag}: built")
    return tag
