"""CUDA / cuDNN / NCCL package set, path files and version parsing (deepseek_infra/cuda.py)."""

import re
from pathlib import Path

import pytest

from lab.mirror import catalog
from deepseek_infra import cuda
from deepseek_infra.nvidia_driver import apt_commands, parse_dpkg_status, plan_packages
from deepseek_infra.versions import CudaRelease, CudnnVersion, DriverVersion, NcclVersion, PackageVersion


def held(packages: dict) -> dict:
    """dpkg's view (parsed as the fact parses it) of these packages installed and held."""
    return parse_dpkg_status([f"{name}\t{version}\thi \thold" for name, version in packages.items()])


def target(release, cudnn=None, nccl=None, **kwargs) -> dict:
    """target_packages from the texts host data gives."""
    return cuda.target_packages(release and CudaRelease.parse(release), cudnn and CudnnVersion.parse(cudnn),
                                nccl and NcclVersion.parse(nccl), **kwargs)


def texts(packages: dict) -> dict[str, str]:
    return {name: str(version) for name, version in packages.items()}


def test_target_packages_for_cuda_12_4_with_cudnn9_and_nccl():
    wanted = target("12.4.1", "9.1.0.70-1", "2.21.5-1+cuda12.4")
    assert all(isinstance(version, PackageVersion) for version in wanted.values())
    assert texts(wanted) == {
        "cuda-toolkit-12-4": "12.4.1-1",
        "libcudnn9-cuda-12": "9.1.0.70-1", "libcudnn9-dev-cuda-12": "9.1.0.70-1",
        "libnccl2": "2.21.5-1+cuda12.4", "libnccl-dev": "2.21.5-1+cuda12.4",
    }


def test_target_packages_cudnn8_ga_release_without_dev():
    wanted = target("12.2", "8.9.7.29-1+cuda12.2", None, dev=False, revision="2")
    assert texts(wanted) == {"cuda-toolkit-12-2": "12.2.0-2", "libcudnn8": "8.9.7.29-1+cuda12.2"}


def test_nothing_wanted_and_cudnn_without_cuda():
    assert target(None) == {}
    assert texts(target(None, nccl="2.21.5-1+cuda12.4", dev=False)) == {"libnccl2": "2.21.5-1+cuda12.4"}
    with pytest.raises(ValueError, match="CUDA major"):
        target(None, cudnn="9.1.0.70-1")


@pytest.mark.parametrize("toolkit", sorted(catalog.TOOLKITS))
def test_every_package_the_role_wants_is_in_the_lab_mirror(toolkit):
    spec = catalog.TOOLKITS[toolkit]
    index = {(p.name, p.version) for p in catalog.packages()}
    for name, version in texts(target(toolkit.rsplit("-", 1)[0], spec["cudnn"], spec["nccl"])).items():
        assert (name, version) in index, f"role wants {name}={version}; mirror lacks it"


def test_managed_covers_the_role_packages_and_not_the_drivers():
    for name in target("12.8.1", "9.8.0.87-1", "2.25.1-1+cuda12.8"):
        assert cuda.MANAGED.match(name), name
    for name in ("libcuda1", "nvidia-smi", "cuda-drivers-550", "cuda-nvcc-12-4", "cuda-toolkit-config-common"):
        assert not cuda.MANAGED.match(name), name


def test_version_change_unholds_installs_removes_old_toolkit_and_holds():
    old = target("12.4.1", "9.1.0.70-1", "2.21.5-1+cuda12.4")
    new = target("12.8.1", "9.8.0.87-1", "2.25.1-1+cuda12.8")
    plan = plan_packages(new, held(old), managed=cuda.MANAGED)
    assert plan.remove == ("cuda-toolkit-12-4",)
    assert set(plan.install) == set(new)
    assert "libnccl2" in plan.unhold and "cuda-toolkit-12-4" in plan.unhold
    commands = apt_commands(plan)
    assert commands[0].startswith("apt-mark unhold ")
    assert "cuda-toolkit-12-8=12.8.1-1" in commands[1] and " cuda-toolkit-12-4-" in commands[1]
    assert commands[2] == "apt-mark hold " + " ".join(sorted(new))
    assert plan_packages(new, held(new), managed=cuda.MANAGED).empty


def test_profile_and_the_packages_own_ldconfig_files():
    profile = cuda.render_profile(CudaRelease.parse("12.4.1"))
    assert profile.startswith("# Managed by deepseek-infra (cuda role): CUDA 12.4.1 for login shells.\n")
    assert "export CUDA_HOME=/usr/local/cuda-12.4\n" in profile
    assert '"/usr/local/cuda-12.4/bin:$PATH"' in profile
    assert cuda.packaged_ldconfig_files(12, "x86_64") == {
        "/etc/ld.so.conf.d/000_cuda.conf": "/usr/local/cuda/targets/x86_64-linux/lib",
        "/etc/ld.so.conf.d/988_cuda-12.conf": "/usr/local/cuda-12/targets/x86_64-linux/lib"}
    assert cuda.packaged_ldconfig_files(13, "aarch64")["/etc/ld.so.conf.d/988_cuda-13.conf"] == (
        "/usr/local/cuda-13/targets/sbsa-linux/lib")
    assert cuda.LEGACY_LDCONFIG_FILE not in cuda.packaged_ldconfig_files(12, "x86_64")
    with pytest.raises(ValueError, match="riscv64"):
        cuda.packaged_ldconfig_files(12, "riscv64")


@pytest.mark.parametrize("toolkit", sorted(catalog.TOOLKITS))
def test_lab_toolkit_is_shaped_like_nvidias(toolkit):
    """cuda-cudart-X-Y depends (>=) on the three config-common packages at its own version;
    they ship the ld.so.conf.d files the role relies on."""
    release = CudaRelease.parse(toolkit.rsplit("-", 1)[0])
    cudart_version = catalog.TOOLKITS[toolkit]["cudart"]
    by_key = {(p.name, p.version): p for p in catalog.packages()}
    cudart = by_key[(f"cuda-cudart-{release.major}-{release.minor}", cudart_version)]
    siblings = (f"cuda-toolkit-{release.major}-{release.minor}-config-common",
                f"cuda-toolkit-{release.major}-config-common", "cuda-toolkit-config-common")
    assert cudart.depends == tuple(f"{name} (>= {cudart_version})" for name in siblings)
    for name in siblings:
        assert cuda.CONFIG_COMMON.match(name) and not cuda.MANAGED.match(name), name
        assert (name, cudart_version) in by_key, f"mirror lacks {name}={cudart_version}"
    shipped = {f"/{path}": content.strip() for name in siblings
               for path, (content, _) in by_key[(name, cudart_version)].files.items()}
    assert shipped == cuda.packaged_ldconfig_files(release.major, "x86_64")
    assert cuda.installed_toolkits(held({name: cudart_version for name in siblings})) == ()


def test_newer_nccl_beside_the_pin_is_not_taken():
    # The mirror carries 2.26.2 beside the 12.8 toolkit's pinned 2.25.1: the plan names the pin.
    index = {(p.name, p.version) for p in catalog.packages()}
    assert ("libnccl2", "2.26.2-1+cuda12.8") in index and ("libnccl-dev", "2.26.2-1+cuda12.8") in index
    wanted = target("12.8.1", "9.8.0.87-1", "2.25.1-1+cuda12.8")
    command = apt_commands(plan_packages(wanted, {}, managed=cuda.MANAGED), "debian12")
    assert "libnccl2=2.25.1-1+cuda12.8" in command[-2] and "libnccl-dev=2.25.1-1+cuda12.8" in command[-2]
    assert "madison" in command[0] and "for debian12" in command[0]


def test_forward_compat_package_is_the_release_own_driver():
    assert cuda.compat_package(CudaRelease.parse("12.4.1")) == ("cuda-compat-12-4", PackageVersion("550.54.15-1"))
    assert cuda.compat_package(CudaRelease.parse("12.8")) == ("cuda-compat-12-8", PackageVersion("570.26-1"))
    wanted = target("12.8.1", forward_compat=True)
    assert texts(wanted) == {"cuda-toolkit-12-8": "12.8.1-1", "cuda-compat-12-8": "570.124.06-1"}
    assert "cuda-compat-12-8" not in target("12.8.1")
    assert cuda.MANAGED.match("cuda-compat-12-8")  # removed again once not wanted
    # a compat package left over is removed when the driver catches up
    plan = plan_packages(target("12.8.1"), held(wanted), managed=cuda.MANAGED)
    assert plan.remove == ("cuda-compat-12-8",)


def test_nccl_per_distribution():
    assert cuda.nccl_unconfirmed("ubuntu2204") is None and cuda.nccl_unconfirmed("ubuntu2404") is None
    why = cuda.nccl_unconfirmed("debian12")
    assert why and "debian12" in why and "libnccl2" in why
    assert cuda.nccl_unconfirmed("debian13") and cuda.nccl_unconfirmed("somewhere") is not None


def test_installed_driver_and_drivers_to_check():
    assert cuda.installed_driver(held({"libcuda1": "565.57.01-1"})) == DriverVersion("565.57.01")
    assert cuda.installed_driver(held({"libcuda1": "1:535.161.08-0ubuntu1"})) == DriverVersion("535.161.08")
    assert cuda.installed_driver(held({"libnccl2": "2.21.5-1+cuda12.4"})) is None
    assert cuda.installed_driver(held({"nvidia-utils": "590.44.01-1ubuntu1"})) == DriverVersion("590.44.01")


def test_installed_driver_on_ubuntu_from_a_real_dpkg_listing():
    """Ubuntu 22.04 with R550 open from NVIDIA's repository beside Canonical's R535 leftovers
    (tests/fixtures/nvidia/SOURCES.md): the installed driver is 550.54.15, not the rc 535."""
    listing = (Path(__file__).resolve().parents[2] / "fixtures/nvidia/ubuntu2204/dpkg-l-550.54.15-open-PROVENANCE-GAP.txt").read_text()
    lines = []
    for row in listing.splitlines():  # dpkg -l columns -> the dpkg-query form the fact asks for
        status, name, version = row.split()[:3]
        lines.append(f"{name.split(':')[0]}\t{version}\t{status} \t{'install' if status == 'ii' else 'deinstall'}")
    installed = parse_dpkg_status(lines)
    assert "libnvidia-compute-535" not in installed and "nvidia-utils-550" in installed
    assert cuda.installed_driver(installed) == DriverVersion("550.54.15")
    pinned, other = DriverVersion.parse("550.90.12"), DriverVersion.parse("565.57.01")
    assert cuda.drivers_to_check(pinned, DriverVersion("550.90.12")) == [("pinned (nvidia_driver_version)", pinned)]
    assert [v for _, v in cuda.drivers_to_check(pinned, other)] == [pinned, other]


def test_installed_toolkits_are_the_metapackages_only():
    # Real cuda-toolkit-12-4 pulls these siblings, at component versions (12.4.127-1).
    packages = held({"cuda-toolkit-12-4": "12.4.1-1", "cuda-toolkit-12-4-config-common": "12.4.127-1",
                     "cuda-toolkit-12-config-common": "12.4.127-1", "cuda-toolkit-config-common": "12.4.127-1",
                     "cuda-toolkit-12-8": "12.8.1-1"})
    assert cuda.installed_toolkits(packages) == (CudaRelease(12, 4, 1), CudaRelease(12, 8, 1))
    assert cuda.installed_toolkits(held({"cuda-toolkit-12-4-config-common": "12.4.127-1"})) == ()


def test_parse_versions_from_tools_and_headers():
    nvcc = "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 12.4, V12.4.131\n"
    assert cuda.parse_nvcc_release(nvcc) == "12.4"
    assert cuda.parse_nvcc_release("command not found") is None
    smi = "| NVIDIA-SMI 550.90.12   Driver Version: 550.90.12   CUDA Version: 12.4     |"
    assert cuda.parse_smi_cuda(smi) == "12.4"
    header = "\n".join(catalog._sim("nccl.h", MAJOR="2", MINOR="21", PATCH="5", CUDA_MAJOR="12",
                                    CUDA_MINOR="4").splitlines())
    assert cuda.parse_header_version(header, "NCCL_") == "2.21.5"
    cudnn = catalog._sim("cudnn_version.h", MAJOR="9", MINOR="1", PATCH="0")
    assert cuda.parse_header_version(cudnn, "CUDNN_") == "9.1.0"
    assert cuda.parse_header_version("#define NCCL_MAJOR 2\n", "NCCL_") is None
    assert PackageVersion.parse("1:2.21.5-1+cuda12.4").upstream == "2.21.5"
    assert re.fullmatch(r"\d+\.\d+", cuda.parse_nvcc_release(catalog._sim(
        "nvcc", RELEASE="12.8", NVCC="12.8.93", BUILT="x", COMPILER="y").replace("cat <<END\n", "")) or "")


def test_cudnn_from_9_10_pins_runtime_dev_and_headers_together():
    # -dev depends on the headers at exactly its version: unpinned, apt takes the newest headers.
    wanted = cuda.target_packages(CudaRelease.parse("12.8.1"), CudnnVersion.parse("9.10.2.21-1"))
    assert {name for name in wanted if name.startswith("libcudnn")} == {
        "libcudnn9-cuda-12", "libcudnn9-dev-cuda-12", "libcudnn9-headers-cuda-12"}
    assert len({str(v) for n, v in wanted.items() if n.startswith("libcudnn")}) == 1
    assert cuda.MANAGED.match("libcudnn9-headers-cuda-12")
    # the lab mirror carries that release with the real dependency shape
    (dev,) = [p for p in catalog.packages() if p.name == "libcudnn9-dev-cuda-12" and p.version == "9.10.2.21-1"]
    assert "libcudnn9-headers-cuda-12 (= 9.10.2.21-1)" in dev.depends
