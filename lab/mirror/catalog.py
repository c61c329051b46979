"""LAB SIMULATION: the packages of the lab's NVIDIA mirror, named and versioned as in
NVIDIA's CUDA repository for Debian 12 (``compute/cuda/repos/debian12/x86_64``).

Two driver branches (550 and 565) and two CUDA toolkits (12.4 and 12.8), with the
libraries built for each, so pinning, branch switches and upgrades can be exercised.
Every file these packages install is a stand-in marked LAB SIMULATION; the driver's
``nvidia-smi`` wraps the hardware simulator staged on every lab node (lab/hwsim).

Pure data and small builders: ``packages()`` returns one :class:`Package` per .deb.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SIM_DIR = Path(__file__).resolve().parent / "sim"
ARCH = "amd64"
MAINTAINER = "deepseek-infra lab <lab@invalid>"
LIB_DIR = "usr/lib/x86_64-linux-gnu"
LAB_NVIDIA_DIR = "usr/lib/deepseek-lab/nvidia"  # simulator state shipped by the packages

# Driver release -> the CUDA version its nvidia-smi reports (R565 reports 12.7).
DRIVERS: dict[str, str] = {"550.90.12": "12.4", "565.57.01": "12.7"}
# CUDA toolkit (deb version) -> (nvcc release line, NCCL deb version, cuDNN 9 deb version).
TOOLKITS: dict[str, dict[str, str]] = {
    "12.4.1-1": {"nvcc": "12.4.131-1", "cudart": "12.4.127-1", "nvcc_build": "Thu_Mar_28_02:18:24_PDT_2024",
                 "compiler": "34097967_0", "nccl": "2.21.5-1+cuda12.4", "cudnn": "9.1.0.70-1"},
    "12.8.1-1": {"nvcc": "12.8.93-1", "cudart": "12.8.90-1", "nvcc_build": "Fri_Feb_21_20:23:50_PST_2025",
                 "compiler": "35583870_0", "nccl": "2.25.1-1+cuda12.8", "cudnn": "9.8.0.87-1"},
}
CONTAINER_TOOLKIT = "1.17.4-1"
DCGM = "1:3.3.9"
# dcgm-exporter release built against that DCGM (NVIDIA tags it <dcgm>-<exporter>).
DCGM_EXPORTER = "3.3.9-3.6.1-1"


@dataclass
class Package:
    name: str
    version: str
    description: str
    depends: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    # path inside the package -> (content, mode); a content of "->target" makes a symlink
    files: dict[str, tuple[str, int]] = field(default_factory=dict)
    scripts: dict[str, str] = field(default_factory=dict)  # postinst, prerm, postrm

    def control(self) -> str:
        lines = [
            f"Package: {self.name}", f"Version: {self.version}", f"Architecture: {ARCH}",
            f"Maintainer: {MAINTAINER}", "Section: contrib/misc", "Priority: optional",
        ]
        for key, values in (("Depends", self.depends), ("Conflicts", self.conflicts),
                            ("Replaces", self.replaces), ("Provides", self.provides)):
            if values:
                lines.append(f"{key}: {', '.join(values)}")
        lines.append(f"Description: {self.description} (LAB SIMULATION)")
        lines.append(" Stand-in built by the deepseek-infra lab; not NVIDIA software.")
        return "\n".join(lines) + "\n"


def _sim(name: str, **values: str) -> str:
    """A simulator script from lab/mirror/sim with @KEY@ placeholders filled in."""
    text = (SIM_DIR / name).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def _marker(what: str) -> tuple[str, int]:
    return (f"LAB SIMULATION: stand-in for {what}; not NVIDIA software.\n", 0o644)


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


def cuda_packages(toolkit: str, spec: dict[str, str]) -> list[Package]:
    """Toolkit (nvcc, cudart, version.json) and the cuDNN/NCCL builds for its CUDA major.minor."""
    release = toolkit.rsplit("-", 1)[0]  # 12.4.1
    major, minor = release.split(".")[:2]
    dashed, dotted = f"{major}-{minor}", f"{major}.{minor}"
    prefix = f"usr/local/cuda-{dotted}"
    nccl = spec["nccl"].split("-")[0].split(".")
    cudnn = spec["cudnn"].split("-")[0].split(".")
    version_json = (
        '{\n   "cuda" : {\n      "name" : "CUDA SDK",\n      "version" : "%s"\n   },\n'
        '   "cuda_nvcc" : {\n      "name" : "CUDA NVCC",\n      "version" : "%s"\n   }\n}\n'
        % (release, spec["nvcc"].split("-")[0])
    )
    return [
        Package(f"cuda-nvcc-{dashed}", spec["nvcc"], f"CUDA nvcc {dotted}", files={
            f"{prefix}/bin/nvcc": (_sim("nvcc", RELEASE=dotted, NVCC=spec["nvcc"].split("-")[0],
                                        BUILT=spec["nvcc_build"], COMPILER=spec["compiler"]), 0o755)}),
        Package(f"cuda-cudart-{dashed}", spec["cudart"], f"CUDA Runtime native Libraries {dotted}", files={
            f"{prefix}/targets/x86_64-linux/lib/libcudart.so.{spec['cudart'].split('-')[0]}": _marker("libcudart"),
            f"{prefix}/targets/x86_64-linux/lib/libcudart.so.{major}": (
                f"->libcudart.so.{spec['cudart'].split('-')[0]}", 0)}),
        Package(f"cuda-toolkit-{dashed}", toolkit, f"CUDA Toolkit {dotted} meta-package",
                depends=(f"cuda-nvcc-{dashed} (= {spec['nvcc']})", f"cuda-cudart-{dashed} (= {spec['cudart']})"),
                files={f"{prefix}/version.json": (version_json, 0o644)},
                scripts={"postinst": _sim("toolkit.postinst", PREFIX=f"/{prefix}", PRIORITY=f"{major}{minor}"),
                         "prerm": _sim("toolkit.prerm", PREFIX=f"/{prefix}")}),
        Package("libnccl2", spec["nccl"], "NVIDIA Collective Communication Library (NCCL) Runtime", files={
            f"{LIB_DIR}/libnccl.so.{'.'.join(nccl)}": _marker(f"libnccl.so.{'.'.join(nccl)}"),
            f"{LIB_DIR}/libnccl.so.2": (f"->libnccl.so.{'.'.join(nccl)}", 0)}),
        Package("libnccl-dev", spec["nccl"], "NVIDIA Collective Communication Library (NCCL) Development Files",
                depends=(f"libnccl2 (= {spec['nccl']})",), files={
                    "usr/include/nccl.h": (_sim("nccl.h", MAJOR=nccl[0], MINOR=nccl[1], PATCH=nccl[2],
                                                CUDA_MAJOR=major, CUDA_MINOR=minor), 0o644)}),
        Package(f"libcudnn9-cuda-{major}", spec["cudnn"], f"cuDNN runtime libraries for CUDA {major}", files={
            f"{LIB_DIR}/libcudnn.so.{'.'.join(cudnn[:3])}": _marker("libcudnn"),
            f"{LIB_DIR}/libcudnn.so.9": (f"->libcudnn.so.{'.'.join(cudnn[:3])}", 0)}),
        Package(f"libcudnn9-dev-cuda-{major}", spec["cudnn"], f"cuDNN development headers for CUDA {major}",
                depends=(f"libcudnn9-cuda-{major} (= {spec['cudnn']})",), files={
                    "usr/include/x86_64-linux-gnu/cudnn_version_v9.h": (
                        _sim("cudnn_version.h", MAJOR=cudnn[0], MINOR=cudnn[1], PATCH=cudnn[2]), 0o644)}),
    ]


def tool_packages() -> list[Package]:
    """Container toolkit, DCGM and dcgm-exporter (their versions do not follow the driver)."""
    ctk = CONTAINER_TOOLKIT.split("-")[0]
    return [
        Package("nvidia-container-toolkit-base", CONTAINER_TOOLKIT, "NVIDIA Container Toolkit Base", files={
            "usr/bin/nvidia-ctk": (_sim("nvidia-ctk", VERSION=ctk), 0o755)}),
        Package("nvidia-container-toolkit", CONTAINER_TOOLKIT, "NVIDIA Container toolkit",
                depends=(f"nvidia-container-toolkit-base (= {CONTAINER_TOOLKIT})",), files={
                    "usr/bin/nvidia-container-runtime": (_sim("nvidia-container-runtime"), 0o755)}),
        Package("datacenter-gpu-manager", DCGM, "NVIDIA Data Center GPU Manager (DCGM)", files={
            "usr/bin/nv-hostengine": (_sim("nv-hostengine", VERSION=DCGM.split(":")[-1]), 0o755),
            "lib/systemd/system/nvidia-dcgm.service": (_sim("nvidia-dcgm.service"), 0o644)}),
        Package("datacenter-gpu-manager-exporter", DCGM_EXPORTER, "NVIDIA DCGM exporter for Prometheus",
                depends=(f"datacenter-gpu-manager (= {DCGM})",), files={
                    "usr/bin/dcgm-exporter": (_sim("dcgm-exporter", VERSION=DCGM_EXPORTER.rsplit("-", 1)[0]), 0o755)}),
    ]


def packages() -> list[Package]:
    """Every package of the lab mirror."""
    result: list[Package] = []
    for driver, cuda in DRIVERS.items():
        result += driver_packages(driver, cuda)
    # Like NVIDIA's index, every release of a package is listed (cuda-drivers twice);
    # apt picks one by pin.
    for toolkit, spec in TOOLKITS.items():
        result += cuda_packages(toolkit, spec)
    result += tool_packages()
    return result
