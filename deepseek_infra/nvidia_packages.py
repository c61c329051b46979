"""The NVIDIA driver's package names, per distribution and driver branch, as data (pure).

NVIDIA's CUDA repositories name the same driver differently by distribution and branch:

* **Debian 12 / 13** (``debian12``, ``debian13``): built from Debian's own
  ``nvidia-graphics-drivers`` packaging plus NVIDIA's metapackages; no branch in the names,
  every package at ``<driver>-1``.
* **Ubuntu 22.04 / 24.04** (``ubuntu2204``, ``ubuntu2404``): Canonical-style names with the
  branch in them (``libnvidia-compute-550``) at ``<driver>-0ubuntu1``; from R590 the branch
  suffix is gone (``libnvidia-compute``) and the revision is ``-1ubuntu1``.
* **Fabric manager and NSCQ** (NVSwitch systems) drop the branch suffix from R580 on every
  distribution (``nvidia-fabricmanager-550`` -> ``nvidia-fabricmanager``).

Every row of :data:`ROWS` carries its source; a row that could not be confirmed says so
(``confirmed=False``), and the install checks such packages are in the repository before
it changes anything (``deepseek_infra.nvidia_driver.availability_check``), failing with the
package, version and distribution named.

The default is NVIDIA's **compute-only** set (no Xorg, GL or VDPAU on a headless server);
``desktop=True`` adds the desktop metapackage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from deepseek_infra.versions import DriverVersion, PackageVersion

Flavor = Literal["open", "proprietary"]
Family = Literal["debian", "ubuntu"]
# What a package is for; the keys of a driver package set.
Part = Literal["compute", "kernel", "smi", "persistenced", "libcuda", "nvml", "desktop",
               "fabricmanager", "nscq", "imex", "nvsdm"]

# NVIDIA's repository directory -> the naming family it follows.
DISTRO_FAMILY: Final[Mapping[str, Family]] = MappingProxyType({
    "debian12": "debian", "debian13": "debian", "ubuntu2204": "ubuntu", "ubuntu2404": "ubuntu",
})

# Sources, cited by the rows below (full findings: ../shared/reference/nvidia-repositories.md).
SRC_COMPUTE_ONLY = ("NVIDIA Driver Installation Guide, 'Compute-only and Desktop Installation' (added with R560): "
                    "Debian `nvidia-driver-cuda nvidia-kernel-open-dkms`, Ubuntu `libnvidia-compute nvidia-dkms-open`")
SRC_DEBIAN_CONTROL = ("Debian's nvidia-graphics-drivers control fields, `apt-cache show` bookworm 535.261.03-1 and "
                      "trixie 550.163.01-2 (tests/fixtures/nvidia/debian/); NVIDIA's debian12 repo is built from it")
SRC_UBUNTU_550 = ("scripts pinning the ubuntu2204 repo: `cuda-drivers-550=550.90.07-1 ... "
                  "libnvidia-compute-550=550.90.07-0ubuntu1` (vlab-kaist/server scripts/install_cuda.sh)")
SRC_UBUNTU_590 = ("NVIDIA 'Recent Updates: Ubuntu 590 package renames'; DGX Station host script "
                  "`nvidia-driver-open=610.43.02-1ubuntu1`; `nvidia-fabricmanager=595.71.05-1ubuntu1`")
SRC_FM_580 = ("NVIDIA/gpu-driver-container 78fa4ac 'add driver 580.65.06' ubuntu22.04/install.sh: "
              "`if [ $DRIVER_BRANCH -ge 580 ]; then nvidia-fabricmanager=$V-1 else nvidia-fabricmanager-$BR=$V-1`, "
              "same for libnvidia-nscq, libnvsdm (-$BR from 570), nvidia-imex (-$BR from 550)")
SRC_FM_DEB12 = "public HGX provisioning test, debian-12 case: `install -y nvidia-fabricmanager=580.95.05-1`"


@dataclass(frozen=True)
class Row:
    """One package of the driver's set: which part it is, where and from which branch."""

    part: Part
    family: Family
    name: str  # ``{branch}`` is replaced by the driver branch
    source: str
    flavor: Flavor | None = None  # kernel-module rows: the flavour they build
    branches: tuple[int, int] = (0, 10_000)  # [first, last) branch the row applies to
    confirmed: bool = True
    note: str = ""

    def applies(self, family: Family, branch: int, flavor: Flavor) -> bool:
        return (self.family == family and self.branches[0] <= branch < self.branches[1]
                and self.flavor in (None, flavor))


ROWS: Final[tuple[Row, ...]] = (
    # Debian 12/13: the compute-only set. nvidia-driver-cuda and the desktop metapackages came
    # with R560's compute-only split; for R535/R550 they are unconfirmed in NVIDIA's debian12 repo.
    Row("compute", "debian", "nvidia-driver-cuda", SRC_COMPUTE_ONLY, branches=(560, 10_000)),
    Row("compute", "debian", "nvidia-driver-cuda", SRC_COMPUTE_ONLY, branches=(0, 560), confirmed=False,
        note="NVIDIA introduced the compute-only split with R560; not confirmed for older branches"),
    Row("kernel", "debian", "nvidia-kernel-open-dkms", SRC_COMPUTE_ONLY, flavor="open"),
    Row("kernel", "debian", "nvidia-kernel-dkms", SRC_DEBIAN_CONTROL, flavor="proprietary"),
    Row("smi", "debian", "nvidia-smi", SRC_DEBIAN_CONTROL),
    Row("libcuda", "debian", "libcuda1", SRC_DEBIAN_CONTROL),
    Row("nvml", "debian", "libnvidia-ml1", SRC_DEBIAN_CONTROL),
    Row("persistenced", "debian", "nvidia-persistenced", SRC_DEBIAN_CONTROL),
    Row("desktop", "debian", "nvidia-driver", SRC_DEBIAN_CONTROL),
    Row("desktop", "debian", "nvidia-open", SRC_COMPUTE_ONLY, flavor="open", branches=(560, 10_000)),
    Row("desktop", "debian", "cuda-drivers-{branch}", SRC_UBUNTU_550, flavor="proprietary"),
    # Ubuntu below R590: the branch in every name (Canonical's packaging).
    Row("compute", "ubuntu", "libnvidia-compute-{branch}", SRC_UBUNTU_550, branches=(0, 590)),
    Row("kernel", "ubuntu", "nvidia-dkms-{branch}-open", SRC_UBUNTU_550, flavor="open", branches=(0, 590)),
    Row("kernel", "ubuntu", "nvidia-dkms-{branch}", SRC_UBUNTU_550, flavor="proprietary", branches=(0, 590)),
    Row("smi", "ubuntu", "nvidia-utils-{branch}", SRC_UBUNTU_550, branches=(0, 590)),
    Row("persistenced", "ubuntu", "nvidia-compute-utils-{branch}", SRC_UBUNTU_550, branches=(0, 590)),
    Row("desktop", "ubuntu", "nvidia-driver-{branch}-open", SRC_UBUNTU_550, flavor="open", branches=(0, 590)),
    Row("desktop", "ubuntu", "nvidia-driver-{branch}", SRC_UBUNTU_550, flavor="proprietary", branches=(0, 590)),
    # Ubuntu from R590: no branch suffix.
    Row("compute", "ubuntu", "libnvidia-compute", SRC_UBUNTU_590, branches=(590, 10_000)),
    Row("kernel", "ubuntu", "nvidia-dkms-open", SRC_UBUNTU_590, flavor="open", branches=(590, 10_000)),
    Row("kernel", "ubuntu", "nvidia-dkms", SRC_UBUNTU_590, flavor="proprietary", branches=(590, 10_000),
        confirmed=False, note="only the open module's unsuffixed name is cited"),
    Row("smi", "ubuntu", "nvidia-utils", SRC_UBUNTU_590, branches=(590, 10_000), confirmed=False,
        note="renamed with the others in R590; no capture of this exact name"),
    Row("persistenced", "ubuntu", "nvidia-compute-utils", SRC_UBUNTU_590, branches=(590, 10_000), confirmed=False,
        note="renamed with the others in R590; no capture of this exact name"),
    Row("desktop", "ubuntu", "nvidia-driver-open", SRC_UBUNTU_590, flavor="open", branches=(590, 10_000)),
    Row("desktop", "ubuntu", "nvidia-driver", SRC_UBUNTU_590, flavor="proprietary", branches=(590, 10_000),
        confirmed=False),
)

# NVSwitch packages (fabric manager, NSCQ for DCGM's switch telemetry) and NVLink5 extras
# (HGX B200: IMEX and NVSDM), the same on Debian and Ubuntu; the suffix goes at R580.
SWITCH_ROWS: Final[tuple[Row, ...]] = tuple(
    Row(part, family, name, SRC_FM_580 if family == "ubuntu" else f"{SRC_FM_580}; {SRC_FM_DEB12}",
        branches=branches, confirmed=family == "ubuntu" or part == "fabricmanager" or branches[0] >= 580)
    for family in ("debian", "ubuntu")
    for part, name, branches in (
        ("fabricmanager", "nvidia-fabricmanager-{branch}", (0, 580)),
        ("fabricmanager", "nvidia-fabricmanager", (580, 10_000)),
        ("nscq", "libnvidia-nscq-{branch}", (0, 580)),
        ("nscq", "libnvidia-nscq", (580, 10_000)),
        ("imex", "nvidia-imex-{branch}", (550, 580)),
        ("imex", "nvidia-imex", (580, 10_000)),
        ("nvsdm", "libnvsdm-{branch}", (570, 580)),
        ("nvsdm", "libnvsdm", (580, 10_000)),
    )
)
NVLINK5_PARTS: Final = ("imex", "nvsdm")
# Unpinned NVLink5 packages from the same repository (versions of their own).
NVLINK5_UNPINNED: Final = ("nvlsm", "infiniband-diags")

# Every name this collection may install for the driver, any distribution or branch: an
# installed one that is not wanted is removed (another branch's or flavour's package).
MANAGED: Final = re.compile(
    r"^(cuda-drivers(-\d+)?|nvidia-open(-\d+)?|nvidia-driver(-\d+)?(-open)?|nvidia-driver-cuda|nvidia-smi|"
    r"libnvidia-ml1|libcuda1|nvidia-persistenced|nvidia-kernel-(open-)?dkms|"
    r"libnvidia-compute(-\d+)?|nvidia-dkms(-\d+)?(-open)?|nvidia-utils(-\d+)?|nvidia-compute-utils(-\d+)?|"
    r"nvidia-fabricmanager(-\d+)?|libnvidia-nscq(-\d+)?|nvidia-imex(-\d+)?|libnvsdm(-\d+)?)$"
)
# dpkg-query patterns covering MANAGED (what the driver's state fact asks dpkg about).
DPKG_PATTERNS: Final = (
    "cuda-drivers*", "nvidia-open*", "nvidia-driver*", "nvidia-smi", "libnvidia-ml1", "libcuda1",
    "nvidia-persistenced", "nvidia-kernel-dkms", "nvidia-kernel-open-dkms", "libnvidia-compute*",
    "nvidia-dkms*", "nvidia-utils*", "nvidia-compute-utils*", "nvidia-fabricmanager*", "libnvidia-nscq*",
    "nvidia-imex*", "libnvsdm*",
)
# The package whose version says which driver userspace is installed (nvidia-smi's).
SMI: Final = re.compile(r"^(nvidia-smi|nvidia-utils(-\d+)?)$")


class UnknownDistroError(ValueError):
    """No package map for this distribution."""


def family_of(distro: str) -> Family:
    if distro not in DISTRO_FAMILY:
        raise UnknownDistroError(f"no NVIDIA package map for {distro!r}; known: {', '.join(DISTRO_FAMILY)}")
    return DISTRO_FAMILY[distro]


def revision(distro: str, branch: int, part: Part) -> str:
    """The Debian revision of a driver package: ``1`` on Debian; on Ubuntu ``0ubuntu1``
    below R590 (``1`` for the fabric manager family and NVIDIA's metapackages, which NVIDIA
    builds itself) and ``1ubuntu1`` from R590."""
    if family_of(distro) == "debian":
        return "1"
    if branch >= 590:
        return "1ubuntu1"
    return "1" if part in ("fabricmanager", "nscq", "imex", "nvsdm") else "0ubuntu1"


@dataclass(frozen=True)
class DriverSet:
    """The packages to install and pin for one driver on one distribution."""

    distro: str
    driver: DriverVersion
    packages: Mapping[str, PackageVersion]  # name -> exact version
    parts: Mapping[str, Part]  # name -> what it is for
    unconfirmed: Mapping[str, str]  # name -> why it is not confirmed (checked before install)
    sources: Mapping[str, str]  # name -> where the row comes from
    unpinned: tuple[str, ...] = ()  # installed from the same repository, versions of their own

    def name_of(self, part: Part) -> str | None:
        return next((name for name, p in self.parts.items() if p == part), None)


def driver_set(distro: str, driver: DriverVersion, flavor: Flavor, *, desktop: bool = False,
               fabricmanager: DriverVersion | None = None, nvlink5: bool = False,
               revision_override: str | None = None) -> DriverSet:
    """The driver's packages for ``distro`` (NVIDIA's directory name, ``debian12``).

    + driver: driver release, 580.95.05
    + flavor: ``"open"`` or ``"proprietary"`` kernel modules
    + desktop: add the desktop metapackage (Xorg, GL, VDPAU): off on servers
    + fabricmanager: NVSwitch hosts: fabric manager and NSCQ at this release (the driver's)
    + nvlink5: NVLink5 systems (HGX B200): IMEX and NVSDM at the fabric manager's release too
    + revision_override: one Debian revision for every package (a site's own rebuilds)

    **Example:** ``driver_set("ubuntu2204", DriverVersion.parse("550.90.07"), "open").packages``
    -> ``{"libnvidia-compute-550": "550.90.07-0ubuntu1", "nvidia-dkms-550-open": ..., ...}``
    """
    family = family_of(distro)
    packages: dict[str, PackageVersion] = {}
    parts: dict[str, Part] = {}
    unconfirmed: dict[str, str] = {}
    sources: dict[str, str] = {}

    def add(row: Row, release: DriverVersion) -> None:
        name = row.name.format(branch=release.branch)
        packages[name] = PackageVersion(
            f"{release}-{revision_override or revision(distro, release.branch, row.part)}")
        parts[name] = row.part
        sources[name] = row.source
        if not row.confirmed:
            unconfirmed[name] = row.note or "not confirmed in NVIDIA's repository"

    for row in ROWS:
        if row.applies(family, driver.branch, flavor) and (row.part != "desktop" or desktop):
            add(row, driver)
    unpinned: tuple[str, ...] = ()
    if fabricmanager is not None:
        for row in SWITCH_ROWS:
            wanted = row.part in ("fabricmanager", "nscq") or (nvlink5 and row.part in NVLINK5_PARTS)
            if wanted and row.applies(family, fabricmanager.branch, flavor):
                add(row, fabricmanager)
        if nvlink5:
            unpinned = NVLINK5_UNPINNED
    return DriverSet(distro=distro, driver=driver, packages=MappingProxyType(packages),
                     parts=MappingProxyType(parts), unconfirmed=MappingProxyType(unconfirmed),
                     sources=MappingProxyType(sources), unpinned=unpinned)


def source_pin(driver: DriverVersion, *, owner: str) -> str:
    """apt preferences holding every package of NVIDIA's driver source packages at ``driver``.

    Pinning only the named packages is not enough: ``nvidia-driver-cuda`` and the kernel
    module depend with ``(= version)`` on packages nobody names (``nvidia-alternative``,
    ``firmware-nvidia-gsp``, ``nvidia-kernel-support``, ``libnvidia-ptxjitcompiler1``...), and
    apt's resolver only considers candidate versions, so with a newer driver in the
    repository an older pin fails ("held broken packages"). This is NVIDIA's own answer
    ("Version locking" in the driver installation guide): a pin by source package, here at
    one exact release (every revision of it: ``-1``, ``-0ubuntu1``, ``-1ubuntu1``).
    """
    return (
        f"# Managed by deepseek-infra ({owner}): every package built from NVIDIA's driver sources\n"
        f"# stays at {driver}, so its exact inter-package dependencies resolve.\n"
        "Package: src:*nvidia*:any src:cuda-drivers*:any src:fabric-manager*:any\n"
        f"Pin: version {driver}-*\n"
        "Pin-Priority: 1001\n"
    )
