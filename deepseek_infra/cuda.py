"""The CUDA toolkit, cuDNN and NCCL package set, and the files that put CUDA on the paths
(pure, no pyinfra).

Package names are those of NVIDIA's CUDA repository for Debian/Ubuntu:

* toolkit: ``cuda-toolkit-<major>-<minor>`` at ``<release>-<revision>`` (``12.4.1-1``),
  installed under ``/usr/local/cuda-<major>.<minor>``;
* cuDNN 9: ``libcudnn9-cuda-<cuda major>`` and ``libcudnn9-dev-cuda-<cuda major>``
  (``9.1.0.70-1``); cuDNN 8.9: ``libcudnn8`` / ``libcudnn8-dev`` (``8.9.7.29-1+cuda12.2``);
* NCCL: ``libnccl2`` and ``libnccl-dev`` (``2.21.5-1+cuda12.4``);
* forward compatibility: ``cuda-compat-<major>-<minor>`` at the toolkit's own driver
  (``cuda-compat-12-8`` ``570.124.06-1``), only where the pinned driver is older.

The toolkit's packages put it on the dynamic linker's path themselves:
``cuda-toolkit-config-common`` ships ``/etc/ld.so.conf.d/000_cuda.conf``
(``/usr/local/cuda/targets/<target>/lib``) and ``cuda-toolkit-<major>-config-common``
``988_cuda-<major>.conf`` (``/usr/local/cuda-<major>/...``), the ``cuda`` / ``cuda-<major>``
alternatives naming the newest installed toolkit; the role writes no ld.so.conf file.

``MANAGED`` is every name the cuda role owns: an installed one that is not wanted (the
previous toolkit after a version change) is removed in the same apt transaction.
"""

from __future__ import annotations

import re
from typing import Final

from deepseek_infra.compat import min_driver_for_cuda
from deepseek_infra.versions import CudaRelease, CudnnVersion, DriverVersion, NcclVersion, PackageVersion

MANAGED: Final = re.compile(
    r"^(cuda-toolkit-\d+-\d+|cuda-compat-\d+-\d+|libcudnn\d+(-dev|-headers)?(-cuda-\d+)?|libnccl2|libnccl-dev)$"
)
# The toolkit metapackage only: cuda-toolkit-12-4-config-common (12.4.127-1) and
# cuda-toolkit-12-config-common, which it pulls in, carry component versions, not releases.
TOOLKIT: Final = re.compile(r"^cuda-toolkit-(\d+)-(\d+)$")
# dpkg-query patterns covering MANAGED (what the role's package fact asks dpkg about).
DPKG_PATTERNS: Final = ("cuda-toolkit-[0-9]*", "cuda-compat-[0-9]*", "libcudnn[0-9]*", "libnccl2", "libnccl-dev")
# What a cuda-toolkit-X-Y pulls in beside its components (cuda-cudart-X-Y depends on them), at
# the cudart component version (cuda-toolkit-12-9-config-common 12.9.79-1): not the role's to pin.
CONFIG_COMMON: Final = re.compile(r"^cuda-toolkit-(\d+-){0,2}config-common$")
PROFILE_FILE: Final = "/etc/profile.d/cuda.sh"
# Written by earlier versions of the role, a duplicate of the packages' own files: removed.
LEGACY_LDCONFIG_FILE: Final = "/etc/ld.so.conf.d/cuda.conf"
# uname -m -> the toolkit's target directory (targets/<name>/lib holds the libraries).
TARGET_DIRS: Final[dict[str, str]] = {
    "x86_64": "x86_64-linux", "amd64": "x86_64-linux", "aarch64": "sbsa-linux", "arm64": "sbsa-linux",
}


def toolkit_package(cuda: CudaRelease) -> str:
    """12.4.1 -> ``"cuda-toolkit-12-4"``."""
    return f"cuda-toolkit-{cuda.major}-{cuda.minor}"


def toolkit_deb_version(cuda: CudaRelease, revision: str = "1") -> PackageVersion:
    """12.4.1 -> ``12.4.1-1``; a GA release 12.4 is ``12.4.0-1``."""
    return PackageVersion(f"{cuda.full}-{revision}")


def cuda_home(cuda: CudaRelease) -> str:
    """Where the toolkit's packages install: 12.4.1 -> ``"/usr/local/cuda-12.4"``."""
    return f"/usr/local/cuda-{cuda.short}"


def packaged_ldconfig_files(cuda_major: int, machine: str) -> dict[str, str]:
    """The ld.so.conf.d files NVIDIA's toolkit packages ship -> the directory each lists.

    ``000_cuda.conf`` is cuda-toolkit-config-common's, ``988_cuda-<major>.conf``
    cuda-toolkit-<major>-config-common's (as on real hosts: ``ls /etc/ld.so.conf.d``).
    """
    if machine not in TARGET_DIRS:
        raise ValueError(f"no CUDA target directory for architecture {machine!r}; known: {', '.join(TARGET_DIRS)}")
    target = TARGET_DIRS[machine]
    return {"/etc/ld.so.conf.d/000_cuda.conf": f"/usr/local/cuda/targets/{target}/lib",
            f"/etc/ld.so.conf.d/988_cuda-{cuda_major}.conf": f"/usr/local/cuda-{cuda_major}/targets/{target}/lib"}


def compat_package(cuda: CudaRelease, revision: str = "1") -> tuple[str, PackageVersion]:
    """The forward-compatibility package of a CUDA release: ``cuda-compat-12-4`` at the
    release's own driver (Table 3: 12.4.1 -> ``550.54.15-1``; NVIDIA: "this package is
    generated from the NVIDIA driver that matches with the CUDA release")."""
    driver = min_driver_for_cuda(cuda)
    return f"cuda-compat-{cuda.major}-{cuda.minor}", PackageVersion(f"{driver}-{revision}")


# Whether NVIDIA's repository for a distribution is known to carry libnccl2 / libnccl-dev.
# The NCCL Installation Guide (2.24.3) documents network repositories for Ubuntu (and RHEL);
# for Debian no source shows libnccl2 in .../repos/debian12/ or debian13/ (cuDNN is there).
# None: unconfirmed, the exact versions are looked up in the repository before the install.
NCCL_IN_REPOSITORY: Final[dict[str, bool | None]] = {
    "ubuntu2204": True, "ubuntu2404": True, "debian12": None, "debian13": None,
}


def nccl_unconfirmed(distro: str) -> str | None:
    """Why NCCL on ``distro`` is not known to install, None where NVIDIA documents it."""
    if NCCL_IN_REPOSITORY.get(distro):
        return None
    return (f"NVIDIA's {distro} repository is not known to carry libnccl2 (the NCCL install guide "
            "documents Ubuntu and RHEL repositories only)")


# cuDNN 9 split its headers into libcudnn9-headers-cuda-<M>, which -dev requires at exactly
# its own version (so all three are pinned, or apt picks the newest headers and fails).
# Seen from 9.10: libcudnn9-headers-cuda-12_9.10.1.4-1 in NVIDIA's debian12/ubuntu2404 repos,
# 9.10.2.21 and 9.13.1.26 pinned as three packages in public setup scripts; pins of 9.1.1.17
# and 9.8.0.87 name only runtime and -dev. 9.9 is not confirmed either way.
CUDNN_HEADERS_FROM: Final = (9, 10)


def cudnn_packages(cudnn: CudnnVersion, cuda_major: int, dev: bool = True) -> list[str]:
    """Package names of a cuDNN release for a CUDA major.

    >>> cudnn_packages(CudnnVersion.parse("9.1.0.70-1"), 12)
    ['libcudnn9-cuda-12', 'libcudnn9-dev-cuda-12']
    >>> cudnn_packages(CudnnVersion.parse("9.10.2.21-1"), 12)
    ['libcudnn9-cuda-12', 'libcudnn9-dev-cuda-12', 'libcudnn9-headers-cuda-12']
    >>> cudnn_packages(CudnnVersion.parse("8.9.7.29-1+cuda12.2"), 12, dev=False)
    ['libcudnn8']
    """
    major = cudnn.major
    if major >= 9:
        names = [f"libcudnn{major}-cuda-{cuda_major}", f"libcudnn{major}-dev-cuda-{cuda_major}"]
        if tuple(cudnn.parts[:2]) >= CUDNN_HEADERS_FROM:
            names.append(f"libcudnn{major}-headers-cuda-{cuda_major}")
    else:
        names = [f"libcudnn{major}", f"libcudnn{major}-dev"]
    return names if dev else names[:1]


def target_packages(cuda: CudaRelease | None, cudnn: CudnnVersion | None = None,
                    nccl: NcclVersion | None = None, *, dev: bool = True,
                    revision: str = "1", forward_compat: bool = False) -> dict[str, PackageVersion]:
    """Package -> exact Debian version for a CUDA stack; empty when nothing is wanted.

    + cuda: toolkit release (12.4.1); None installs no toolkit (and no cuDNN, which
      is named after the CUDA major)
    + cudnn: cuDNN deb version (9.1.0.70-1), None for none
    + nccl: libnccl2 deb version (2.21.5-1+cuda12.4), None for none
    + dev: also the development packages (headers: ``nccl.h``, ``cudnn_version.h``)
    + revision: Debian revision of the toolkit metapackage (``1`` in NVIDIA's repository)
    + forward_compat: also ``cuda-compat-<major>-<minor>`` (the caller decides: only where the
      pinned driver is older than the toolkit's own, ``compat.needs_forward_compat``)

    **Example:** ``target_packages(CudaRelease(12, 4, 1), nccl=NcclVersion.parse("2.21.5-1+cuda12.4"),
    dev=False)`` -> ``{"cuda-toolkit-12-4": 12.4.1-1, "libnccl2": 2.21.5-1+cuda12.4}``
    """
    packages: dict[str, PackageVersion] = {}
    if cuda is not None:
        packages[toolkit_package(cuda)] = toolkit_deb_version(cuda, revision)
        if forward_compat:
            name, version = compat_package(cuda)
            packages[name] = version
        if cudnn is not None:
            for name in cudnn_packages(cudnn, cuda.major, dev):
                packages[name] = cudnn
    elif cudnn is not None:
        raise ValueError("cuDNN packages are named after the CUDA major: set a CUDA release too")
    if nccl is not None:
        packages["libnccl2"] = nccl
        if dev:
            packages["libnccl-dev"] = nccl
    return packages


def render_profile(cuda: CudaRelease) -> str:
    """``/etc/profile.d/cuda.sh``: CUDA_HOME and the toolkit's bin on PATH, once."""
    home = cuda_home(cuda)
    return (
        f"# Managed by deepseek-infra (cuda role): CUDA {cuda} for login shells.\n"
        f"export CUDA_HOME={home}\n"
        f'case ":$PATH:" in *":{home}/bin:"*) ;; *) export PATH="{home}/bin:$PATH" ;; esac\n'
    )


# Packages whose version is the installed driver's, by distribution: Debian's nvidia-smi and
# libcuda1; Ubuntu's nvidia-utils(-<branch>) and libnvidia-compute(-<branch>) (suffixed below R590).
DRIVER_PACKAGE_PATTERNS: Final = ("nvidia-smi", "libcuda1", "nvidia-utils*", "libnvidia-compute*")
_DRIVER_PACKAGE: Final = re.compile(r"^(nvidia-smi|libcuda1|nvidia-utils(-\d+)?|libnvidia-compute(-\d+)?)$")


def installed_driver(packages: dict) -> DriverVersion | None:
    """The driver release dpkg shows (Debian's ``nvidia-smi``/``libcuda1``, Ubuntu's
    ``nvidia-utils-<br>``/``libnvidia-compute-<br>``), None when none is installed.

    Only installed packages are in ``packages`` (``parse_dpkg_status``), so an Ubuntu host's
    removed-but-configured R535 leftovers (``rc``) are not read as its driver; of two
    installed branches (an unfinished switch) the newer is."""
    found = [DriverVersion.of_package(info["version"]) for name, info in packages.items() if _DRIVER_PACKAGE.match(name)]
    return max(found) if found else None


def installed_toolkits(packages: dict) -> tuple[CudaRelease, ...]:
    """CUDA releases of the installed toolkit metapackages, ``cuda-toolkit-X-Y`` at
    ``12.4.1-1`` -> 12.4.1 (its ``-config-common`` siblings do not count), oldest first."""
    return tuple(sorted(CudaRelease.parse(info["version"].release) for name, info in packages.items()
                        if TOOLKIT.match(name)))


def drivers_to_check(pinned: DriverVersion, installed: DriverVersion | None) -> list[tuple[str, DriverVersion]]:
    """``(label, driver)`` pairs the stack must work with: the pinned driver, and the installed
    one when it differs (a host not yet moved to the pin).

    **Example:** ``drivers_to_check(550.90.12, 565.57.01)`` ->
    ``[("pinned (nvidia_driver_version)", 550.90.12), ("installed", 565.57.01)]``
    """
    pairs = [("pinned (nvidia_driver_version)", pinned)]
    if installed is not None and installed != pinned:
        pairs.append(("installed", installed))
    return pairs


_NVCC_RELEASE = re.compile(r"release (\d+\.\d+), V(\S+)")
_SMI_CUDA = re.compile(r"CUDA Version:\s*(\d+\.\d+)")
_DEFINE = re.compile(r"^\s*#define\s+(\w+)\s+(\d+)\s*$")


def parse_nvcc_release(text: str) -> str | None:
    """``nvcc --version`` -> ``"12.4"`` (the toolkit's major.minor), None when absent."""
    match = _NVCC_RELEASE.search(text)
    return match.group(1) if match else None


def parse_smi_cuda(text: str) -> str | None:
    """The "CUDA Version: 12.4" nvidia-smi prints: the newest CUDA the driver supports."""
    match = _SMI_CUDA.search(text)
    return match.group(1) if match else None


def parse_header_version(text: str, prefix: str) -> str | None:
    """``MAJOR.MINOR.PATCH`` from a header's ``#define <prefix>MAJOR 2`` lines.

    + prefix: ``"NCCL_"`` (nccl.h: NCCL_MAJOR/MINOR/PATCH) or ``"CUDNN_"``
      (cudnn_version.h: CUDNN_MAJOR/MINOR/PATCHLEVEL)
    """
    defines = {m.group(1): m.group(2) for m in map(_DEFINE.match, text.splitlines()) if m}
    patch = defines.get(f"{prefix}PATCH", defines.get(f"{prefix}PATCHLEVEL"))
    parts = (defines.get(f"{prefix}MAJOR"), defines.get(f"{prefix}MINOR"), patch)
    return ".".join(parts) if all(p is not None for p in parts) else None  # type: ignore[arg-type]
