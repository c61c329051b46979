"""LAB SIMULATION: CUDA toolkits and the cuDNN/NCCL builds for them, named and versioned
as in NVIDIA's CUDA repository (see catalog.py).

Shaped after the real packages: cuda-cudart-X-Y depends (>=) on
cuda-toolkit-X-Y-config-common, cuda-toolkit-X-config-common and cuda-toolkit-config-common,
all three at the cudart component version (cuda-toolkit-12-9-config-common 12.9.79-1 beside
cuda-cudart-12-9 12.9.79-1 in real install lists; installing cuda-nvcc/cudart-dev without the
toolkit metapackage pulls them too). cuda-toolkit-config-common ships
/etc/ld.so.conf.d/000_cuda.conf (/usr/local/cuda/targets/x86_64-linux/lib) and
cuda-toolkit-X-config-common 988_cuda-X.conf (/usr/local/cuda-X/...), as listed on real
hosts; which package registers the cuda / cuda-X alternatives is not in the stored sources:
here the X-Y config-common package does (it is there whenever any X.Y component is).
The two shared config-common packages exist once per toolkit release, at different versions,
as in the real repository (apt takes the newest, which satisfies every >=).
"""

from __future__ import annotations

from lab.mirror.debs import LIB_DIR, Package, _marker, _sim

# CUDA toolkit (deb version) -> (nvcc release line, NCCL deb version, cuDNN 9 deb version).
TOOLKITS: dict[str, dict[str, str]] = {
    "12.4.1-1": {"nvcc": "12.4.131-1", "cudart": "12.4.127-1", "nvcc_build": "Thu_Mar_28_02:18:24_PDT_2024",
                 "compiler": "34097967_0", "nccl": "2.21.5-1+cuda12.4", "cudnn": "9.1.0.70-1"},
    "12.8.1-1": {"nvcc": "12.8.93-1", "cudart": "12.8.90-1", "nvcc_build": "Fri_Feb_21_20:23:50_PST_2025",
                 "compiler": "35583870_0", "nccl": "2.25.1-1+cuda12.8", "cudnn": "9.8.0.87-1"},
}
# Newer NCCL builds the repository carries beside the pinned ones (an exact pin must hold
# against them): libnccl2 2.26.2-1+cuda12.8 is a real NCCL release built for CUDA 12.8.
NEWER_NCCL: tuple[str, ...] = ("2.26.2-1+cuda12.8",)


def _ldconf(major: str, generic: bool) -> tuple[str, int]:
    root = "/usr/local/cuda" if generic else f"/usr/local/cuda-{major}"
    return (f"{root}/targets/x86_64-linux/lib\n", 0o644)


def nccl_packages(version: str, cuda_major: str, cuda_minor: str) -> list[Package]:
    nccl = version.split("-")[0].split(".")
    return [
        Package("libnccl2", version, "NVIDIA Collective Communication Library (NCCL) Runtime", files={
            f"{LIB_DIR}/libnccl.so.{'.'.join(nccl)}": _marker(f"libnccl.so.{'.'.join(nccl)}"),
            f"{LIB_DIR}/libnccl.so.2": (f"->libnccl.so.{'.'.join(nccl)}", 0)}),
        Package("libnccl-dev", version, "NVIDIA Collective Communication Library (NCCL) Development Files",
                depends=(f"libnccl2 (= {version})",), files={
                    "usr/include/nccl.h": (_sim("nccl.h", MAJOR=nccl[0], MINOR=nccl[1], PATCH=nccl[2],
                                                CUDA_MAJOR=cuda_major, CUDA_MINOR=cuda_minor), 0o644)}),
    ]

def cuda_packages(toolkit: str, spec: dict[str, str]) -> list[Package]:
    """Toolkit (nvcc, cudart, version.json) and the cuDNN/NCCL builds for its CUDA major.minor."""
    release = toolkit.rsplit("-", 1)[0]  # 12.4.1
    major, minor = release.split(".")[:2]
    dashed, dotted = f"{major}-{minor}", f"{major}.{minor}"
    prefix = f"usr/local/cuda-{dotted}"
    cudnn = spec["cudnn"].split("-")[0].split(".")
    version_json = (
        '{\n   "cuda" : {\n      "name" : "CUDA SDK",\n      "version" : "%s"\n   },\n'
        '   "cuda_nvcc" : {\n      "name" : "CUDA NVCC",\n      "version" : "%s"\n   }\n}\n'
        % (release, spec["nvcc"].split("-")[0])
    )
    cudart = spec["cudart"]
    return [
        Package(f"cuda-nvcc-{dashed}", spec["nvcc"], f"CUDA nvcc {dotted}", files={
            f"{prefix}/bin/nvcc": (_sim("nvcc", RELEASE=dotted, NVCC=spec["nvcc"].split("-")[0],
                                        BUILT=spec["nvcc_build"], COMPILER=spec["compiler"]), 0o755)}),
        Package(f"cuda-toolkit-{dashed}-config-common", cudart, f"Common config package for CUDA Toolkit {dotted}",
                scripts={"postinst": _sim("toolkit.postinst", PREFIX=f"/{prefix}", PRIORITY=f"{major}{minor}",
                                          MAJOR=major),
                         "prerm": _sim("toolkit.prerm", PREFIX=f"/{prefix}", MAJOR=major)}),
        Package(f"cuda-toolkit-{major}-config-common", cudart, f"Common config package for CUDA Toolkit {major}",
                files={f"etc/ld.so.conf.d/988_cuda-{major}.conf": _ldconf(major, generic=False)},
                scripts={"postinst": "#!/bin/sh\n# LAB SIMULATION\nset -e\nldconfig\nexit 0\n"}),
        Package("cuda-toolkit-config-common", cudart, "Common config package for CUDA Toolkit",
                files={"etc/ld.so.conf.d/000_cuda.conf": _ldconf(major, generic=True)},
                scripts={"postinst": "#!/bin/sh\n# LAB SIMULATION\nset -e\nldconfig\nexit 0\n"}),
        Package(f"cuda-cudart-{dashed}", cudart, f"CUDA Runtime native Libraries {dotted}",
                depends=(f"cuda-toolkit-{dashed}-config-common (>= {cudart})",
                         f"cuda-toolkit-{major}-config-common (>= {cudart})",
                         f"cuda-toolkit-config-common (>= {cudart})"), files={
            f"{prefix}/targets/x86_64-linux/lib/libcudart.so.{cudart.split('-')[0]}": _marker("libcudart"),
            f"{prefix}/targets/x86_64-linux/lib/libcudart.so.{major}": (
                f"->libcudart.so.{cudart.split('-')[0]}", 0)}),
        Package(f"cuda-toolkit-{dashed}", toolkit, f"CUDA Toolkit {dotted} meta-package",
                depends=(f"cuda-nvcc-{dashed} (>= {spec['nvcc']})", f"cuda-cudart-{dashed} (>= {cudart})"),
                files={f"{prefix}/version.json": (version_json, 0o644)}),
        *nccl_packages(spec["nccl"], major, minor),
        *[package for newer in NEWER_NCCL if newer.endswith(f"+cuda{dotted}")
          for package in nccl_packages(newer, major, minor)],
        Package(f"libcudnn9-cuda-{major}", spec["cudnn"], f"cuDNN runtime libraries for CUDA {major}", files={
            f"{LIB_DIR}/libcudnn.so.{'.'.join(cudnn[:3])}": _marker("libcudnn"),
            f"{LIB_DIR}/libcudnn.so.9": (f"->libcudnn.so.{'.'.join(cudnn[:3])}", 0)}),
        Package(f"libcudnn9-dev-cuda-{major}", spec["cudnn"], f"cuDNN development headers for CUDA {major}",
                depends=(f"libcudnn9-cuda-{major} (= {spec['cudnn']})",), files={
                    "usr/include/x86_64-linux-gnu/cudnn_version_v9.h": (
                        _sim("cudnn_version.h", MAJOR=cudnn[0], MINOR=cudnn[1], PATCH=cudnn[2]), 0o644)}),
    ]


# A cuDNN 9 release from the line that ships its headers separately (9.10 on), beside the
# pinned ones, as NVIDIA's repository carries newer cuDNN builds than any pin: -dev depends
# on runtime and headers at exactly its own version.
CUDNN_SPLIT = "9.10.2.21-1"


def cudnn_split_packages(version: str = CUDNN_SPLIT, cuda_major: str = "12") -> list[Package]:
    parts = version.split("-")[0].split(".")
    return [
        Package(f"libcudnn9-cuda-{cuda_major}", version, f"cuDNN runtime libraries for CUDA {cuda_major}", files={
            f"{LIB_DIR}/libcudnn.so.{'.'.join(parts[:3])}": _marker("libcudnn"),
            f"{LIB_DIR}/libcudnn.so.9": (f"->libcudnn.so.{'.'.join(parts[:3])}", 0)}),
        Package(f"libcudnn9-headers-cuda-{cuda_major}", version, f"cuDNN header files for CUDA {cuda_major}", files={
            "usr/include/x86_64-linux-gnu/cudnn_version_v9.h": (
                _sim("cudnn_version.h", MAJOR=parts[0], MINOR=parts[1], PATCH=parts[2]), 0o644)}),
        Package(f"libcudnn9-dev-cuda-{cuda_major}", version, f"cuDNN development files for CUDA {cuda_major}",
                depends=(f"libcudnn9-cuda-{cuda_major} (= {version})", f"libcudnn9-headers-cuda-{cuda_major} (= {version})")),
    ]
