"""LAB SIMULATION: the packages of the lab's NVIDIA mirror, named, versioned and
depending on each other as in NVIDIA's CUDA repository for Debian 12/13
(``compute/cuda/repos/debian12/x86_64``), which is built from Debian's own
``nvidia-graphics-drivers`` packaging plus NVIDIA's metapackages.

The dependency shapes are those of the real control files (captured with ``apt-cache show``
from Debian's archive: tests/fixtures/nvidia/debian/): the driver's packages depend on each
other with ``(= version)``, including packages nobody names (``nvidia-alternative``,
``firmware-nvidia-gsp``, ``nvidia-kernel-support``, ``libnvidia-ptxjitcompiler1``), while
NVIDIA's metapackages (``cuda-drivers-<branch>``, ``nvidia-open``) depend with ``>=``. Three
releases are served, an R550 one and two R580 ones, so an exact pin must hold against newer
versions of every package, as against NVIDIA's real repository (finding 1 of
../shared/reference/nvidia-repositories.md), and the fabric manager and NSCQ lose their
branch suffix from R580 (finding 3).

Modelled, not confirmed (said where it is done): the Depends of ``nvidia-driver-cuda``; the
R580 fabric manager declaring Conflicts/Replaces on the suffixed one; external
dependencies (``glx-alternative-nvidia``, ``dkms``, ``libc6``) are left out so a lab node
does not pull Xorg alternatives or compilers.

Every file these packages install is a stand-in marked LAB SIMULATION; the driver's
``nvidia-smi`` wraps the hardware simulator staged on every lab node (lab/hwsim).
"""

from __future__ import annotations

from lab.mirror.catalog_cuda import TOOLKITS, cuda_packages, cudnn_split_packages
from lab.mirror.catalog_tools import CONTAINER_TOOLKIT, DCGM, DCGM_EXPORTER, tool_packages
from lab.mirror.debs import LAB_NVIDIA_DIR, LIB_DIR, SIM_DIR, Package, _marker, _sim

__all__ = ["CONTAINER_TOOLKIT", "DCGM", "DCGM_EXPORTER", "DRIVERS", "SIM_DIR", "SUITES", "TOOLKITS", "Package",
           "packages"]

# Repository directories the mirror serves (NVIDIA's names, compute/cuda/repos/<suite>/x86_64).
SUITES: tuple[str, ...] = ("debian12", "debian13")

# Driver release -> the CUDA version its nvidia-smi reports.
DRIVERS: dict[str, str] = {"550.90.12": "12.4", "580.95.05": "13.0", "580.105.08": "13.0"}
DRIVER_SOURCE = "nvidia-graphics-drivers"  # Debian's source package of the driver


def driver_packages(driver: str, cuda: str) -> list[Package]:
    """The packages of one driver release: the closure of the compute-only and desktop sets."""
    branch = int(driver.split(".")[0])
    deb = f"{driver}-1"
    pin = f"(= {deb})"
    alt = f"nvidia-alternative {pin}"

    def src(name: str, description: str, **fields) -> Package:
        return Package(name, deb, description, source=DRIVER_SOURCE, **fields)

    kernel: list[Package] = []
    for flavor, name, other in (("proprietary", "nvidia-kernel-dkms", "nvidia-kernel-open-dkms"),
                                ("open", "nvidia-kernel-open-dkms", "nvidia-kernel-dkms")):
        kernel.append(src(
            name, f"NVIDIA kernel modules ({flavor}), DKMS source",
            depends=(f"firmware-nvidia-gsp {pin}", f"nvidia-kernel-support {pin}"),
            conflicts=(other,), replaces=(other,), provides=(f"nvidia-kernel-{driver}",),
            files={
                f"usr/src/nvidia-{driver}/dkms.conf": (
                    f'PACKAGE_NAME="nvidia"\nPACKAGE_VERSION="{driver}"\n# LAB SIMULATION: no sources\n', 0o644),
                f"{LAB_NVIDIA_DIR}/module-version": (f"{driver} {flavor}\n", 0o644),
                f"{LAB_NVIDIA_DIR}/module-load": (_sim("module-load"), 0o755),
                "lib/systemd/system/deepseek-lab-nvidia-module.service": (
                    _sim("deepseek-lab-nvidia-module.service"), 0o644),
            },
            scripts={"postinst": _sim("kernel.postinst", DRIVER=driver)},
        ))
    older = [f"nvidia-fabricmanager-{b}" for b in sorted({int(d.split('.')[0]) for d in DRIVERS}) if b < 580]
    fm_name, nscq_name = (("nvidia-fabricmanager", "libnvidia-nscq") if branch >= 580
                          else (f"nvidia-fabricmanager-{branch}", f"libnvidia-nscq-{branch}"))
    # From R580 the unsuffixed names; modelled: they take over the suffixed packages' files.
    fm_takes_over = tuple(older) if branch >= 580 else ()
    nscq_takes_over = tuple(n.replace("nvidia-fabricmanager", "libnvidia-nscq") for n in fm_takes_over)
    return [
        *kernel,
        src("nvidia-alternative", "allows the selection of NVIDIA as GLX provider",
            provides=(f"nvidia-alternative-{driver}",)),
        src("firmware-nvidia-gsp", "NVIDIA GSP firmware", provides=(f"firmware-nvidia-gsp-{driver}",),
            files={f"lib/firmware/nvidia/{driver}/gsp_ga10x.bin": _marker("GSP firmware")}),
        src("nvidia-kernel-support", "NVIDIA binary kernel module support files",
            depends=(alt, f"nvidia-modprobe (>= {branch})")),
        Package("nvidia-modprobe", deb, "utility to load NVIDIA kernel modules and create device nodes",
                source="nvidia-modprobe", files={"usr/bin/nvidia-modprobe": _marker("nvidia-modprobe")}),
        src("libnvidia-ml1", "NVIDIA Management Library (NVML) runtime library", depends=(alt,), files={
            f"{LIB_DIR}/libnvidia-ml.so.{driver}": _marker(f"libnvidia-ml.so.{driver}"),
            f"{LIB_DIR}/libnvidia-ml.so.1": (f"->libnvidia-ml.so.{driver}", 0),
        }),
        src("libnvidia-ptxjitcompiler1", "NVIDIA PTX JIT Compiler library", depends=(alt,), files={
            f"{LIB_DIR}/libnvidia-ptxjitcompiler.so.{driver}": _marker("libnvidia-ptxjitcompiler")}),
        src("libnvidia-cfg1", "NVIDIA binary OpenGL/GLX configuration library", depends=(alt,), files={
            f"{LIB_DIR}/libnvidia-cfg.so.{driver}": _marker("libnvidia-cfg")}),
        src("libcuda1", "NVIDIA CUDA Driver Library", depends=(alt, f"libnvidia-ptxjitcompiler1 {pin}"), files={
            f"{LIB_DIR}/libcuda.so.{driver}": _marker(f"libcuda.so.{driver}"),
            f"{LIB_DIR}/libcuda.so.1": (f"->libcuda.so.{driver}", 0),
        }),
        src("nvidia-smi", "NVIDIA System Management Interface", depends=(alt, f"libnvidia-ml1 {pin}"),
            files={"usr/bin/nvidia-smi": (_sim("nvidia-smi", DRIVER=driver, CUDA=cuda), 0o755)}),
        # Debian's nvidia-persistenced is a source of its own; NVIDIA's repo builds it per release.
        Package("nvidia-persistenced", deb, "daemon to maintain persistent software state in the NVIDIA driver",
                source="nvidia-persistenced", depends=("libnvidia-cfg1",), files={
                    "usr/bin/nvidia-persistenced": (_sim("nvidia-persistenced", DRIVER=driver), 0o755),
                    "lib/systemd/system/nvidia-persistenced.service": (_sim("nvidia-persistenced.service"), 0o644),
                }, scripts={"postinst": _sim("persistenced.postinst")}),
        # NVIDIA's compute-only metapackage (R560+); modelled Depends.
        src("nvidia-driver-cuda", "NVIDIA driver CUDA integration components",
            depends=(alt, f"libcuda1 {pin}", f"nvidia-smi {pin}", f"libnvidia-cfg1 {pin}")),
        # The desktop closure a compute node must not get (finding 11).
        src("nvidia-driver-libs", "NVIDIA metapackage (OpenGL/GLX/EGL/GLES libraries)", depends=(alt,)),
        src("nvidia-driver-bin", "NVIDIA driver support binaries", depends=(alt, "libnvidia-ml1 (>= 319)")),
        src("xserver-xorg-video-nvidia", "NVIDIA binary Xorg driver", depends=(alt,)),
        src("nvidia-vdpau-driver", "Video Decode and Presentation API for Unix - NVIDIA driver", depends=(alt,)),
        src("nvidia-driver", "NVIDIA metapackage", depends=(
            f"nvidia-driver-libs {pin}", f"nvidia-driver-bin {pin}", f"xserver-xorg-video-nvidia {pin}",
            f"nvidia-vdpau-driver {pin}", alt,
            f"nvidia-kernel-dkms {pin} | nvidia-kernel-{driver}")),
        Package("nvidia-open", deb, "NVIDIA driver metapackage with open GPU kernel modules", source="nvidia-open",
                depends=(f"nvidia-driver (>= {deb})", f"nvidia-kernel-open-dkms (>= {deb})")),
        Package(f"cuda-drivers-{branch}", deb, f"CUDA Driver meta-package, branch-specific ({branch})",
                source="cuda-drivers", depends=(f"nvidia-driver (>= {deb})", f"nvidia-driver-cuda (>= {deb})",
                                                f"nvidia-kernel-dkms (>= {deb})")),
        Package("cuda-drivers", deb, "CUDA Driver meta-package, latest branch", source="cuda-drivers",
                depends=(f"cuda-drivers-{branch} (>= {deb})",)),
        Package(fm_name, deb, "Fabric Manager for NVSwitch based systems", source=fm_name,
                conflicts=fm_takes_over, replaces=fm_takes_over,
                provides=(f"nvidia-fabricmanager-{branch}",) if branch >= 580 else (), files={
                    "usr/bin/nv-fabricmanager": (_sim("nv-fabricmanager", DRIVER=driver), 0o755),
                    "usr/share/nvidia/nvswitch/fabricmanager.cfg": (_sim("fabricmanager.cfg"), 0o644),
                    "lib/systemd/system/nvidia-fabricmanager.service": (_sim("nvidia-fabricmanager.service"), 0o644),
                }),
        Package(nscq_name, deb, "NVSwitch Configuration and Query library", source=fm_name,
                conflicts=nscq_takes_over, replaces=nscq_takes_over, files={
                    f"{LIB_DIR}/libnvidia-nscq.so.{driver}": _marker("libnvidia-nscq"),
                    f"{LIB_DIR}/libnvidia-nscq.so.2": (f"->libnvidia-nscq.so.{driver}", 0)}),
    ]


def packages(suite: str = "debian12") -> list[Package]:
    """Every package of the lab mirror's repository for ``suite`` (one of SUITES)."""
    result: list[Package] = []
    for driver, cuda in DRIVERS.items():
        result += driver_packages(driver, cuda)
    # Like NVIDIA's index, every release of a package is listed (cuda-drivers twice);
    # apt picks one by pin.
    for toolkit, spec in TOOLKITS.items():
        result += cuda_packages(toolkit, spec)
    result += cudnn_split_packages()
    result += tool_packages()
    return result
