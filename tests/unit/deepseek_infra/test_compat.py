import re

import pytest

from deepseek_infra import compat
from deepseek_infra.compat import (
    CUDA_TOOLKIT_DRIVERS, UnknownCudaReleaseError, check_driver_cuda, check_stack, max_cuda_for_driver,
    min_driver_for_cuda,
)
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


def change(problem: str) -> dict[str, str]:
    """The settings a problem's closing "Change a (v), b (w) or c (x)." clause names, with their values."""
    head, found, clause = problem.rpartition(" Change ")
    assert found and clause.endswith(")."), problem
    named = dict(re.findall(r"(\w+) \(([^()]*)\)", clause))
    options = [f"{setting} ({value})" for setting, value in named.items()]
    assert clause == (", ".join(options[:-1]) + " or " if len(options) > 1 else "") + options[-1] + ".", problem
    return named


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


# --- newest CUDA a driver runs (Table 3, updates included) ---------------------------------

@pytest.mark.parametrize(("driver", "cuda"), [
    ("550.90.12", "12.4.1"), ("550.54.15", "12.4.1"), ("550.54.14", "12.4.0"),  # 12.4.1 needs 550.54.15
    ("570.26", "12.8.0"), ("570.124.06", "12.8.1"), ("560.35.03", "12.6.2"), ("565.57.01", "12.6.3"),
    ("535.161.08", "12.2.2"), ("470.63.01", "11.4.2"), ("580.95.05", "13.0.2"), ("610.43.02", "13.3.1"),
    ("999.99.99", "13.3.1"), ("455.23", "11.1.0"),
])
def test_max_cuda_for_driver_is_the_newest_release_it_runs(driver, cuda):
    newest = max_cuda_for_driver(DriverVersion.parse(driver))
    assert str(newest) == cuda
    assert check_driver_cuda(DriverVersion.parse(driver), newest) == []


def test_max_cuda_for_driver_agrees_with_min_driver_over_the_whole_table():
    releases = [CudaRelease(major, minor, update) for (major, minor), row in sorted(CUDA_TOOLKIT_DRIVERS.items())
                for update in range(len(row))]
    for release, following in zip(releases, releases[1:] + [None]):
        driver = min_driver_for_cuda(release)
        newest = max_cuda_for_driver(driver)
        assert newest >= release and min_driver_for_cuda(newest) == driver  # updates sharing a driver: the last
        if following is not None and min_driver_for_cuda(following) > driver:
            assert newest == release


def test_max_cuda_for_driver_below_every_release_is_none():
    assert max_cuda_for_driver(DriverVersion("450.80.02")) is None
    assert max_cuda_for_driver(DriverVersion("455.22.99")) is None


# --- driver against CUDA: the refusal names what to change and the value that passes ---------

def test_every_setting_a_refusal_names_is_a_host_data_key():
    from roles.cuda.defaults import CudaDefaults
    from roles.nvidia_driver.defaults import NvidiaDriverDefaults

    named = {value for name, value in vars(compat).items() if name.isupper() and isinstance(value, str)}
    assert named == {"cuda_version", "cuda_cudnn_version", "cuda_nccl_version", "cuda_forward_compat",
                     "nvidia_driver_version", "nvidia_driver_fabricmanager_version", "nvidia_driver_peermem",
                     "nvidia_driver_minor_version_compat"}
    assert named <= set(CudaDefaults.model_fields) | set(NvidiaDriverDefaults.model_fields)


def test_driver_too_old_for_cuda_names_both_versions_and_settings():
    (problem,) = stack(driver="550.90.12", cuda="12.8.1")
    assert problem == (
        "CUDA 12.8.1 needs NVIDIA driver >= 570.124.06; found 550.90.12. CUDA 12.x minor-version compatibility "
        "would run it on >= 525.60.13, with restrictions. Change cuda_version (<= 12.4.1 runs on this driver), "
        "nvidia_driver_version (>= 570.124.06), nvidia_driver_minor_version_compat (True) or cuda_forward_compat "
        "(True installs cuda-compat-12-8; NVIDIA data-center GPUs only).")
    # each way out passes
    assert stack(driver="550.90.12", cuda="12.4.1") == stack(driver="570.124.06", cuda="12.8.1") == []
    assert stack(driver="550.90.12", cuda="12.8.1", minor_version_compat=True) == []
    assert stack(driver="550.90.12", cuda="12.8.1", forward_compat=True, gpus=("h100-sxm5-80gb",)) == []


@pytest.mark.parametrize(("driver", "cuda", "kwargs"), [
    ("550.90.12", "12.8.1", {}), ("535.161.08", "12.4", {}), ("470.63.01", "12.2", {}),
    ("520.61.05", "12.4", {"minor_version_compat": True}), ("570.158.01", "13.0", {}), ("565.57.01", "13.2.2", {}),
    ("550.54.14", "12.4.1", {}), ("440.33.01", "12.0", {}),
    ("565.57.01", "12.8.1", {"forward_compat": True, "gpus": ("h100-sxm5-80gb",)}),
    ("550.90.12", "12.8.1", {"forward_compat": True, "gpus": ("rtx-6000-ada",)}),
])
def test_the_values_a_driver_refusal_names_pass(driver, cuda, kwargs):
    (problem,) = forward(driver, cuda, **kwargs)
    named = change(problem)
    needed = named.pop("nvidia_driver_version")
    assert needed == f">= {min_driver(cuda)}" and forward(needed[3:], cuda, **kwargs) == []
    if "cuda_version" in named:  # absent only where no release runs on the driver (440.33.01)
        lower = named.pop("cuda_version")
        assert lower.endswith(" runs on this driver") and forward(driver, lower[3:].split()[0], **kwargs) == []
    else:
        assert max_cuda_for_driver(DriverVersion.parse(driver)) is None
    if "nvidia_driver_minor_version_compat" in named:
        assert named.pop("nvidia_driver_minor_version_compat") == "True"
        assert forward(driver, cuda, **{**kwargs, "minor_version_compat": True}) == []
    if "cuda_forward_compat" in named:
        assert not kwargs.get("forward_compat")
        release = CudaRelease.parse(cuda)
        package = f"cuda-compat-{release.major}-{release.minor}"
        assert named.pop("cuda_forward_compat") == f"True installs {package}; NVIDIA data-center GPUs only"
        assert forward(driver, cuda, forward_compat=True, gpus=("h100-sxm5-80gb",)) == []
    assert named == {}


def test_driver_below_major_floor_does_not_mention_minor_compat():
    problems = stack(driver="470.63.01", cuda="12.2")
    assert problems == ["CUDA 12.2 needs NVIDIA driver >= 535.54.03; found 470.63.01. Change cuda_version (<= 11.4.2 "
                        "runs on this driver), nvidia_driver_version (>= 535.54.03) or cuda_forward_compat (True "
                        "installs cuda-compat-12-2; NVIDIA data-center GPUs only)."]


def test_minor_version_compat_accepts_major_floor_only():
    assert stack(driver="535.161.08", cuda="12.4", minor_version_compat=True) == []
    # R520 is a feature branch: no forward compatibility offered
    assert stack(driver="520.61.05", cuda="12.4", minor_version_compat=True) == [
        "CUDA 12.4 needs NVIDIA driver >= 550.54.14; found 520.61.05. Change cuda_version (<= 11.8.0 runs on this "
        "driver) or nvidia_driver_version (>= 550.54.14)."
    ]


def test_exact_minimum_driver_passes_and_update_needs_newer():
    assert stack(driver="550.54.14", cuda="12.4") == []
    assert stack(driver="550.54.14", cuda="12.4.1") == [
        "CUDA 12.4.1 needs NVIDIA driver >= 550.54.15; found 550.54.14."
        " CUDA 12.x minor-version compatibility would run it on >= 525.60.13, with restrictions."
        " Change cuda_version (<= 12.4.0 runs on this driver), nvidia_driver_version (>= 550.54.15),"
        " nvidia_driver_minor_version_compat (True) or cuda_forward_compat (True installs cuda-compat-12-4;"
        " NVIDIA data-center GPUs only)."
    ]


def test_cuda_13_on_r570_driver_is_a_problem():
    problems = stack(driver="570.158.01", cuda="13.0")
    assert problems == ["CUDA 13.0 needs NVIDIA driver >= 580.65.06; found 570.158.01. Change cuda_version (<= 12.8.1 "
                        "runs on this driver), nvidia_driver_version (>= 580.65.06) or cuda_forward_compat (True "
                        "installs cuda-compat-13-0; NVIDIA data-center GPUs only)."]


def test_unknown_newer_cuda_is_reported_not_passed():
    problems = stack(driver="999.99.99", cuda="13.9")
    assert len(problems) == 1
    assert "CUDA 13.9 is not a release this collection knows" in problems[0]
    assert change(problems[0]) == {"cuda_version": "<= 13.3.1 runs on this driver"}
    # a driver no known release runs on: the known releases are named instead
    assert change(stack(driver="440.33.01", cuda="13.9")[0]) == {"cuda_version": "11.1 to 13.3.1"}


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
        " (cuDNN support matrix). Change cuda_cudnn_version (>= 9.12) or cuda_version (11.x or 12.x)."
    ]
    # the floor and the CUDA majors named pass
    assert stack(cudnn="9.12.0.46", cuda="13.0") == stack(cudnn="8.9.7.29", cuda="12.4") == []
    assert stack(cudnn="8.9.7.29", cuda="11.7") == [] and stack(cudnn="9.11.0.98", cuda="13.0") != []


def test_cudnn_9_on_cuda_11_needs_11_8():
    assert stack(cudnn="9.1.0.70", cuda="11.7") == [
        "cuDNN 9.1.0.70 supports CUDA 11.x only as 11.8; found CUDA 11.7."
        " Change cuda_cudnn_version (8.x) or cuda_version (11.8 or 12.x)."
    ]
    assert stack(cudnn="8.9.7.29", cuda="11.7") == stack(cudnn="9.1.0.70", cuda="11.8") == []
    assert stack(cudnn="9.1.0.70", cuda="12.4") == [] and stack(cudnn="9.1.0.70", cuda="13.0") != []


def test_cudnn_deb_tag_must_match_cuda_major():
    assert stack(cudnn="8.9.7.29-1+cuda12.2", cuda="12.4") == []
    assert stack(cudnn="8.9.7.29-1+cuda11.8", cuda="12.4") == [
        "cuDNN 8.9.7.29-1+cuda11.8 is built for CUDA 11.x; CUDA 12.x needs a cuDNN"
        " build tagged +cuda12.y. Change cuda_cudnn_version (a +cuda12.y build) or cuda_version (11.x)."
    ]
    assert stack(cudnn="8.9.7.29-1+cuda11.8", cuda="11.8") == []


@pytest.mark.parametrize(("cuda", "passing"), [("12.4", "8.x or 9.x"), ("13.0.2", ">= 9.12"), ("11.7", "8.x"),
                                               ("11.8", "8.x or 9.x"), (None, "8.x or 9.x")])
def test_unknown_cudnn_major_names_the_cudnn_releases_that_build_for_the_cuda(cuda, passing):
    (problem,) = stack(cudnn="7.6.5", cuda=cuda)
    assert problem.startswith("cuDNN 7.6.5 is not a release")
    assert change(problem) == {"cuda_cudnn_version": passing}


def test_nccl_build_per_cuda_major():
    assert stack(nccl="2.21.5-1+cuda12.4", cuda="12.6") == []
    assert stack(nccl="2.18.3-1+cuda12.2", cuda="13.0") == [
        "NCCL 2.18.3-1+cuda12.2 is built for CUDA 12.x; CUDA 13.x needs a NCCL"
        " build tagged +cuda13.y. Change cuda_nccl_version (a +cuda13.y build) or cuda_version (12.x)."
    ]
    assert stack(nccl="2.27.7-1+cuda13.0", cuda="13.0") == stack(nccl="2.18.3-1+cuda12.2", cuda="12.4") == []
    assert stack(nccl="2.21.5", cuda="12.4") == []
    assert stack(nccl="3.0.0") == [
        "NCCL 3.0.0 is not an NCCL 2.x release; needed: 2.x. Change cuda_nccl_version (2.x)."]
    assert change(stack(nccl="3.0.0", cuda="12.4")[0]) == {"cuda_nccl_version": "2.x, a +cuda12.y build"}


def test_fabricmanager_must_equal_driver_exactly():
    assert stack(driver="550.54.15", fabricmanager="550.54.15-1", nvswitch=True) == []
    assert stack(driver="550.54.15", fabricmanager="550.54.14", nvswitch=True) == [
        "nvidia-fabricmanager must equal the driver version 550.54.15; found 550.54.14."
        " Change nvidia_driver_fabricmanager_version (550.54.15, or None to follow the driver)."
    ]
    # A newer fabric manager is as wrong as an older one.
    (newer,) = stack(driver="550.54.14", fabricmanager="550.90.07")
    assert newer.startswith("nvidia-fabricmanager must equal the driver version 550.54.14; found 550.90.07.")
    assert change(newer) == {"nvidia_driver_fabricmanager_version": "550.54.14, or None to follow the driver"}


def test_nvswitch_without_fabricmanager():
    assert stack(driver="580.95.05", nvswitch=True) == [
        "NVSwitch systems need nvidia-fabricmanager 580.95.05, the driver version; found none."
        " Change nvidia_driver_fabricmanager_version (580.95.05)."
    ]
    assert stack(driver="580.95.05", fabricmanager="580.95.05", nvswitch=True) == []
    assert stack(nvswitch=True) == [
        "NVSwitch systems need nvidia-fabricmanager at the driver version; found none."
        " Change nvidia_driver_fabricmanager_version (= nvidia_driver_version)."
    ]
    assert stack(driver="580.95.05") == []


@pytest.mark.parametrize("ib", ["mlnx_ofed", "MLNX_OFED_LINUX-24.10-1.1.4.0", "doca_ofed",
                                "rdma-core", "inbox"])
def test_peermem_with_infiniband_stack(ib):
    assert stack(peermem=True, infiniband=ib) == []


def test_peermem_without_infiniband():
    expected = ("nvidia-peermem needs an InfiniBand stack (MLNX_OFED, DOCA-OFED or"
                " inbox rdma-core); found none. Change nvidia_driver_peermem (False).")
    assert stack(peermem=True) == [expected]
    assert stack(peermem=True, infiniband="") == [expected]
    (unknown,) = stack(peermem=True, infiniband="omnipath")
    assert "found unknown stack 'omnipath'" in unknown and change(unknown) == {"nvidia_driver_peermem": "False"}
    (no_api,) = stack(peermem=True, infiniband="rdma-core", peer_memory=False)
    assert "ib_register_peer_memory_client" in no_api and change(no_api) == {"nvidia_driver_peermem": "False"}
    assert stack(peermem=False) == [] and stack(peermem=False, infiniband="rdma-core", peer_memory=False) == []


def test_multiple_problems_are_all_reported():
    problems = stack(driver="535.161.08", cuda="12.4", nccl="2.18.3-1+cuda11.0",
                           fabricmanager="535.154.05", nvswitch=True, peermem=True)
    assert [p.split()[0] for p in problems] == ["CUDA", "NCCL", "nvidia-fabricmanager",
                                                "nvidia-peermem"]
    assert [sorted(change(p)) for p in problems] == [
        ["cuda_forward_compat", "cuda_version", "nvidia_driver_minor_version_compat", "nvidia_driver_version"],
        ["cuda_nccl_version", "cuda_version"], ["nvidia_driver_fabricmanager_version"], ["nvidia_driver_peermem"]]


# --- cuDNN 9 for CUDA 13 (libcudnn9-cuda-13 exists from cuDNN 9.12) ------------------------

def test_cudnn_9_before_9_12_has_no_cuda_13_build():
    problems = stack(cuda="13.0.2", cudnn="9.8.0.87-1")
    assert len(problems) == 1
    assert "cuDNN 9.8.0.87-1 has no build for CUDA 13.x: libcudnn9-cuda-13 exists from cuDNN 9.12 on" in problems[0]
    assert change(problems[0]) == {"cuda_cudnn_version": ">= 9.12", "cuda_version": "11.8 or 12.x"}
    assert stack(cuda="11.8", cudnn="9.8.0.87-1") == []
    assert stack(cuda="13.0.2", cudnn="9.11.0.98-1") != []
    assert stack(cuda="13.0.2", cudnn="9.12.0.46-1") == []
    assert stack(cuda="13.2", cudnn="9.20.0.48-1") == []
    assert stack(cuda="12.8.1", cudnn="9.8.0.87-1") == []  # CUDA 12 builds go back to 9.0


# --- forward compatibility (cuda-compat-X-Y) --------------------------------------------------

def forward(driver: str, cuda: str, **kwargs) -> list[str]:
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
    # what to change instead: the driver or the CUDA (minor-version compatibility where it reaches)
    assert change(workstation) == {"cuda_version": "<= 12.4.1 runs on this driver",
                                   "nvidia_driver_version": ">= 570.124.06",
                                   "nvidia_driver_minor_version_compat": "True"}
    assert change(feature) == {"cuda_version": "<= 12.6.3 runs on this driver", "nvidia_driver_version": ">= 570.124.06",
                               "nvidia_driver_minor_version_compat": "True"}
    (old,) = forward("535.161.08", "13.0.2", forward_compat=True, gpus=("rtx-6000-ada",))
    assert change(old) == {"cuda_version": "<= 12.2.2 runs on this driver", "nvidia_driver_version": ">= 580.95.05"}


def test_forward_compat_is_offered_on_data_center_branches_only():
    (production,) = forward("550.90.12", "12.8.1")
    assert change(production)["cuda_forward_compat"] == "True installs cuda-compat-12-8; NVIDIA data-center GPUs only"
    (feature,) = forward("565.57.01", "12.8.1")  # R565: the option would be refused
    assert "cuda_forward_compat" not in change(feature)
    assert "cuda_forward_compat" not in change(forward("550.90.12", "14.0")[0])  # unknown release: nothing to install


def test_forward_compat_need():
    from deepseek_infra.compat import needs_forward_compat
    assert needs_forward_compat(DriverVersion("550.90.12"), CudaRelease.parse("12.8.1"))
    assert not needs_forward_compat(DriverVersion("550.90.12"), CudaRelease.parse("12.8.1"), minor_version_compat=True)
    assert not needs_forward_compat(DriverVersion("580.95.05"), CudaRelease.parse("13.0"))
