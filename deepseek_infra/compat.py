"""Version compatibility of driver, CUDA, cuDNN, NCCL, fabric manager and peermem.

Pure module (no pyinfra).  ``check_stack()`` returns a list of problems, each a
sentence naming the component, what was found and what is needed, ending with
the host-data settings that fix it and the value that passes where the tables
give one ("Change cuda_version (<= 12.4.1 runs on this driver) or
nvidia_driver_version (>= 570.124.06)."); an empty list means the stack is
compatible as far as these tables know.

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

from types import MappingProxyType
from typing import Final, Mapping

from deepseek_infra.versions import CudaRelease, CudnnVersion, DriverVersion, NcclVersion, PackageVersion

__all__ = [
    "CUDA_TOOLKIT_DRIVERS",
    "MINOR_COMPAT_DRIVER_FLOOR",
    "UnknownCudaReleaseError",
    "check_driver_cuda",
    "check_stack",
    "max_cuda_for_driver",
    "min_driver_for_cuda",
]

# The host-data settings refusals name (roles/cuda/defaults.py, roles/nvidia_driver/defaults.py).
CUDA_VERSION: Final = "cuda_version"
CUDNN_VERSION: Final = "cuda_cudnn_version"
NCCL_VERSION: Final = "cuda_nccl_version"
FORWARD_COMPAT: Final = "cuda_forward_compat"
DRIVER_VERSION: Final = "nvidia_driver_version"
FABRICMANAGER_VERSION: Final = "nvidia_driver_fabricmanager_version"
PEERMEM: Final = "nvidia_driver_peermem"
MINOR_VERSION_COMPAT: Final = "nvidia_driver_minor_version_compat"


def _drivers(*versions: str) -> tuple[DriverVersion, ...]:
    return tuple(DriverVersion(version) for version in versions)


# (major, minor) -> Linux x86_64 "Toolkit Driver Version" per update:
# index 0 is GA, index N is "Update N" (toolkit version major.minor.N).
# Source: CUDA Toolkit release notes, Table 3 "CUDA Toolkit and Corresponding
# Driver Versions" (13.2 Update 2 edition; 13.3 rows from the 13.3 notes).
CUDA_TOOLKIT_DRIVERS: Final[Mapping[tuple[int, int], tuple[DriverVersion, ...]]] = MappingProxyType({
    (13, 3): _drivers("610.43.02", "610.43.02"),
    (13, 2): _drivers("595.45.04", "595.58.03", "595.71.05"),
    (13, 1): _drivers("590.44.01", "590.48.01"),
    (13, 0): _drivers("580.65.06", "580.82.07", "580.95.05"),
    (12, 9): _drivers("575.51.03", "575.57.08"),
    (12, 8): _drivers("570.26", "570.124.06"),
    # There is no CUDA 12.7 toolkit: R565 drivers report "CUDA Version: 12.7".
    (12, 6): _drivers("560.28.03", "560.35.03", "560.35.03", "560.35.05"),
    (12, 5): _drivers("555.42.02", "555.42.06"),
    (12, 4): _drivers("550.54.14", "550.54.15"),
    (12, 3): _drivers("545.23.06", "545.23.08"),
    (12, 2): _drivers("535.54.03", "535.86.09", "535.104.05"),
    (12, 1): _drivers("530.30.02", "530.30.02"),
    (12, 0): _drivers("525.60.13", "525.85.12"),
    (11, 8): _drivers("520.61.05"),
    (11, 7): _drivers("515.43.04", "515.48.07"),
    (11, 6): _drivers("510.39.01", "510.47.03", "510.47.03"),
    (11, 5): _drivers("495.29.05", "495.29.05", "495.29.05"),
    (11, 4): _drivers("470.42.01", "470.57.02", "470.57.02", "470.82.01", "470.82.01"),
    (11, 3): _drivers("465.19.01", "465.19.01"),
    (11, 2): _drivers("460.27.03", "460.32.03", "460.32.03"),
    (11, 1): _drivers("455.23", "455.32"),
})

# Table 2 "Minimum Required Driver Version for CUDA Minor Version
# Compatibility": 13.x >= 580, 12.x >= 525, 11.x >= 450.  The exact floors are
# the GA drivers of 13.0 / 12.0, and 450.80.02 for 11.x (the release notes'
# footnote: "by upgrading to Tesla Recommended Drivers 450.80.02 (Linux) ...
# minor version compatibility is possible across the CUDA 11.x family").
MINOR_COMPAT_DRIVER_FLOOR: Final[Mapping[int, DriverVersion]] = MappingProxyType({
    13: DriverVersion("580.65.06"),
    12: DriverVersion("525.60.13"),
    11: DriverVersion("450.80.02"),
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

# (cuDNN major, CUDA major) -> the first cuDNN (major, minor) built for that CUDA major.
# libcudnn9-cuda-13 starts with cuDNN 9.12.0: NVIDIA's redistrib_9.12.0.json is the first
# with CUDA 13.0 builds (chelsea0x3b/cudarc#444, 2025-08-29), nvidia-cudnn-cu13 was first
# published for 9.12 (NVIDIA/cudnn-frontend#155) and CUDA 13 images pinned 9.12.0.46-1 before
# 9.13.0.50-1 (coreweave/nccl-tests#65).  Later CUDA 13 builds seen in the repositories:
# 9.15.0.58, 9.16.0.29, 9.17.1.4, 9.20.0.48.
CUDNN_FIRST_FOR_CUDA: Final[Mapping[tuple[int, int], tuple[int, int]]] = MappingProxyType({
    (9, 13): (9, 12),
})

# Forward compatibility (docs.nvidia.com/deploy/cuda-compatibility/forward-compatibility.html):
# cuda-compat-<major>-<minor> from NVIDIA's repositories carries the user-mode driver of the
# toolkit's own driver, so a newer CUDA runs on an older kernel driver.  NVIDIA: "Forward
# Compatibility is applicable only for systems with NVIDIA Data Center GPUs, select NGC Server
# Ready SKUs of RTX cards, Jetson boards".  The RTX SKUs cannot be told apart by PCI id, so
# only these data-center models (deepseek_infra.gpus keys) are accepted.
FORWARD_COMPAT_GPUS: Final = frozenset({
    "a100-sxm4-40gb", "a100-sxm4-80gb", "a100-pcie-40gb", "a100-pcie-80gb", "a800-sxm4-80gb",
    "a800-pcie-80gb", "h100-sxm5-80gb", "h100-pcie-80gb", "h100-nvl-94gb", "h800-sxm5-80gb",
    "h800-pcie-80gb", "h200-sxm-141gb", "h200-nvl-141gb", "gh200-480gb", "gh200-144gb-hbm3e", "b200",
    "l40s", "l40", "l4", "v100-sxm2-16gb", "v100-sxm2-32gb", "v100-pcie-16gb", "v100-pcie-32gb",
})
# Driver branches the forward-compatibility path is used from: NVIDIA's data-center
# Long Term Support (LTSB) and Production (PB) branches (R470/R535/R580 LTSB; R525/R550/R570/
# R595 PB, per the data-center driver documentation's branch lists).  New Feature Branches
# (R565, R575, R590, R610...) are not accepted: the branch list is not confirmed row by row
# against the forward-compatibility page's support table (not in the stored sources).
FORWARD_COMPAT_BRANCHES: Final = frozenset({470, 525, 535, 550, 570, 580, 595})

# InfiniBand stacks that provide the ib_core peer-memory API nvidia-peermem
# registers with.  Keys are what check_stack() accepts (lower case).
_IB_STACKS: Final[Mapping[str, str]] = MappingProxyType({
    "mlnx_ofed": "MLNX_OFED",
    "doca_ofed": "DOCA-OFED",
    "doca": "DOCA-OFED",
    "rdma-core": "inbox rdma-core",
    "inbox": "inbox rdma-core",
})

class UnknownCudaReleaseError(ValueError):
    """The CUDA release is not in this collection's Table 3 copy."""


def _either(choices: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return f"{', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1 else choices[0]


def _change(*options: tuple[str, str] | None) -> str:
    """The clause every problem ends with: the settings that fix it, each with the value that
    passes (None entries are options that do not apply)."""
    return "Change " + _either([f"{setting} ({value})" for setting, value in filter(None, options)]) + "."


def _known_releases() -> str:
    newest = max(CUDA_TOOLKIT_DRIVERS)
    updates = len(CUDA_TOOLKIT_DRIVERS[newest]) - 1
    return f"{newest[0]}.{newest[1]}.{updates}"


def min_driver_for_cuda(cuda: CudaRelease, *, minor_version_compat: bool = False) -> DriverVersion:
    """Return the minimum Linux driver for a CUDA toolkit release.

    + cuda: toolkit release (``CudaRelease.parse("12.4")`` is GA, update 0).
    + minor_version_compat: return the Table 2 floor of the major instead of
      the toolkit's own driver (Table 3).

    Raises ``UnknownCudaReleaseError`` when the release is not in the table.

    **Example:** ``str(min_driver_for_cuda(CudaRelease.parse("12.4"))) == "550.54.14"``
    """
    if minor_version_compat and cuda.major in MINOR_COMPAT_DRIVER_FLOOR and (
        (cuda.major, cuda.minor) in CUDA_TOOLKIT_DRIVERS
    ):
        return MINOR_COMPAT_DRIVER_FLOOR[cuda.major]
    row = CUDA_TOOLKIT_DRIVERS.get((cuda.major, cuda.minor))
    update = cuda.update or 0
    if row is None or update >= len(row):
        raise UnknownCudaReleaseError(
            f"CUDA {cuda} is not in NVIDIA's Table 3 copy kept by this collection "
            f"(known: 11.1 to {_known_releases()}); add its row from the CUDA "
            "Toolkit release notes before using it"
        )
    return row[update]


def max_cuda_for_driver(driver: DriverVersion) -> CudaRelease | None:
    """The newest CUDA release (update included) whose Table 3 driver ``driver`` meets, None when
    it meets none.  Table 3 rises with each release, so every older release runs on it too.

    **Example:** ``max_cuda_for_driver(DriverVersion("550.90.12")) == CudaRelease(12, 4, 1)``;
    ``550.54.14`` runs 12.4 GA (``CudaRelease(12, 4, 0)``) but not 12.4.1 (550.54.15)
    """
    runs = [(key, update) for key, row in CUDA_TOOLKIT_DRIVERS.items()
            for update, needed in enumerate(row) if driver >= needed]
    if not runs:
        return None
    (major, minor), update = max(runs)
    return CudaRelease(major, minor, update)  # update 0 written out: "<= 12.8.0" excludes 12.8.1


def _cuda_runs_on(driver: DriverVersion) -> tuple[str, str] | None:
    """The cuda_version option of a refusal on ``driver``: the newest release it runs."""
    newest = max_cuda_for_driver(driver)
    return (CUDA_VERSION, f"<= {newest} runs on this driver") if newest else None


def _driver_cuda_change(
    driver: DriverVersion, cuda: CudaRelease, needed: DriverVersion, compat_package: str | None,
) -> str:
    """The change clause of a refusal of CUDA ``cuda`` on ``driver`` (older than ``needed``): a
    CUDA the driver runs, the driver the CUDA needs, and each compatibility mode that would
    carry it (both are off when a refusal gets here).

    + compat_package: ``cuda-compat-X-Y`` where cuda_forward_compat is off and may be offered,
      else None; offered on the branches of ``FORWARD_COMPAT_BRANCHES`` only (elsewhere it is
      refused)
    """
    floor = MINOR_COMPAT_DRIVER_FLOOR.get(cuda.major)
    forward = compat_package and driver.branch in FORWARD_COMPAT_BRANCHES
    return _change(
        _cuda_runs_on(driver),
        (DRIVER_VERSION, f">= {needed}"),
        (MINOR_VERSION_COMPAT, "True") if floor and driver >= floor else None,
        (FORWARD_COMPAT, f"True installs {compat_package}; NVIDIA data-center GPUs only") if forward else None,
    )


def _check_driver_cuda(
    driver: DriverVersion, cuda: CudaRelease, minor_version_compat: bool, problems: list[str],
    *, forward_compat: bool = False, gpus: tuple[str | None, ...] | None = None,
) -> None:
    try:
        needed = min_driver_for_cuda(cuda)
    except UnknownCudaReleaseError:
        problems.append(
            f"CUDA {cuda} is not a release this collection knows (known: 11.1 to "
            f"{_known_releases()}); add its driver from NVIDIA's release notes "
            "Table 3 before deploying it. "
            + _change(_cuda_runs_on(driver) or (CUDA_VERSION, f"11.1 to {_known_releases()}"))
        )
        return
    if driver >= needed:
        return
    floor = MINOR_COMPAT_DRIVER_FLOOR.get(cuda.major)
    if minor_version_compat and floor and driver >= floor:
        return
    package = f"cuda-compat-{cuda.major}-{cuda.minor}"
    change = _driver_cuda_change(driver, cuda, needed, None if forward_compat else package)
    if forward_compat:
        problems.extend(f"{problem} {change}" for problem in _forward_compat_problems(driver, cuda, package, gpus))
        return
    message = f"CUDA {cuda} needs NVIDIA driver >= {needed}; found {driver}."
    if floor and driver >= floor:
        message += (f" CUDA {cuda.major}.x minor-version compatibility would run it on >= {floor},"
                    " with restrictions.")
    problems.append(f"{message} {change}")


def _forward_compat_problems(
    driver: DriverVersion, cuda: CudaRelease, package: str, gpus: tuple[str | None, ...] | None,
) -> list[str]:
    """Why forward compatibility (cuda-compat) cannot carry ``cuda`` on ``driver``; [] if it can.

    + gpus: deepseek_infra.gpus keys of the node's GPUs (None for a GPU not in that table);
      None when the GPUs are not known.
    """
    problems: list[str] = []
    if driver.branch not in FORWARD_COMPAT_BRANCHES:
        branches = ", ".join(f"R{branch}" for branch in sorted(FORWARD_COMPAT_BRANCHES))
        problems.append(
            f"cuda_forward_compat: {package} runs CUDA {cuda} on older data-center driver branches "
            f"({branches}); found driver {driver} (R{driver.branch}), not one of them."
        )
    if not gpus:
        problems.append(
            f"cuda_forward_compat: {package} (forward compatibility) is for NVIDIA data-center GPUs; "
            "found no GPU on this host to check."
        )
    else:
        others = sorted({gpu or "unknown GPU" for gpu in gpus if gpu not in FORWARD_COMPAT_GPUS})
        if others:
            problems.append(
                f"cuda_forward_compat: {package} (forward compatibility) is for NVIDIA data-center GPUs "
                f"only; found {', '.join(others)}."
            )
    return problems


def check_driver_cuda(
    driver: DriverVersion, cuda: CudaRelease, *, minor_version_compat: bool = False,
    forward_compat: bool = False, gpus: tuple[str | None, ...] | None = None,
) -> list[str]:
    """The driver-against-CUDA part of ``check_stack``, with forward compatibility.

    + forward_compat: a driver older than the toolkit's own is accepted when it is on a
      data-center branch of ``FORWARD_COMPAT_BRANCHES`` and every GPU in ``gpus`` is in
      ``FORWARD_COMPAT_GPUS`` (the host then needs ``cuda-compat-<major>-<minor>``)
    + gpus: deepseek_infra.gpus keys of the host's GPUs (None for an unknown model)

    **Example:** ``check_driver_cuda(DriverVersion("550.90.12"), CudaRelease(12, 8, 1),
    forward_compat=True, gpus=("h100-sxm5-80gb",))`` -> ``[]``
    """
    problems: list[str] = []
    _check_driver_cuda(driver, cuda, minor_version_compat, problems, forward_compat=forward_compat, gpus=gpus)
    return problems


def needs_forward_compat(driver: DriverVersion, cuda: CudaRelease, *, minor_version_compat: bool = False) -> bool:
    """True when ``driver`` is older than what CUDA ``cuda`` needs (its Table 3 driver, or the
    Table 2 floor with ``minor_version_compat``): only then is cuda-compat installed."""
    return bool(check_driver_cuda(driver, cuda, minor_version_compat=minor_version_compat))


def _check_build_tag(
    component: str, setting: str, value: PackageVersion, cuda_major: int | None, problems: list[str]
) -> int | None:
    """Compare a deb ``+cudaX.Y`` tag with the toolkit major; return the tag major."""
    if value.cuda is None:
        return None
    built_for = value.cuda[0]
    if cuda_major is not None and built_for != cuda_major:
        problems.append(
            f"{component} {value} is built for CUDA {built_for}.x; "
            f"CUDA {cuda_major}.x needs a {component} build tagged +cuda{cuda_major}.y. "
            + _change((setting, f"a +cuda{cuda_major}.y build"), (CUDA_VERSION, f"{built_for}.x"))
        )
    return built_for


def _cudnn_first(cudnn_major: int, cuda_major: int) -> tuple[int, int] | None:
    return CUDNN_FIRST_FOR_CUDA.get((cudnn_major, cuda_major))


def _cuda_11_8_only(cudnn_major: int, cuda_major: int) -> bool:
    # cuDNN 9 ships for CUDA 11.8 alone of the 11.x releases (support matrices 9.0 to 9.10).
    return cudnn_major == 9 and cuda_major == 11


def _cudnn_for_cuda(cuda: CudaRelease | None) -> str:
    """The cuDNN releases with a build for ``cuda`` (any known one when None), as a change value:
    ``8.x or 9.x`` for CUDA 12, ``>= 9.12`` for CUDA 13, ``8.x`` for CUDA 11.7."""
    choices = []
    for major, cuda_majors in sorted(CUDNN_CUDA_MAJORS.items()):
        if cuda is not None and (cuda.major not in cuda_majors
                                 or (_cuda_11_8_only(major, cuda.major) and cuda.minor != 8)):
            continue
        first = _cudnn_first(major, cuda.major) if cuda is not None else None
        choices.append(f">= {first[0]}.{first[1]}" if first else f"{major}.x")
    return _either(choices)


def _cuda_for_cudnn(cudnn: CudnnVersion) -> str:
    """The CUDA releases cuDNN ``cudnn`` (a known major) has builds for, as a change value:
    ``11.8 or 12.x`` for cuDNN 9.8, ``11.x or 12.x`` for cuDNN 8.9."""
    choices = []
    for cuda_major in sorted(CUDNN_CUDA_MAJORS[cudnn.major]):
        first = _cudnn_first(cudnn.major, cuda_major)
        if first is None or tuple(cudnn.parts[:2]) >= first:
            choices.append(f"{cuda_major}.8" if _cuda_11_8_only(cudnn.major, cuda_major) else f"{cuda_major}.x")
    return _either(choices)


def _check_cudnn(cudnn: CudnnVersion, cuda: CudaRelease | None, problems: list[str]) -> None:
    majors = CUDNN_CUDA_MAJORS.get(cudnn.major)
    if majors is None:
        problems.append(
            f"cuDNN {cudnn} is not a release this collection knows; supported: "
            "cuDNN 8.9 (CUDA 11.x/12.x) and 9.x (CUDA 11.8, 12.x, 13.x). "
            + _change((CUDNN_VERSION, _cudnn_for_cuda(cuda)))
        )
        return
    cuda_major = cuda.major if cuda is not None else None
    tagged = _check_build_tag("cuDNN", CUDNN_VERSION, cudnn, cuda_major, problems)
    if cuda is None or tagged is not None:
        return
    change = _change((CUDNN_VERSION, _cudnn_for_cuda(cuda)), (CUDA_VERSION, _cuda_for_cudnn(cudnn)))
    if cuda.major not in majors:
        allowed = ", ".join(f"{m}.x" for m in sorted(majors))
        problems.append(
            f"cuDNN {cudnn} has no build for CUDA {cuda}; cuDNN {cudnn.major}.x "
            f"supports CUDA {allowed} (cuDNN support matrix). {change}"
        )
    elif _cuda_11_8_only(cudnn.major, cuda.major) and cuda.minor != 8:
        problems.append(
            f"cuDNN {cudnn} supports CUDA 11.x only as 11.8; found CUDA {cuda}. {change}"
        )
    first = _cudnn_first(cudnn.major, cuda.major)
    if first is not None and cuda.major in majors and tuple(cudnn.parts[:2]) < first:
        problems.append(
            f"cuDNN {cudnn} has no build for CUDA {cuda.major}.x: libcudnn{cudnn.major}-cuda-{cuda.major} "
            f"exists from cuDNN {first[0]}.{first[1]} on (cuDNN support matrix, NVIDIA's repositories). {change}"
        )


def _check_nccl(nccl: NcclVersion, cuda_major: int | None, problems: list[str]) -> None:
    if nccl.major != 2:
        tag = f", a +cuda{cuda_major}.y build" if cuda_major is not None else ""
        problems.append(f"NCCL {nccl} is not an NCCL 2.x release; needed: 2.x. "
                        + _change((NCCL_VERSION, f"2.x{tag}")))
        return
    # libnccl2 debs are versioned "2.x.y-1+cudaX.Y"; the tag names the CUDA
    # the library was built with (NCCL release notes / CUDA repo naming).
    _check_build_tag("NCCL", NCCL_VERSION, nccl, cuda_major, problems)


def _check_fabricmanager(
    driver: DriverVersion | None, fabricmanager: DriverVersion | None, nvswitch: bool,
    problems: list[str],
) -> None:
    if fabricmanager is None:
        if nvswitch:
            needed = f" {driver}, the driver version" if driver else " at the driver version"
            problems.append(
                f"NVSwitch systems need nvidia-fabricmanager{needed}; found none. "
                + _change((FABRICMANAGER_VERSION, str(driver) if driver else f"= {DRIVER_VERSION}"))
            )
        return
    # Fabric Manager user guide: the fabric manager package version must match
    # the driver version exactly, or the service refuses to start.
    if driver is not None and fabricmanager != driver:
        problems.append(
            f"nvidia-fabricmanager must equal the driver version {driver}; "
            f"found {fabricmanager}. " + _change((FABRICMANAGER_VERSION, f"{driver}, or None to follow the driver"))
        )


def _check_peermem(infiniband: str | None, peer_memory: bool | None, problems: list[str]) -> None:
    # nvidia-peermem (in the driver since R470) registers with ib_core's peer-memory API,
    # which MLNX_OFED / DOCA-OFED provide and inbox kernels only with the peer-memory patch
    # (Debian 12 has none; Ubuntu dropped it from its 6.8 kernels, discourse.ubuntu.com/t/44425).
    # Without it the module's init returns -EINVAL ("modprobe: ... Invalid argument",
    # NVIDIA/gpu-operator#2868).  Open modules on kernels >= 5.12 use DMA-BUF instead, no peermem.
    change = _change((PEERMEM, "False"))
    if not infiniband:
        problems.append(
            "nvidia-peermem needs an InfiniBand stack (MLNX_OFED, DOCA-OFED or "
            f"inbox rdma-core); found none. {change}"
        )
        return
    key = infiniband.strip().lower()
    if key.startswith("mlnx_ofed"):
        key = "mlnx_ofed"
    if key not in _IB_STACKS:
        problems.append(
            f"nvidia-peermem needs an InfiniBand stack (MLNX_OFED, DOCA-OFED or "
            f"inbox rdma-core); found unknown stack {infiniband!r}. {change}"
        )
    elif _IB_STACKS[key] == "inbox rdma-core" and peer_memory is False:
        problems.append(
            "nvidia-peermem needs ib_core's peer-memory API (ib_register_peer_memory_client), "
            "which this kernel's inbox rdma-core lacks (no peer-memory patch): it cannot load. "
            "Use DMA-BUF (open kernel modules, kernel >= 5.12; NCCL uses it without peermem), "
            f"or install MLNX_OFED / DOCA-OFED. {change}"
        )


def check_stack(
    driver: DriverVersion | None = None,
    cuda: CudaRelease | None = None,
    cudnn: CudnnVersion | None = None,
    nccl: NcclVersion | None = None,
    fabricmanager: DriverVersion | None = None,
    nvswitch: bool = False,
    infiniband: str | None = None,
    peermem: bool = False,
    *,
    minor_version_compat: bool = False,
    peer_memory: bool | None = None,
    forward_compat: bool = False,
    gpus: tuple[str | None, ...] | None = None,
) -> list[str]:
    """Return the incompatibilities of an NVIDIA software stack.

    + driver: NVIDIA driver release (``550.54.15``), None if unknown.
    + cuda: CUDA toolkit release (``12.4`` / ``12.4.1``).
    + cudnn: cuDNN version (``9.1.0.70``, or deb ``8.9.7.29-1+cuda12.2``).
    + nccl: NCCL version (``2.21.5`` or libnccl2 deb ``2.21.5-1+cuda12.4``).
    + fabricmanager: nvidia-fabricmanager release.
    + nvswitch: the node has NVSwitches (fabric manager is then required).
    + infiniband: IB stack: ``"mlnx_ofed"``, ``"doca_ofed"``, ``"rdma-core"``.
    + peermem: nvidia-peermem is to be loaded.
    + peer_memory: the kernel exports ib_core's peer-memory API (None: unknown, not checked);
      needed by nvidia-peermem on an inbox rdma-core stack.
    + forward_compat, gpus: as in ``check_driver_cuda`` (an older data-center driver with
      cuda-compat)
    + minor_version_compat: accept drivers at the CUDA major's minor-version
      compatibility floor instead of the toolkit's own driver.

    Components left at None are not checked.  The versions come parsed (the
    settings parse them once, ``deepseek_infra.versions``); CUDA releases missing
    from the table are reported as problems, not raised.

    **Example:**
        ``check_stack(driver=DriverVersion("535.161.08"), cuda=CudaRelease(12, 4))`` ->
        ``["CUDA 12.4 needs NVIDIA driver >= 550.54.14; found 535.161.08. ..."]``
    """
    problems: list[str] = []
    if driver is not None and cuda is not None:
        _check_driver_cuda(driver, cuda, minor_version_compat, problems, forward_compat=forward_compat, gpus=gpus)
    if cudnn is not None:
        _check_cudnn(cudnn, cuda, problems)
    if nccl is not None:
        _check_nccl(nccl, cuda.major if cuda is not None else None, problems)
    _check_fabricmanager(driver, fabricmanager, nvswitch, problems)
    if peermem:
        _check_peermem(infiniband, peer_memory, problems)
    return problems
