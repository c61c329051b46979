"""nvidia_driver / nvidia_repo / cuda variables and the compatibility gate (roles/nvidia_driver)."""

import pytest

from deepseek_infra.config import validate_host_data
from deepseek_infra.nvidia_driver import target_packages
from roles.cuda.defaults import CudaDefaults
from deepseek_infra.hardware import Hardware
from deepseek_infra.facts.nvidia import parse_nvidia_driver_state
from roles.nvidia_driver.tasks import stack_problems
from roles.nvidia_driver.defaults import NvidiaDriverDefaults
from roles.nvidia_repo.defaults import NvidiaRepoDefaults

ROLES = (NvidiaDriverDefaults, NvidiaRepoDefaults, CudaDefaults)


def problems(data):
    return validate_host_data("gpu-a01", data, ROLES)[1]


def test_defaults_are_valid():
    assert problems({}) == []


@pytest.mark.parametrize(("data", "key", "text"), [
    ({"nvidia_driver_branch": 565}, "nvidia_driver_version", "not on branch nvidia_driver_branch=565"),
    ({"nvidia_driver_version": "550.90.12-1"}, "nvidia_driver_version", "no Debian revision"),
    ({"nvidia_driver_version": "latest"}, "nvidia_driver_version", "not a version"),
    ({"nvidia_driver_kernel_modules": "nouveau"}, "nvidia_driver_kernel_modules", "open"),
    ({"nvidia_driver_fabricmanager_version": "x"}, "nvidia_driver_fabricmanager_version", "not a version"),
    ({"nvidia_repo_source": "mirror"}, "nvidia_repo_mirror_url", "required when nvidia_repo_source='mirror'"),
    ({"nvidia_repo_source": "bundle"}, "nvidia_repo_bundle_dir", "required when nvidia_repo_source='bundle'"),
    ({"nvidia_repo_source": "mirror", "nvidia_repo_mirror_url": "ftp://m/", "nvidia_repo_mirror_key": "k"},
     "nvidia_repo_mirror_url", "http"),
    ({"cuda_version": "twelve"}, "cuda_version", "not a version"),
])
def test_bad_values_name_host_and_key(data, key, text):
    found = problems(data)
    assert any(host == "gpu-a01" and k == key and text in message for host, k, message in found), found


def state(packages=None, ib_stack=None):
    """The NvidiaDriverState fact for dpkg showing ``packages`` (name -> version) installed."""
    dpkg = [f"{name}\t{version}\tii \tinstall" for name, version in (packages or {}).items()]
    return {**parse_nvidia_driver_state(["@@dpkg", *dpkg]), "ib_stack": ib_stack}


def test_gate_refuses_cuda_newer_than_the_driver_naming_both():
    config = NvidiaDriverDefaults(nvidia_driver_branch=550, nvidia_driver_version="550.90.12")
    found = stack_problems(config, CudaDefaults(cuda_version="12.8.1"), False, False, state())
    assert found and "12.8.1" in found[0] and "570.124.06" in found[0] and "550.90.12" in found[0]
    assert found[0].endswith(" Change cuda_version (<= 12.4.1 runs on this driver), nvidia_driver_version "
                             "(>= 570.124.06), nvidia_driver_minor_version_compat (True) or cuda_forward_compat "
                             "(True installs cuda-compat-12-8; NVIDIA data-center GPUs only).")
    # each setting named, at its value, lets the driver through
    r570 = NvidiaDriverDefaults(nvidia_driver_branch=570, nvidia_driver_version="570.124.06")
    assert stack_problems(config, CudaDefaults(cuda_version="12.4.1"), False, False, state()) == []
    assert stack_problems(r570, CudaDefaults(cuda_version="12.8.1"), False, False, state()) == []
    minor = NvidiaDriverDefaults(**{**config.model_dump(), "nvidia_driver_minor_version_compat": True})
    assert stack_problems(minor, CudaDefaults(cuda_version="12.8.1"), False, False, state()) == []


def test_gate_accepts_what_the_cuda_role_accepts_with_forward_compat():
    """An R550 data-center driver under CUDA 12.8 with cuda_forward_compat: both roles agree
    (accepted on an H100, refused on a GeForce-class or unknown GPU)."""
    from roles.cuda.tasks import stack_problems as cuda_stack_problems

    config = NvidiaDriverDefaults(nvidia_driver_branch=550, nvidia_driver_version="550.90.12")
    cuda = CudaDefaults(cuda_version="12.8.1", cuda_forward_compat=True)
    installed_128 = state({"cuda-toolkit-12-8": "12.8.1-1"})
    for gpus, accepted in ((("h100-sxm5-80gb",), True), (("rtx-6000-ada",), False), ((None,), False)):
        found = stack_problems(config, cuda, False, False, installed_128, gpus)
        assert (found == []) is accepted, (gpus, found)
        assert (cuda_stack_problems(cuda, config, {}, gpus) == []) is accepted, gpus
    assert stack_problems(config, CudaDefaults(cuda_version="12.8.1"), False, False, state(), ("h100-sxm5-80gb",))


def test_gate_refuses_a_fabricmanager_of_another_version():
    config = NvidiaDriverDefaults(nvidia_driver_branch=565, nvidia_driver_version="565.57.01",
                                  nvidia_driver_fabricmanager_version="550.90.12")
    found = stack_problems(config, CudaDefaults(), True, False, state())
    assert found == ["nvidia-fabricmanager must equal the driver version 565.57.01; found 550.90.12. "
                     "Change nvidia_driver_fabricmanager_version (565.57.01, or None to follow the driver)."]
    for fixed in ("565.57.01", None):
        passing = NvidiaDriverDefaults(**{**config.model_dump(), "nvidia_driver_fabricmanager_version": fixed})
        assert stack_problems(passing, CudaDefaults(), True, False, state()) == []
    # without NVSwitch the fabric manager is not installed, hence not checked
    assert stack_problems(config, CudaDefaults(), False, False, state()) == []


def test_gate_checks_installed_toolkits_and_peermem():
    pkgs = {"cuda-toolkit-12-8": "12.8.1-1"}
    r550 = NvidiaDriverDefaults(nvidia_driver_branch=550, nvidia_driver_version="550.90.12")
    found = stack_problems(r550, CudaDefaults(), False, True, state(pkgs))
    assert any(p.startswith("installed toolkit (deploy/cuda.py removes it: cuda_version is None): "
                            "CUDA 12.8.1 needs") for p in found)
    assert ("nvidia-peermem needs an InfiniBand stack (MLNX_OFED, DOCA-OFED or inbox rdma-core); found none. "
            "Change nvidia_driver_peermem (False).") in found
    assert not any("peermem" in p for p in stack_problems(r550, CudaDefaults(), False, False, state(pkgs)))
    # another cuda_version: the cuda role replaces the toolkit, and the refusal says so
    (toolkit,) = stack_problems(r550, CudaDefaults(cuda_version="12.4.1"), False, False, state(pkgs))
    assert toolkit.startswith("installed toolkit (deploy/cuda.py replaces it with cuda_version 12.4.1): CUDA 12.8.1 "
                              "needs NVIDIA driver >= 570.124.06; found 550.90.12.")
    assert " Change cuda_version (<= 12.4.1 runs on this driver), nvidia_driver_version (>= 570.124.06)" in toolkit
    # the installed toolkit is cuda_version: refused once, as cuda_version
    (same,) = stack_problems(r550, CudaDefaults(cuda_version="12.8.1"), False, False, state(pkgs))
    assert same.startswith("CUDA 12.8.1 needs NVIDIA driver >= 570.124.06; found 550.90.12.")
    with_patch = {**state(ib_stack="rdma-core"), "peer_memory": True}
    assert stack_problems(NvidiaDriverDefaults(), CudaDefaults(cuda_version="12.4.1"), True, True, with_patch) == []
    assert stack_problems(NvidiaDriverDefaults(), CudaDefaults(cuda_version="12.4.1"), True, True,
                          state(ib_stack="mlnx_ofed")) == []


def test_peermem_on_inbox_rdma_core_without_peer_memory_api_is_refused_with_dma_buf_named():
    # Debian 12 / Ubuntu 6.8 kernels: no peer-memory patch, nvidia-peermem's init returns -EINVAL.
    found = stack_problems(NvidiaDriverDefaults(), CudaDefaults(), False, True, state(ib_stack="rdma-core"))
    assert len(found) == 1 and "ib_register_peer_memory_client" in found[0] and "DMA-BUF" in found[0]
    assert found[0].endswith("or install MLNX_OFED / DOCA-OFED. Change nvidia_driver_peermem (False).")


def test_toolkit_config_common_packages_are_no_release_to_gate_on():
    # What a real cuda-toolkit-12-4 pulls in beside itself: component versions, not releases.
    pkgs = {"cuda-toolkit-12-4": "12.4.1-1", "cuda-toolkit-12-4-config-common": "12.4.127-1",
            "cuda-toolkit-12-config-common": "12.4.127-1", "cuda-toolkit-config-common": "12.4.127-1"}
    assert stack_problems(NvidiaDriverDefaults(), CudaDefaults(cuda_version="12.4.1"), False, False, state(pkgs)) == []
    old = NvidiaDriverDefaults(nvidia_driver_branch=550, nvidia_driver_version="550.54.14")  # below 12.4.1's 550.54.15
    assert stack_problems(old, CudaDefaults(), False, False, state(pkgs)) == [
        "installed toolkit (deploy/cuda.py removes it: cuda_version is None): CUDA 12.4.1 needs NVIDIA driver "
        ">= 550.54.15; found 550.54.14. CUDA 12.x minor-version compatibility would run it on >= 525.60.13, with "
        "restrictions. Change cuda_version (<= 12.4.0 runs on this driver), nvidia_driver_version (>= 550.54.15), "
        "nvidia_driver_minor_version_compat (True) or cuda_forward_compat (True installs cuda-compat-12-4; NVIDIA "
        "data-center GPUs only)."]


def test_nvswitch_from_lspci_bridge_class():
    def has_nvswitch(nvidia_pci) -> bool:
        return Hardware.from_sections({"nvidia_pci": nvidia_pci}).has_nvswitch

    assert has_nvswitch([{"slot": "0000:18:00.0", "class_id": "0302"}, {"slot": "0000:05:00.0", "class_id": "0680"}])
    assert not has_nvswitch([{"slot": "0000:18:00.0", "class_id": "0302"}])
    assert not has_nvswitch(None)


def test_defaults_target_the_packages_the_role_installs():
    config = NvidiaDriverDefaults()
    wanted = target_packages(config.nvidia_driver_version, config.nvidia_driver_kernel_modules)
    # R580 LTSB, NVIDIA's compute-only set with the open kernel modules (no desktop metapackage)
    assert str(wanted["nvidia-driver-cuda"]) == str(wanted["nvidia-kernel-open-dkms"]) == "580.95.05-1"
    assert "nvidia-driver" not in wanted and "nvidia-open" not in wanted


def test_secure_boot_without_an_enrolled_dkms_key_is_a_reboot_reason_with_the_steps():
    from roles.nvidia_driver.tasks import secure_boot_reasons

    base = parse_nvidia_driver_state([])
    on = {**base, "secure_boot": True, "dkms_key": True, "dkms_key_enrolled": False}
    (reason,) = secure_boot_reasons(on, in_container=False)
    assert "mokutil --import /var/lib/dkms/mok.pub" in reason and "Enroll MOK" in reason
    assert secure_boot_reasons({**on, "dkms_key_enrolled": True}, in_container=False) == []
    assert secure_boot_reasons({**on, "secure_boot": False}, in_container=False) == []
    assert secure_boot_reasons({**on, "secure_boot": None}, in_container=False) == []  # unknown: not claimed
    assert secure_boot_reasons(on, in_container=True) == []  # a container loads no modules


def test_dkms_gets_the_kernel_flavours_headers_metapackage():
    from roles.nvidia_driver.tasks import headers_packages

    assert headers_packages("6.1.0-28-cloud-amd64", "debian") == [
        "linux-headers-6.1.0-28-cloud-amd64", "linux-headers-cloud-amd64", "dkms"]
    assert headers_packages("6.8.0-48-generic", "ubuntu") == [
        "linux-headers-6.8.0-48-generic", "linux-headers-generic", "dkms"]


def test_preferences_pin_named_packages_exactly_and_the_sources_at_the_release():
    from roles.nvidia_driver.tasks import preferences, wanted_set

    text = preferences(wanted_set(NvidiaDriverDefaults(), "debian12", nvswitch=True))
    assert "Package: libcuda1 libnvidia-ml1 libnvidia-nscq nvidia-driver-cuda nvidia-fabricmanager" in text
    assert "Pin: version 580.95.05-1\n" in text and "Pin: version 580.95.05-*\n" in text


def test_nvlink5_detected_unless_set_and_it_brings_imex_and_nvsdm():
    from roles.nvidia_driver.tasks import is_nvlink5, wanted_set

    detected = {**state(), "nvlink5_devices": ["mlx5_0"]}
    assert is_nvlink5(NvidiaDriverDefaults(), detected) and not is_nvlink5(NvidiaDriverDefaults(), state())
    assert not is_nvlink5(NvidiaDriverDefaults(nvidia_driver_nvlink5=False), detected)
    assert is_nvlink5(NvidiaDriverDefaults(nvidia_driver_nvlink5=True), state())
    names = set(dict(wanted_set(NvidiaDriverDefaults(), "debian12", nvswitch=True, nvlink5=True).packages))
    assert {"nvidia-imex", "libnvsdm", "nvidia-fabricmanager", "libnvidia-nscq"} <= names
    assert not {"nvidia-imex", "libnvsdm"} & set(dict(wanted_set(NvidiaDriverDefaults(), "debian12", nvswitch=True).packages))


def test_unknown_distribution_is_refused_naming_it():
    from deepseek_infra.nvidia_packages import UnknownDistroError
    from roles.nvidia_driver.tasks import wanted_set

    with pytest.raises(UnknownDistroError, match="rocky9"):
        wanted_set(NvidiaDriverDefaults(), "rocky9", nvswitch=False)
