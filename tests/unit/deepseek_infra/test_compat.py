import pytest

from deepseek_infra.compat import CUDA_TOOLKIT_DRIVERS, UnknownCudaReleaseError, check_stack, min_driver_for_cuda
from deepseek_infra.versions import (
    CudaRelease, CudnnVersion, DriverVersion, InvalidVersionError, NcclVersion, PackageVersion,
)


def stack(*, driver=None, cuda=None, cudnn=None, nccl=None, fabricmanager=None, **rest):
    """check_stack with the versions written as host data and dpkg write them, parsed first."""
    if fabricmanager is not None:  # a driver release, or the package's version (550.54.15-1)
        fabricmanager = (DriverVersion.of_package(PackageVersion.parse(fabricmanager)) if "-" in fabricmanager
                         else DriverVersion.parse(fabricmanager))
    return check_stack(
        driver=DriverVersion.parse(driver) if driver else None, cuda=CudaRelease.parse(cuda) if cuda else None,
        cudnn=CudnnVersion.parse(cudnn) if cudnn else None, nccl=NcclVersion.parse(nccl) if nccl else None,
        fabricmanager=fabricmanager, **rest)


def min_driver(cuda: str, **kwargs) -> str:
    return str(min_driver_for_cuda(CudaRelease.parse(cuda), **kwargs))


# Reference points of Table 3 "CUDA Toolkit and Corresponding Driver Versions"
# (Linux x86_64 column, CUDA Toolkit release notes).
@pytest.mark.parametrize(
    ("cuda", "driver"),
    [
        ("12.0", "525.60.13"),
        ("12.0.1", "525.85.12"),
        ("12.1", "530.30.02"),
        ("12.2", "535.54.03"),
        ("12.2.2", "535.104.05"),
        ("12.3", "545.23.06"),
        ("12.4", "550.54.14"),
        ("12.4.1", "550.54.15"),
        ("12.5", "555.42.02"),
        ("12.6", "560.28.03"),
        ("12.6.3", "560.35.05"),
        ("12.8", "570.26"),
        ("12.8.1", "570.124.06"),
        ("12.9", "575.51.03"),
        ("12.9.1", "575.57.08"),
        ("13.0", "580.65.06"),
        ("13.0.2", "580.95.05"),
        ("13.1", "590.44.01"),
        ("13.1.1", "590.48.01"),
        ("13.2", "595.45.04"),
        ("13.3", "610.43.02"),
        ("11.8", "520.61.05"),
    ],
)
def test_min_driver_for_cuda_follows_release_notes_table(cuda, driver):
    assert min_driver(cuda) == driver
    assert min_driver(cuda + ".0" if cuda.count(".") == 1 else cuda) == driver


@pytest.mark.parametrize(("cuda", "floor"), [("12.4", "525.60.13"), ("12.9.1", "525.60.13"),
                                             ("13.2", "580.65.06"), ("11.8", "450.80.02")])
def test_min_driver_minor_version_compat_floor(cuda, floor):
    assert min_driver(cuda, minor_version_compat=True) == floor


def test_table_driver_rises_with_each_release():
    rows = [driver for _, drivers in sorted(CUDA_TOOLKIT_DRIVERS.items()) for driver in drivers]
    assert all(a <= b for a, b in zip(rows, rows[1:]))
    assert rows[0] < rows[-1]


@pytest.mark.parametrize("cuda", ["12.7", "13.9", "14.0", "12.4.2", "10.2"])
def test_unknown_cuda_release_raises_clear_error(cuda):
    with pytest.raises(UnknownCudaReleaseError, match=rf"CUDA {cuda} is not in"):
        min_driver(cuda)


@pytest.mark.parametrize("cuda", ["twelve", "12", "12.4.1.1", ""])
def test_min_driver_rejects_garbage(cuda):
    with pytest.raises(InvalidVersionError, match="12.4 or 12.4.1"):
        min_driver(cuda)


def test_cuda_of_deb_version():
    assert NcclVersion.parse("2.18.3-1+cuda12.2").cuda[0] == 12
    assert NcclVersion.parse("2.27.7-1+cuda13.0").cuda[0] == 13
    assert CudnnVersion.parse("8.9.7.29-1+cuda12.2").cuda == (12, 2)
    assert NcclVersion.parse("2.18.3").cuda is None  # no +cudaX.Y build tag
    with pytest.raises(InvalidVersionError):
        NcclVersion.parse("garbage+cuda12.2")


def test_compatible_h200_stack_has_no_problems():
    assert stack(
        driver="580.95.05", cuda="13.0.2", cudnn="9.13.0.50", nccl="2.27.7-1+cuda13.0",
        fabricmanager="580.95.05", nvswitch=True, infiniband="mlnx_ofed", peermem=True,
    ) == []


def test_empty_stack_has_no_problems():
    assert stack() == []


def test_driver_too_old_for_cuda_names_both_versions():
    problems = stack(driver="535.161.08", cuda="12.4")
    assert len(problems) == 1
    assert problems[0].startswith("CUDA 12.4 needs NVIDIA driver >= 550.54.14; found 535.161.08.")
    assert "minor-version compatibility" in problems[0]


def test_driver_below_major_floor_does_not_mention_minor_compat():
    problems = stack(driver="470.63.01", cuda="12.2")
    assert problems == ["CUDA 12.2 needs NVIDIA driver >= 535.54.03; found 470.63.01."]


def test_minor_version_compat_accepts_major_floor_only():
    assert stack(driver="535.161.08", cuda="12.4", minor_version_compat=True) == []
    assert stack(driver="520.61.05", cuda="12.4", minor_version_compat=True) == [
        "CUDA 12.4 needs NVIDIA driver >= 550.54.14; found 520.61.05."
    ]


def test_exact_minimum_driver_passes_and_update_needs_newer():
    assert stack(driver="550.54.14", cuda="12.4") == []
    assert stack(driver="550.54.14", cuda="12.4.1") == [
        "CUDA 12.4.1 needs NVIDIA driver >= 550.54.15; found 550.54.14."
        " CUDA 12.x minor-version compatibility would run on >= 525.60.13 with"
        " restrictions; this collection requires the toolkit's own driver unless"
        " minor_version_compat=True."
    ]


def test_cuda_13_on_r570_driver_is_a_problem():
    problems = stack(driver="570.158.01", cuda="13.0")
    assert problems == ["CUDA 13.0 needs NVIDIA driver >= 580.65.06; found 570.158.01."]


def test_unknown_newer_cuda_is_reported_not_passed():
    problems = stack(driver="999.99.99", cuda="13.9")
    assert len(problems) == 1
    assert "CUDA 13.9 is not a release this collection knows" in problems[0]


@pytest.mark.parametrize(("kind", "text", "message"), [
    (DriverVersion, "latest", "not a version: 'latest' (a driver release looks like 550.90.12)"),
    (CudaRelease, "12.x", "not a version: '12.x' (a CUDA release looks like 12.4 or 12.4.1)"),
    (CudnnVersion, "nine", "not a version: 'nine' (a cuDNN version looks like 9.1.0.70-1 or 8.9.7.29-1+cuda12.2)"),
    (NcclVersion, "2.x", "not a version: '2.x' (an NCCL version looks like 2.21.5-1+cuda12.4)"),
    (DriverVersion, "??", "not a version: '??' (a driver release looks like 550.90.12)"),
])
def test_garbage_versions_never_reach_the_check(kind, text, message):
    # check_stack takes parsed versions: garbage is refused where the text is read, naming the form.
    with pytest.raises(InvalidVersionError) as raised:
        kind.parse(text)
    assert str(raised.value) == message


@pytest.mark.parametrize(("cudnn", "cuda"), [("8.9.7.29", "12.4"), ("8.9.7.29", "11.8"),
                                             ("9.1.0.70", "12.4"), ("9.1.0.70", "11.8"),
                                             ("9.17.0.29", "13.1")])
def test_cudnn_builds_per_cuda_major(cudnn, cuda):
    assert stack(cudnn=cudnn, cuda=cuda) == []


def test_cudnn_8_has_no_cuda_13_build():
    assert stack(cudnn="8.9.7.29", cuda="13.0") == [
        "cuDNN 8.9.7.29 has no build for CUDA 13.0; cuDNN 8.x supports CUDA 11.x, 12.x"
        " (cuDNN support matrix)."
    ]


def test_cudnn_9_on_cuda_11_needs_11_8():
    assert stack(cudnn="9.1.0.70", cuda="11.7") == [
        "cuDNN 9.1.0.70 supports CUDA 11.x only as 11.8; found CUDA 11.7."
    ]


def test_cudnn_deb_tag_must_match_cuda_major():
    assert stack(cudnn="8.9.7.29-1+cuda12.2", cuda="12.4") == []
    assert stack(cudnn="8.9.7.29-1+cuda11.8", cuda="12.4") == [
        "cuDNN 8.9.7.29-1+cuda11.8 is built for CUDA 11.x; CUDA 12.x needs a cuDNN"
        " build tagged +cuda12.y."
    ]


def test_unknown_cudnn_major():
    assert "cuDNN 7.6.5 is not a release" in stack(cudnn="7.6.5", cuda="12.4")[0]


def test_nccl_build_per_cuda_major():
    assert stack(nccl="2.21.5-1+cuda12.4", cuda="12.6") == []
    assert stack(nccl="2.18.3-1+cuda12.2", cuda="13.0") == [
        "NCCL 2.18.3-1+cuda12.2 is built for CUDA 12.x; CUDA 13.x needs a NCCL"
        " build tagged +cuda13.y."
    ]
    assert stack(nccl="2.21.5", cuda="12.4") == []
    assert stack(nccl="3.0.0") == ["NCCL 3.0.0 is not an NCCL 2.x release; needed: 2.x."]


def test_fabricmanager_must_equal_driver_exactly():
    assert stack(driver="550.54.15", fabricmanager="550.54.15-1", nvswitch=True) == []
    assert stack(driver="550.54.15", fabricmanager="550.54.14", nvswitch=True) == [
        "nvidia-fabricmanager must equal the driver version 550.54.15; found 550.54.14."
    ]
    # A newer fabric manager is as wrong as an older one.
    assert stack(driver="550.54.14", fabricmanager="550.90.07") == [
        "nvidia-fabricmanager must equal the driver version 550.54.14; found 550.90.07."
    ]


def test_nvswitch_without_fabricmanager():
    assert stack(driver="580.95.05", nvswitch=True) == [
        "NVSwitch systems need nvidia-fabricmanager 580.95.05, the driver version; found none."
    ]
    assert stack(nvswitch=True) == [
        "NVSwitch systems need nvidia-fabricmanager at the driver version; found none."
    ]
    assert stack(driver="580.95.05") == []


@pytest.mark.parametrize("ib", ["mlnx_ofed", "MLNX_OFED_LINUX-24.10-1.1.4.0", "doca_ofed",
                                "rdma-core", "inbox"])
def test_peermem_with_infiniband_stack(ib):
    assert stack(peermem=True, infiniband=ib) == []


def test_peermem_without_infiniband():
    expected = ("nvidia-peermem needs an InfiniBand stack (MLNX_OFED, DOCA-OFED or"
                " inbox rdma-core); found none.")
    assert stack(peermem=True) == [expected]
    assert stack(peermem=True, infiniband="") == [expected]
    assert "found unknown stack 'omnipath'" in stack(peermem=True, infiniband="omnipath")[0]
    assert stack(peermem=False) == []


def test_multiple_problems_are_all_reported():
    problems = stack(driver="535.161.08", cuda="12.4", nccl="2.18.3-1+cuda11.0",
                           fabricmanager="535.154.05", nvswitch=True, peermem=True)
    assert [p.split()[0] for p in problems] == ["CUDA", "NCCL", "nvidia-fabricmanager",
                                                "nvidia-peermem"]


# --- cuDNN 9 for CUDA 13 (libcudnn9-cuda-13 exists from cuDNN 9.12) ------------------------

def test_cudnn_9_before_9_12_has_no_cuda_13_build():
    problems = stack(cuda="13.0.2", cudnn="9.8.0.87-1")
    assert len(problems) == 1
    assert "cuDNN 9.8.0.87-1 has no build for CUDA 13.x: libcudnn9-cuda-13 exists from cuDNN 9.12 on" in problems[0]
    assert "cuda_cudnn_version" in problems[0]
    assert stack(cuda="13.0.2", cudnn="9.11.0.98-1") != []
    assert stack(cuda="13.0.2", cudnn="9.12.0.46-1") == []
    assert stack(cuda="13.2", cudnn="9.20.0.48-1") == []
    assert stack(cuda="12.8.1", cudnn="9.8.0.87-1") == []  # CUDA 12 builds go back to 9.0


# --- forward compatibility (cuda-compat-X-Y) --------------------------------------------------

def forward(driver: str, cuda: str, **kwargs) -> list[str]:
    from deepseek_infra.compat import check_driver_cuda
    return check_driver_cuda(DriverVersion.parse(driver), CudaRelease.parse(cuda), **kwargs)


def test_forward_compat_carries_newer_cuda_on_a_data_center_branch():
    (refused,) = forward("550.90.12", "12.8.1")
    assert refused.startswith("CUDA 12.8.1 needs NVIDIA driver >= 570.124.06; found 550.90.12.")
    assert forward("550.90.12", "12.8.1", forward_compat=True, gpus=("h100-sxm5-80gb",) * 8) == []
    assert forward("535.161.08", "13.0.2", forward_compat=True, gpus=("h200-sxm-141gb", "l40s")) == []
    # with a new enough driver nothing is needed, with or without the option
    assert forward("580.95.05", "13.0.2", forward_compat=True, gpus=None) == []


def test_forward_compat_is_refused_off_data_center_gpus_and_feature_branches():
    (workstation,) = forward("550.90.12", "12.8.1", forward_compat=True, gpus=("rtx-6000-ada", "h100-sxm5-80gb"))
    assert workstation.startswith("cuda_forward_compat: cuda-compat-12-8 (forward compatibility) is for NVIDIA "
                                  "data-center GPUs only; found rtx-6000-ada.")
    (unknown,) = forward("550.90.12", "12.8.1", forward_compat=True, gpus=(None,))
    assert "found unknown GPU" in unknown
    (none,) = forward("550.90.12", "12.8.1", forward_compat=True, gpus=())
    assert "found no GPU on this host" in none
    (feature,) = forward("565.57.01", "12.8.1", forward_compat=True, gpus=("h100-sxm5-80gb",))
    assert "found driver 565.57.01 (R565), not one of them" in feature and "R535" in feature


def test_forward_compat_hint_and_need():
    from deepseek_infra.compat import forward_compat_hint, needs_forward_compat
    hint = forward_compat_hint(DriverVersion("550.90.12"), CudaRelease.parse("12.8.1"))
    assert hint and "cuda-compat-12-8" in hint and "cuda_forward_compat=True" in hint
    assert forward_compat_hint(DriverVersion("565.57.01"), CudaRelease.parse("12.8.1")) is None
    assert forward_compat_hint(DriverVersion("550.90.12"), CudaRelease.parse("14.0")) is None
    assert needs_forward_compat(DriverVersion("550.90.12"), CudaRelease.parse("12.8.1"))
    assert not needs_forward_compat(DriverVersion("550.90.12"), CudaRelease.parse("12.8.1"), minor_version_compat=True)
    assert not needs_forward_compat(DriverVersion("580.95.05"), CudaRelease.parse("13.0"))
