"""Version compatibility of driver, CUDA, cuDNN, NCCL, fabric manager and peermem.

Pure module (no pyinfra).  ``check_stack()`` returns a list of problems, each a
sentence naming the component, what was found and what is needed; an empty
list means the stack is compatible as far as these tables know.

Driver floor per CUDA release
-----------------------------
NVIDIA's CUDA Toolkit release notes carry two tables:

* Table 2 "CUDA Toolkit and Minimum Required Driver Version for CUDA Minor
  Version Compatibility": 13.x >= 580, 12.x >= 525 (< 580), 11.x >= 450.
  Any 12.x application *can* start on a 525.60.13 driver, with restrictions
  (no PTX JIT of newer PTX, features that need a newer driver fail at run
  time; see docs.nvidia.com/deploy/cuda-compatibility/).
* Table 3 "CUDA Toolkit and Corresponding Driver Versions" (the "Toolkit
  Driver Version" column): the driver each toolkit release was built and
  tested with.

This collection requires the Table 3 figure by default, because a serving
stack (vLLM/SGLang kernels, NCCL, cuBLASLt FP8 paths) is exactly the kind of
code that trips over minor-version-compatibility restrictions.
``minor_version_compat=True`` relaxes the check to the Table 2 floor.

The figures below are the Linux x86_64 column of Table 3 as printed in the
CUDA 13.2 Update 2 release notes
(docs.nvidia.com/cuda/cuda-toolkit-release-notes/, section 2.2).  The CUDA
13.3 rows (GA and Update 1, both >= 610.43.02) come from the CUDA 13.3
release notes.  A release that is not in the table (a newer toolkit, or a
number that never was a toolkit, such as the "12.7" nvidia-smi prints for
R565 drivers) is reported, never passed silently.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Final, Mapping

from deepseek_infra.versions import (
    InvalidVersionError,
    compare_versions,
    parse_version,
    version_at_least,
)

__all__ = [
    "CUDA_TOOLKIT_DRIVERS",
    "MINOR_COMPAT_DRIVER_FLOOR",
    "UnknownCudaReleaseError",
    "check_stack",
    "cuda_major_of_deb_version",
    "cuda_of_deb_version",
    "min_driver_for_cuda",
    "parse_cuda_release",
]

# (major, minor) -> Linux x86_64 "Toolkit Driver Version" per update:
# index 0 is GA, index N is "Update N" (toolkit version major.minor.N).
# Source: CUDA Toolkit release notes, Table 3 "CUDA Toolkit and Corresponding
# Driver Versions" (13.2 Update 2 edition; 13.3 rows from the 13.3 notes).
CUDA_TOOLKIT_DRIVERS: Final[Mapping[tuple[int, int], tuple[str, ...]]] = MappingProxyType({
    (13, 3): ("610.43.02", "610.43.02"),
    (13, 2): ("595.45.04", "595.58.03", "595.71.05"),
    (13, 1): ("590.44.01", "590.48.01"),
    (13, 0): ("580.65.06", "580.82.07", "580.95.05"),
    (12, 9): ("575.51.03", "575.57.08"),
    (12, 8): ("570.26", "570.124.06"),
    # There is no CUDA 12.7 toolkit: R565 drivers report "CUDA Version: 12.7".
    (12, 6): ("560.28.03", "560.35.03", "560.35.03", "560.35.05"),
    (12, 5): ("555.42.02", "555.42.06"),
    (12, 4): ("550.54.14", "550.54.15"),
    (12, 3): ("545.23.06", "545.23.08"),
    (12, 2): ("535.54.03", "535.86.09", "535.104.05"),
    (12, 1): ("530.30.02", "530.30.02"),
    (12, 0): ("525.60.13", "525.85.12"),
    (11, 8): ("520.61.05",),
    (11, 7): ("515.43.04", "515.48.07"),
    (11, 6): ("510.39.01", "510.47.03", "510.47.03"),
    (11, 5): ("495.29.05", "495.29.05", "495.29.05"),
    (11, 4): ("470.42.01", "470.57.02", "470.57.02", "470.82.01", "470.82.01"),
    (11, 3): ("465.19.01", "465.19.01"),
    (11, 2): ("460.27.03", "460.32.03", "460.32.03"),
    (11, 1): ("455.23", "455.32"),
})

# Table 2 "Minimum Required Driver Version for CUDA Minor Version
# Compatibility": 13.x >= 580, 12.x >= 525, 11.x >= 450.  The exact floors are
# the GA drivers of 13.0 / 12.0, and 450.80.02 for 11.x (the release notes'
# footnote: "by upgrading to Tesla Recommended Drivers 450.80.02 (Linux) ...
# minor version compatibility is possible across the CUDA 11.x family").
MINOR_COMPAT_DRIVER_FLOOR: Final[Mapping[int, str]] = MappingProxyType({
    13: "580.65.06",
    12: "525.60.13",
    11: "450.80.02",
})

# cuDNN major -> CUDA majors it is built for (cuDNN support matrix,
# docs.nvidia.com/deeplearning/cudnn/.../support-matrix): cuDNN 8.9.x ships
# "for CUDA 11.x" and "for CUDA 12.x"; cuDNN 9.x ships for CUDA 11.8 (9.0 to
# 9.10 matrices), 12.x, and 13.x (9.17 matrix: "cuDNN 9.17.0 for CUDA 13.x",
# 13.0/13.1, driver >= 580.65.06).
CUDNN_CUDA_MAJORS: Final[Mapping[int, frozenset[int]]] = MappingProxyType({
    8: frozenset({11, 12}),
    9: frozenset({11, 12, 13}),
})

# InfiniBand stacks that provide the ib_core peer-memory API nvidia-peermem
# registers with.  Keys are what check_stack() accepts (lower case).
_IB_STACKS: Final[Mapping[str, str]] = MappingProxyType({
    "mlnx_ofed": "MLNX_OFED",
    "doca_ofed": "DOCA-OFED",
    "doca": "DOCA-OFED",
    "rdma-core": "inbox rdma-core",
    "inbox": "inbox rdma-core",
})

_DEB_CUDA = re.compile(r"\+cuda(\d+)\.(\d+)")


class UnknownCudaReleaseError(ValueError):
    """The CUDA release is not in this collection's Table 3 copy."""


def parse_cuda_release(cuda: str) -> tuple[int, int, int]:
    """Split a toolkit release into (major, minor, update).

    + cuda: ``"12.4"`` (GA), ``"12.4.1"`` (Update 1, as in
      ``/usr/local/cuda/version.json`` or the ``cuda-toolkit-12-4`` deb).

    nvcc's component build (``V12.4.131``) is not a toolkit update number;
    pass the toolkit release instead.
    """
    parts = parse_version(cuda)
    if len(parts) not in (2, 3):
        raise InvalidVersionError(
            f"CUDA release must look like 12.4 or 12.4.1, got {cuda!r}"
        )
    return parts[0], parts[1], parts[2] if len(parts) == 3 else 0


def _known_releases() -> str:
    newest = max(CUDA_TOOLKIT_DRIVERS)
    updates = len(CUDA_TOOLKIT_DRIVERS[newest]) - 1
    return f"{newest[0]}.{newest[1]}.{updates}"


def min_driver_for_cuda(cuda: str, *, minor_version_compat: bool = False) -> str:
    """Return the minimum Linux driver for a CUDA toolkit release.

    + cuda: toolkit release, ``"12.4"`` or ``"12.4.1"``.
    + minor_version_compat: return the Table 2 floor of the major instead of
      the toolkit's own driver (Table 3).

    Raises ``InvalidVersionError`` on garbage and ``UnknownCudaReleaseError``
    when the release is not in the table.

    **Example:** ``min_driver_for_cuda("12.4") == "550.54.14"``
    """
    major, minor, update = parse_cuda_release(cuda)
    if minor_version_compat and major in MINOR_COMPAT_DRIVER_FLOOR and (
        (major, minor) in CUDA_TOOLKIT_DRIVERS
    ):
        return MINOR_COMPAT_DRIVER_FLOOR[major]
    row = CUDA_TOOLKIT_DRIVERS.get((major, minor))
    if row is None or update >= len(row):
        raise UnknownCudaReleaseError(
            f"CUDA {cuda} is not in NVIDIA's Table 3 copy kept by this collection "
            f"(known: 11.1 to {_known_releases()}); add its row from the CUDA "
            "Toolkit release notes before using it"
        )
    return row[update]


def cuda_of_deb_version(deb_version: str) -> tuple[int, int]:
    """Return (major, minor) of the ``+cudaX.Y`` build tag of a deb version.

    **Example:** ``cuda_of_deb_version("2.18.3-1+cuda12.2") == (12, 2)``
    """
    parse_version(deb_version)
    match = _DEB_CUDA.search(deb_version)
    if match is None:
        raise InvalidVersionError(
            f"no +cudaX.Y build tag in package version {deb_version!r}"
        )
    return int(match.group(1)), int(match.group(2))


def cuda_major_of_deb_version(deb_version: str) -> int:
    """Return the CUDA major a deb was built for: ``"2.18.3-1+cuda12.2"`` -> 12."""
    return cuda_of_deb_version(deb_version)[0]


def _parse(component: str, value: str, problems: list[str]) -> tuple[int, ...] | None:
    try:
        return parse_version(value)
    except InvalidVersionError:
        problems.append(f"{component} version {value!r} is not a version number.")
        return None


def _check_driver_cuda(
    driver: str, cuda: str, minor_version_compat: bool, problems: list[str]
) -> None:
    try:
        needed = min_driver_for_cuda(cuda)
    except UnknownCudaReleaseError:
        problems.append(
            f"CUDA {cuda} is not a release this collection knows (known: 11.1 to "
            f"{_known_releases()}); add its driver from NVIDIA's release notes "
            "Table 3 before deploying it."
        )
        return
    if version_at_least(driver, needed):
        return
    major = parse_cuda_release(cuda)[0]
    floor = MINOR_COMPAT_DRIVER_FLOOR.get(major)
    if minor_version_compat and floor and version_at_least(driver, floor):
        return
    message = f"CUDA {cuda} needs NVIDIA driver >= {needed}; found {driver}."
    if floor and version_at_least(driver, floor):
        message += (
            f" CUDA {major}.x minor-version compatibility would run on >= {floor}"
            " with restrictions; this collection requires the toolkit's own"
            " driver unless minor_version_compat=True."
        )
    problems.append(message)


def _check_build_tag(
    component: str, value: str, cuda_major: int | None, problems: list[str]
) -> int | None:
    """Compare a deb ``+cudaX.Y`` tag with the toolkit major; return the tag major."""
    match = _DEB_CUDA.search(value)
    if match is None:
        return None
    built_for = int(match.group(1))
    if cuda_major is not None and built_for != cuda_major:
        problems.append(
            f"{component} {value} is built for CUDA {built_for}.x; "
            f"CUDA {cuda_major}.x needs a {component} build tagged +cuda{cuda_major}.y."
        )
    return built_for


def _check_cudnn(cudnn: str, cuda: str | None, cuda_major: int | None,
                 problems: list[str]) -> None:
    parts = _parse("cuDNN", cudnn, problems)
    if parts is None:
        return
    majors = CUDNN_CUDA_MAJORS.get(parts[0])
    if majors is None:
        problems.append(
            f"cuDNN {cudnn} is not a release this collection knows; supported: "
            "cuDNN 8.9 (CUDA 11.x/12.x) and 9.x (CUDA 11.8, 12.x, 13.x)."
        )
        return
    tagged = _check_build_tag("cuDNN", cudnn, cuda_major, problems)
    if cuda_major is None or tagged is not None:
        return
    if cuda_major not in majors:
        allowed = ", ".join(f"{m}.x" for m in sorted(majors))
        problems.append(
            f"cuDNN {cudnn} has no build for CUDA {cuda}; cuDNN {parts[0]}.x "
            f"supports CUDA {allowed} (cuDNN support matrix)."
        )
    elif parts[0] == 9 and cuda_major == 11 and cuda is not None and (
        parse_cuda_release(cuda)[1] != 8
    ):
        problems.append(
            f"cuDNN {cudnn} supports CUDA 11.x only as 11.8; found CUDA {cuda}."
        )


def _check_nccl(nccl: str, cuda_major: int | None, problems: list[str]) -> None:
    parts = _parse("NCCL", nccl, problems)
    if parts is None:
        return
    if parts[0] != 2:
        problems.append(f"NCCL {nccl} is not an NCCL 2.x release; needed: 2.x.")
        return
    # libnccl2 debs are versioned "2.x.y-1+cudaX.Y"; the tag names the CUDA
    # the library was built with (NCCL release notes / CUDA repo naming).
    _check_build_tag("NCCL", nccl, cuda_major, problems)


def _check_fabricmanager(
    driver: str | None, fabricmanager: str | None, nvswitch: bool,
    problems: list[str],
) -> None:
    if fabricmanager is None:
        if nvswitch:
            needed = f" {driver}, the driver version" if driver else " at the driver version"
            problems.append(
                f"NVSwitch systems need nvidia-fabricmanager{needed}; found none."
            )
        return
    if _parse("fabric manager", fabricmanager, problems) is None or driver is None:
        return
    # Fabric Manager user guide: the fabric manager package version must match
    # the driver version exactly, or the service refuses to start.
    if compare_versions(fabricmanager, driver) != 0:
        problems.append(
            f"nvidia-fabricmanager must equal the driver version {driver}; "
            f"found {fabricmanager}."
        )


def _check_peermem(infiniband: str | None, problems: list[str]) -> None:
    # nvidia-peermem (in the driver since R470) registers with the ib_core
    # peer-memory API, so it only loads on top of an InfiniBand stack:
    # MLNX_OFED / DOCA-OFED, or distribution rdma-core kernels that carry the
    # peer-memory patch (GPUDirect RDMA user manual).  Without one, use dma-buf.
    if not infiniband:
        problems.append(
            "nvidia-peermem needs an InfiniBand stack (MLNX_OFED, DOCA-OFED or "
            "inbox rdma-core); found none."
        )
        return
    key = infiniband.strip().lower()
    if key.startswith("mlnx_ofed"):
        key = "mlnx_ofed"
    if key not in _IB_STACKS:
        problems.append(
            f"nvidia-peermem needs an InfiniBand stack (MLNX_OFED, DOCA-OFED or "
            f"inbox rdma-core); found unknown stack {infiniband!r}."
        )


def check_stack(
    driver: str | None = None,
    cuda: str | None = None,
    cudnn: str | None = None,
    nccl: str | None = None,
    fabricmanager: str | None = None,
    nvswitch: bool = False,
    infiniband: str | None = None,
    peermem: bool = False,
    *,
    minor_version_compat: bool = False,
) -> list[str]:
    """Return the incompatibilities of an NVIDIA software stack.

    + driver: NVIDIA driver version (``"550.54.15"``), None if unknown.
    + cuda: CUDA toolkit release (``"12.4"`` / ``"12.4.1"``).
    + cudnn: cuDNN version (``"9.1.0.70"``, or deb ``"8.9.7.29-1+cuda12.2"``).
    + nccl: NCCL version (``"2.21.5"`` or libnccl2 deb ``"2.21.5-1+cuda12.4"``).
    + fabricmanager: nvidia-fabricmanager version.
    + nvswitch: the node has NVSwitches (fabric manager is then required).
    + infiniband: IB stack: ``"mlnx_ofed"``, ``"doca_ofed"``, ``"rdma-core"``.
    + peermem: nvidia-peermem is to be loaded.
    + minor_version_compat: accept drivers at the CUDA major's minor-version
      compatibility floor instead of the toolkit's own driver.

    Components left at None are not checked.  Garbage versions and CUDA
    releases missing from the table are reported as problems, not raised.

    **Example:**
        ``check_stack(driver="535.161.08", cuda="12.4")`` ->
        ``["CUDA 12.4 needs NVIDIA driver >= 550.54.14; found 535.161.08. ..."]``
    """
    problems: list[str] = []
    driver_ok = driver is not None and _parse("NVIDIA driver", driver, problems) is not None
    cuda_major: int | None = None
    if cuda is not None:
        try:
            cuda_major = parse_cuda_release(cuda)[0]
        except InvalidVersionError:
            problems.append(f"CUDA version {cuda!r} is not a version like 12.4 or 12.4.1.")
            cuda = None
    if driver_ok and cuda is not None:
        _check_driver_cuda(driver, cuda, minor_version_compat, problems)
    if cudnn is not None:
        _check_cudnn(cudnn, cuda, cuda_major, problems)
    if nccl is not None:
        _check_nccl(nccl, cuda_major, problems)
    _check_fabricmanager(driver if driver_ok else None, fabricmanager, nvswitch, problems)
    if peermem:
        _check_peermem(infiniband, problems)
    return problems
