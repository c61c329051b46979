"""LAB SIMULATION: the packages of the lab's NVIDIA mirror, named and versioned as in
NVIDIA's CUDA repository for Debian 12 (``compute/cuda/repos/debian12/x86_64``).

Two driver branches (550 and 565) and two CUDA toolkits (12.4 and 12.8), with the
libraries built for each, so pinning, branch switches and upgrades can be exercised.
Every file these packages install is a stand-in marked LAB SIMULATION; the driver's
``nvidia-smi`` wraps the hardware simulator staged on every lab node (lab/hwsim).

Pure data and small builders: ``packages()`` returns one :class:`Package` per .deb.
"""

from __future__ import annotations

from lab.mirror.catalog_cuda import TOOLKITS, cuda_packages
from lab.mirror.catalog_tools import CONTAINER_TOOLKIT, DCGM, DCGM_EXPORTER, tool_packages
from lab.mirror.debs import LAB_NVIDIA_DIR, LIB_DIR, SIM_DIR, Package, _marker, _sim

__all__ = ["CONTAINER_TOOLKIT", "DCGM", "DCGM_EXPORTER", "DRIVERS", "SIM_DIR", "SUITES", "TOOLKITS", "Package", "packages"]

# Repository directories the mirror serves (NVIDIA's names, compute/cuda/repos/<suite>/x86_64).
SUITES: tuple[str, ...] = ("debian12",)

# Driver release -> the CUDA version its nvidia-smi reports (R565 reports 12.7).
DRIVERS: dict[str, str] = {"550.90.12": "12.4", "565.57.01": "12.7"}


def driver_packages(driver: str, cuda: str) -> list[Package]:
    """The driver packages of one release: kernel modules, libraries, tools, metapackages."""
    branch = driver.split(".")[0]
    deb = f"{driver}-1"
    pin = f"(= {deb})"
    kernel: list[Package] = []
    for flavor, name, other in (("proprietary", "nvidia-kernel-dkms", "nvidia-kernel-open-dkms"),
                                ("open", "nvidia-kernel-open-dkms", "nvidia-kernel-dkms")):
        kernel.append(Package(
            name, deb, f"NVIDIA kernel modules ({flavor}), DKMS source",
            conflicts=(other,), replaces=(other,), provides=(f"nvidia-kernel-{driver}",),
            files={
                f"usr/src/nvidia-{driver}/dkms.conf": (
                    f'PACKAGE_NAME="nvidia"\nPACKAGE_VERSION="{driver}"\n# LAB SIMULATION: no sources\n', 0o644),
                f"{LAB_NVIDIA_DIR}/module-version": (f"{driver} {flavor}\n", 0o644),
                f"{LAB_NVIDIA_DIR}/module-load": (_sim("module-load"), 0o755),
                "lib/systemd/system/deepseek-lab-nvidia-module.service": (_sim("deepseek-lab-nvidia-module.service"), 0o644),
            },
            scripts={"postinst": _sim("kernel.postinst", DRIVER=driver)},
        ))
    return [
        *kernel,
        Package("libnvidia-ml1", deb, "NVIDIA Management Library (NVML) runtime library", files={
            f"{LIB_DIR}/libnvidia-ml.so.{driver}": _marker(f"libnvidia-ml.so.{driver}"),
            f"{LIB_DIR}/libnvidia-ml.so.1": (f"->libnvidia-ml.so.{driver}", 0),
        }),
        Package("libcuda1", deb, "NVIDIA CUDA Driver Library", files={
            f"{LIB_DIR}/libcuda.so.{driver}": _marker(f"libcuda.so.{driver}"),
            f"{LIB_DIR}/libcuda.so.1": (f"->libcuda.so.{driver}", 0),
        }),
        Package("nvidia-smi", deb, "NVIDIA System Management Interface", depends=(f"libnvidia-ml1 {pin}",),
                files={"usr/bin/nvidia-smi": (_sim("nvidia-smi", DRIVER=driver, CUDA=cuda), 0o755)}),
        Package("nvidia-persistenced", deb, "daemon to maintain persistent software state in the NVIDIA driver",
                depends=(f"libnvidia-ml1 {pin}",), files={
                    "usr/bin/nvidia-persistenced": (_sim("nvidia-persistenced", DRIVER=driver), 0o755),
                    "lib/systemd/system/nvidia-persistenced.service": (_sim("nvidia-persistenced.service"), 0o644),
                }, scripts={"postinst": _sim("enable.postinst", UNIT="nvidia-persistenced.service")}),
        Package("nvidia-driver-cuda", deb, "NVIDIA driver CUDA integration components",
                depends=(f"nvidia-smi {pin}", f"libcuda1 {pin}", f"nvidia-persistenced {pin}")),
        Package("nvidia-driver", deb, "NVIDIA metapackage",
                depends=(f"nvidia-driver-cuda {pin}", f"nvidia-kernel-dkms {pin} | nvidia-kernel-open-dkms {pin}")),
        Package("nvidia-open", deb, "NVIDIA driver metapackage with open GPU kernel modules",
                depends=(f"nvidia-driver {pin}", f"nvidia-kernel-open-dkms {pin}")),
        Package(f"cuda-drivers-{branch}", deb, f"CUDA Driver meta-package, branch-specific ({branch})",
                depends=(f"nvidia-driver {pin}", f"nvidia-kernel-dkms {pin}")),
        Package("cuda-drivers", deb, "CUDA Driver meta-package, latest branch",
                depends=(f"cuda-drivers-{branch} {pin}",)),
        Package(f"nvidia-fabricmanager-{branch}", deb, "Fabric Manager for NVSwitch based systems",
                conflicts=("nvidia-fabricmanager",), replaces=("nvidia-fabricmanager",),
                provides=("nvidia-fabricmanager",), files={
                    "usr/bin/nv-fabricmanager": (_sim("nv-fabricmanager", DRIVER=driver), 0o755),
                    "usr/share/nvidia/nvswitch/fabricmanager.cfg": (_sim("fabricmanager.cfg"), 0o644),
                    "lib/systemd/system/nvidia-fabricmanager.service": (_sim("nvidia-fabricmanager.service"), 0o644),
                }),
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
    result += tool_packages()
    return result
