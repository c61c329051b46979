"""The cuda role's gate and variables (roles/cuda)."""

import pytest

from deepseek_infra.config import validate_host_data
from roles.cuda.tasks import stack_problems, wanted_packages
from roles.cuda.defaults import CudaDefaults
from roles.nvidia_driver.defaults import NvidiaDriverDefaults

CUDA_12_8 = {"cuda_version": "12.8.1", "cuda_cudnn_version": "9.8.0.87-1", "cuda_nccl_version": "2.25.1-1+cuda12.8"}
CUDA_12_4 = {"cuda_version": "12.4.1", "cuda_cudnn_version": "9.1.0.70-1", "cuda_nccl_version": "2.21.5-1+cuda12.4"}


def installed(**versions):
    return {name: {"version": version, "held": True} for name, version in versions.items()}


def test_cuda_12_8_with_the_550_driver_is_refused_naming_both():
    problems = stack_problems(CudaDefaults(**CUDA_12_8), NvidiaDriverDefaults(), {})
    assert len(problems) == 1
    assert "CUDA 12.8.1 needs NVIDIA driver >= 570.124.06; found 550.90.12" in problems[0]
    assert problems[0].startswith("pinned (nvidia_driver_version) driver: ")


def test_cuda_12_4_with_the_550_driver_passes():
    assert stack_problems(CudaDefaults(**CUDA_12_4), NvidiaDriverDefaults(), installed(**{"nvidia-smi": "550.90.12-1"})) == []


def test_the_installed_driver_is_checked_too():
    old = installed(**{"nvidia-smi": "535.161.08-1"})
    problems = stack_problems(CudaDefaults(**CUDA_12_4), NvidiaDriverDefaults(), old)
    assert len(problems) == 1
    assert problems[0].startswith("installed driver: CUDA 12.4.1 needs NVIDIA driver >= 550.54.15; found 535.161.08.")


def test_minor_version_compat_accepts_12_8_on_550():
    driver = NvidiaDriverDefaults(nvidia_driver_minor_version_compat=True)
    assert stack_problems(CudaDefaults(**CUDA_12_8), driver, {}) == []


def test_nccl_built_for_another_cuda_major_is_refused():
    config = CudaDefaults(cuda_version="12.4.1", cuda_nccl_version="2.18.3-1+cuda11.8")
    assert any("built for CUDA 11.x" in p for p in stack_problems(config, NvidiaDriverDefaults(), {}))


def test_wanted_packages_follow_the_settings():
    assert wanted_packages(CudaDefaults()) == {}
    assert set(wanted_packages(CudaDefaults(**CUDA_12_4, cuda_dev_packages=False))) == {
        "cuda-toolkit-12-4", "libcudnn9-cuda-12", "libnccl2"}


@pytest.mark.parametrize(("data", "key", "text"), [
    ({"cuda_cudnn_version": "9.1.0.70-1"}, "cuda_cudnn_version", "set cuda_version too"),
    ({"cuda_version": "12"}, "cuda_version", "12.4 or 12.4.1"),
    ({"cuda_version": "12.4.1", "cuda_deb_revision": "1 2"}, "cuda_deb_revision", "Debian revision"),
])
def test_bad_values_are_refused_naming_host_and_key(data, key, text):
    problems = validate_host_data("gpu-a01", data, (CudaDefaults,))[1]
    assert any(host == "gpu-a01" and k == key and text in message for host, k, message in problems), problems
