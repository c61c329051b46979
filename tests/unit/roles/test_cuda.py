"""The cuda role's gate and variables (roles/cuda)."""

import pytest

from deepseek_infra.config import validate_host_data
from deepseek_infra.nvidia_driver import parse_dpkg_status
from roles.cuda.tasks import stack_problems, wanted_packages
from roles.cuda.defaults import CudaDefaults
from roles.nvidia_driver.defaults import NvidiaDriverDefaults
from roles.settings import settings_for

CUDA_12_8 = {"cuda_version": "12.8.1", "cuda_cudnn_version": "9.8.0.87-1", "cuda_nccl_version": "2.25.1-1+cuda12.8"}
CUDA_12_4 = {"cuda_version": "12.4.1", "cuda_cudnn_version": "9.1.0.70-1", "cuda_nccl_version": "2.21.5-1+cuda12.4"}


def installed(**versions):
    """dpkg's view of these packages, held, parsed as the DpkgPackages fact parses it."""
    return parse_dpkg_status([f"{name}\t{version}\thi \thold" for name, version in versions.items()])


def test_cuda_12_8_with_the_550_driver_is_refused_naming_both():
    r550 = NvidiaDriverDefaults(nvidia_driver_branch=550, nvidia_driver_version="550.90.12")
    problems = stack_problems(CudaDefaults(**CUDA_12_8), r550, {})
    assert len(problems) == 1
    assert "CUDA 12.8.1 needs NVIDIA driver >= 570.124.06; found 550.90.12" in problems[0]
    assert problems[0].startswith("pinned (nvidia_driver_version) driver: ")
    # ends naming the settings and the values that pass, and they do
    assert problems[0].endswith(
        " Change cuda_version (<= 12.4.1 runs on this driver), nvidia_driver_version (>= 570.124.06), "
        "nvidia_driver_minor_version_compat (True) or cuda_forward_compat (True installs cuda-compat-12-8; "
        "NVIDIA data-center GPUs only).")
    assert stack_problems(CudaDefaults(**CUDA_12_4), r550, {}) == []
    assert stack_problems(CudaDefaults(**CUDA_12_8), NvidiaDriverDefaults(nvidia_driver_branch=570,
                                                                          nvidia_driver_version="570.124.06"), {}) == []


def test_cuda_12_4_with_the_550_driver_passes():
    assert stack_problems(CudaDefaults(**CUDA_12_4), NvidiaDriverDefaults(), installed(**{"nvidia-smi": "550.90.12-1"})) == []


def test_the_installed_driver_is_checked_too():
    old = installed(**{"nvidia-smi": "535.161.08-1"})
    problems = stack_problems(CudaDefaults(**CUDA_12_4), NvidiaDriverDefaults(), old)
    assert len(problems) == 1
    # the pin (580.95.05) is new enough: the refusal says who replaces the installed driver
    assert problems[0].startswith("installed driver (deploy/nvidia_driver.py replaces it with 580.95.05): "
                                  "CUDA 12.4.1 needs NVIDIA driver >= 550.54.15; found 535.161.08.")
    assert problems[0].endswith(" Change cuda_version (<= 12.2.2 runs on this driver), nvidia_driver_version "
                                "(>= 550.54.15), nvidia_driver_minor_version_compat (True) or cuda_forward_compat "
                                "(True installs cuda-compat-12-4; NVIDIA data-center GPUs only).")
    assert stack_problems(CudaDefaults(**{**CUDA_12_4, "cuda_version": "12.2.2"}), NvidiaDriverDefaults(), old) == []


def test_minor_version_compat_accepts_12_8_on_550():
    driver = NvidiaDriverDefaults(nvidia_driver_minor_version_compat=True)
    assert stack_problems(CudaDefaults(**CUDA_12_8), driver, {}) == []


def test_nccl_built_for_another_cuda_major_is_refused():
    config = CudaDefaults(cuda_version="12.4.1", cuda_nccl_version="2.18.3-1+cuda11.8")
    assert stack_problems(config, NvidiaDriverDefaults(), {}) == [
        "NCCL 2.18.3-1+cuda11.8 is built for CUDA 11.x; CUDA 12.x needs a NCCL build tagged +cuda12.y. "
        "Change cuda_nccl_version (a +cuda12.y build) or cuda_version (11.x)."]
    # NCCL does not depend on the driver: reported once, with an installed driver beside the pin too
    # (a cuDNN without a build for the CUDA is refused earlier, by the setting's validator)
    other = installed(**{"nvidia-smi": "565.57.01-1"})
    bad = CudaDefaults(cuda_version="13.0.2", cuda_nccl_version="2.25.1-1+cuda12.8")
    assert [p.split(" ", 1)[0] for p in stack_problems(bad, NvidiaDriverDefaults(), other)] == ["installed", "NCCL"]


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


# --- Each version setting is parsed once per run: when the inventory is validated. ---------

# dpkg on a GPU node the cuda role deployed before: the driver, a toolkit (with the
# config-common siblings a real cuda-toolkit pulls in), cuDNN and NCCL, all held.
INSTALLED = {
    "nvidia-smi": "550.90.12-1", "libcuda1": "550.90.12-1", "nvidia-open": "550.90.12-1",
    "cuda-toolkit-12-2": "12.2.2-1", "cuda-toolkit-12-2-config-common": "12.2.140-1",
    "cuda-toolkit-12-config-common": "12.2.140-1", "cuda-toolkit-config-common": "12.2.140-1",
    "libcudnn9-cuda-12": "9.1.0.70-1", "libnccl2": "2.21.5-1+cuda12.4",
}
SETTINGS = {"nvidia_driver_branch": 550, "nvidia_driver_version": "550.90.12", **CUDA_12_4}


@pytest.fixture
def parses(monkeypatch):
    """Every ``parse`` of a typed version: (type, text, phase); phase is "fact" inside a
    fact's ``process()``, else what the test sets (validation, preparation)."""
    from deepseek_infra.versions import CudaRelease, DriverVersion, PackageVersion

    calls: list[tuple[str, str, str]] = []
    phase = {"now": "validation"}
    for kind in (CudaRelease, DriverVersion, PackageVersion):  # cuDNN / NCCL inherit PackageVersion's
        original = kind.__dict__["parse"].__func__

        def counted(cls, text, _original=original):
            calls.append((cls.__name__, text, phase["now"]))
            return _original(cls, text)

        monkeypatch.setattr(kind, "parse", classmethod(counted))
    return calls, phase


def fake_facts(monkeypatch, phase: dict, tmp_path) -> None:
    """Facts as a host answers them, parsed by the facts' own ``process()``; the rest at defaults."""
    from pyinfra.api.host import Host
    from pyinfra.facts.server import Arch

    from deepseek_infra.facts.nvidia import DpkgPackages, NvidiaDriverState

    dpkg = [f"{name}\t{version}\thi \thold" for name, version in INSTALLED.items()]
    output = {
        NvidiaDriverState: ["@@dpkg", *dpkg, "@@smi", "rc=0", "550.90.12", "@@module", "550.90.12",
                            "@@nouveau", f"blacklisted_by={tmp_path}/nouveau.conf", "@@headers", "release=6.1.0-28-amd64"],
        DpkgPackages: dpkg,
    }

    from deepseek_infra.facts.host import HostHardware
    from deepseek_infra.hardware import Hardware

    def get_fact(self, fact_class, *args, **kwargs):
        if fact_class is Arch:
            return "x86_64"
        if fact_class is HostHardware:  # a Debian 12 node: the driver's package names follow it
            return Hardware.from_sections({"os_release": {"id": "debian", "version_id": "12"}})
        fact = fact_class()
        if fact_class not in output:
            return fact.default()
        before, phase["now"] = phase["now"], "fact"
        try:
            return fact.process(output[fact_class])
        finally:
            phase["now"] = before

    monkeypatch.setattr(Host, "get_fact", get_fact)


def test_each_version_setting_is_parsed_once_over_a_driver_and_cuda_deploy(parses, monkeypatch, tmp_path):
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all
    from pyinfra.api.deploy import add_deploy

    from roles.cuda import tasks as cuda_role
    from roles.nvidia_driver import tasks as driver_role

    calls, phase = parses
    key = tmp_path / "mirror.asc"
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    data = {**SETTINGS, "nvidia_repo_source": "mirror", "nvidia_repo_mirror_url": "http://mirror/repo/",
            "nvidia_repo_mirror_key": str(key)}
    state = State(Inventory(([("@local", data)], {})), Config())
    connect_all(state)
    fake_facts(monkeypatch, phase, tmp_path)
    host = state.inventory.get_host("@local")

    settings = settings_for(host)
    phase["now"] = "preparation"
    add_deploy(state, driver_role.install, settings.nvidia_driver, settings.nvidia_repo, settings.cuda)
    add_deploy(state, cuda_role.install, settings.cuda, settings.nvidia_driver, settings.nvidia_repo)
    assert settings_for(host) is settings  # the run validates once

    assert len(state.get_op_order()) > 10  # both roles were prepared in full (not refused)
    outside_facts = sorted((kind, text) for kind, text, where in calls if where != "fact")
    assert outside_facts == sorted([
        ("CudaRelease", "12.4.1"), ("CudnnVersion", "9.1.0.70-1"), ("DriverVersion", "550.90.12"),
        ("NcclVersion", "2.21.5-1+cuda12.4"),
    ])
    assert all(where == "validation" for _, _, where in calls if where != "fact")
    # What hosts report is parsed where it is read: installed toolkits in NvidiaDriverState's
    # process() (its config-common siblings are never read as releases), packages in dpkg's.
    toolkits = [text for kind, text, where in calls if kind == "CudaRelease" and where == "fact"]
    assert toolkits and set(toolkits) == {"12.2.2"}


# --- forward compatibility, cuDNN for CUDA 13, NCCL per distribution, ld.so.conf ------------

R550 = {"nvidia_driver_branch": 550, "nvidia_driver_version": "550.90.12"}


def test_refusal_names_the_forward_compat_option():
    (problem,) = stack_problems(CudaDefaults(**CUDA_12_8), NvidiaDriverDefaults(**R550), {})
    assert "CUDA 12.8.1 needs NVIDIA driver >= 570.124.06; found 550.90.12." in problem
    assert problem.endswith(" or cuda_forward_compat (True installs cuda-compat-12-8; NVIDIA data-center GPUs only).")
    # not on a feature branch (R565), where cuda_forward_compat is refused
    (feature,) = stack_problems(CudaDefaults(**CUDA_12_8), NvidiaDriverDefaults(nvidia_driver_branch=565,
                                                                                nvidia_driver_version="565.57.01"), {})
    assert "cuda_forward_compat" not in feature and feature.endswith(
        " Change cuda_version (<= 12.6.3 runs on this driver), nvidia_driver_version (>= 570.124.06) or "
        "nvidia_driver_minor_version_compat (True).")


def test_forward_compat_on_h100_installs_cuda_compat_while_the_driver_is_older():
    config = CudaDefaults(**CUDA_12_8, cuda_forward_compat=True)
    r550 = NvidiaDriverDefaults(**R550)
    assert stack_problems(config, r550, {}, gpus=("h100-sxm5-80gb",) * 8) == []
    problems = stack_problems(config, r550, {}, gpus=("rtx-6000-ada",) * 2)
    assert problems and all("data-center GPUs only; found rtx-6000-ada" in p for p in problems)
    assert all(p.endswith(" Change cuda_version (<= 12.4.1 runs on this driver), nvidia_driver_version "
                          "(>= 570.124.06) or nvidia_driver_minor_version_compat (True).") for p in problems)
    assert str(wanted_packages(config, r550)["cuda-compat-12-8"]) == "570.124.06-1"
    assert "cuda-compat-12-8" not in wanted_packages(config, NvidiaDriverDefaults(nvidia_driver_version="580.95.05"))
    assert "cuda-compat-12-8" not in wanted_packages(CudaDefaults(**CUDA_12_8), r550)


def test_cudnn_without_a_build_for_cuda_13_is_refused_naming_host_and_field():
    data = {"cuda_version": "13.0.2", "cuda_cudnn_version": "9.8.0.87-1"}
    problems = validate_host_data("gpu-a01", data, (CudaDefaults,))[1]
    assert [(h, k) for h, k, _ in problems] == [("gpu-a01", "cuda_cudnn_version")]
    assert "libcudnn9-cuda-13 exists from cuDNN 9.12 on" in problems[0][2]
    assert "Change cuda_cudnn_version (>= 9.12) or cuda_version (11.8 or 12.x)" in problems[0][2]
    assert validate_host_data("gpu-a01", {**data, "cuda_cudnn_version": "9.12.0.46-1"}, (CudaDefaults,))[1] == []


def test_deploy_checks_the_repository_and_writes_no_ldconfig_file(monkeypatch, tmp_path, caplog):
    from pyinfra.api import Config, Inventory, State
    from pyinfra.api.connect import connect_all
    from pyinfra.api.deploy import add_deploy

    from roles.cuda import tasks as cuda_role

    key = tmp_path / "mirror.asc"
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    data = {**SETTINGS, "nvidia_repo_source": "mirror", "nvidia_repo_mirror_url": "http://mirror/repo/",
            "nvidia_repo_mirror_key": str(key)}
    state = State(Inventory(([("@local", data)], {})), Config())
    connect_all(state)
    fake_facts(monkeypatch, {"now": "test"}, tmp_path)
    host = state.inventory.get_host("@local")
    settings = settings_for(host)
    with caplog.at_level("WARNING"):
        add_deploy(state, cuda_role.install, settings.cuda, settings.nvidia_driver, settings.nvidia_repo)
    names = [name.rsplit(" | ", 1)[-1] for op in state.get_op_order() for name in state.op_meta[op].names]
    assert "Ensure no /etc/ld.so.conf.d/cuda.conf duplicates the toolkit packages' ld.so.conf.d files" in names
    assert not any("lists CUDA" in name for name in names)  # the role writes no ld.so.conf file
    assert "libnccl2=2.21.5-1+cuda12.4 on debian12: NVIDIA's debian12 repository is not known to carry libnccl2" in caplog.text
    assert any(name.startswith("Ensure the CUDA stack is installed at its pins") for name in names)
    (install,) = [op for op in state.get_op_order()
                  if state.op_meta[op].names and "CUDA stack is installed" in next(iter(state.op_meta[op].names))]
    from pyinfra.context import ctx_host, ctx_state
    with ctx_state.use(state), ctx_host.use(host):
        commands = [str(c) for c in state.ops[host][install].command_generator()]
    check = next(c for c in commands if "madison" in c)  # before the install, naming the distribution
    # libnccl2 is installed at its pin already (INSTALLED): only what changes is looked up
    assert "libnccl-dev=2.21.5-1+cuda12.4" in check and "libnccl2=" not in check and "for debian12" in check
    assert commands.index(check) < next(i for i, c in enumerate(commands) if "apt-get install" in c)
