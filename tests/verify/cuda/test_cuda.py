"""The CUDA stack is what the cuda role pinned: nvcc, NCCL and cuDNN at their pins, held,
not newer than the driver supports, and on the paths.

Expected values come from the settings the role recorded (/etc/deepseek/cuda.json,
validated again as CudaDefaults) and the role's own package planner; nothing is retyped.
"""

from __future__ import annotations

import json

import pytest

from deepseek_infra import cuda
from deepseek_infra.facts.nvidia import DpkgPackages
from deepseek_infra.nvidia_driver import parse_dpkg_status
from deepseek_infra.nvidia_repo import preferences_path, render_preferences
from deepseek_infra.versions import CudaRelease, PackageVersion
from roles.cuda.tasks import RECORD_FILE, wanted_packages
from roles.cuda.defaults import CudaDefaults


def _name(host) -> str:
    return host.backend.hostname


@pytest.fixture(scope="module")
def record(host) -> dict:
    found = host.file(RECORD_FILE)
    if not found.exists:
        pytest.skip(f"{_name(host)}: {RECORD_FILE}: no CUDA stack deployed here (deploy/cuda.py not run)")
    return json.loads(found.content_string)


@pytest.fixture(scope="module")
def settings(record) -> CudaDefaults:
    return CudaDefaults(**record["settings"])


@pytest.fixture(scope="module")
def release(host, settings) -> CudaRelease:
    if settings.cuda_version is None:
        pytest.skip(f"{_name(host)}: cuda_version is None: no toolkit wanted")
    return settings.cuda_version


@pytest.fixture(scope="module")
def wanted(host, settings, record) -> dict[str, PackageVersion]:
    """What the role pinned: the planner's set for these settings, plus cuda-compat-X-Y where
    forward compatibility carried the toolkit on an older driver (the role decided it)."""
    planned = wanted_packages(settings)
    recorded = {name: PackageVersion.parse(version) for name, version in record["packages"].items()}
    compat = {name: version for name, version in recorded.items() if name.startswith("cuda-compat-")}
    assert {n: v for n, v in recorded.items() if n not in compat} == planned, (
        f"{_name(host)}: {RECORD_FILE} packages: expected {planned} for its settings, found {recorded}")
    assert not compat or settings.cuda_forward_compat, (
        f"{_name(host)}: {RECORD_FILE}: expected no cuda-compat package without cuda_forward_compat, found {compat}")
    return recorded


@pytest.fixture(scope="module")
def packages(host) -> dict:
    command = DpkgPackages().command(patterns=cuda.DPKG_PATTERNS)
    return parse_dpkg_status(host.run(command).stdout.splitlines())


def test_nvcc_version_equals_the_pin(host, release):
    home = cuda.cuda_home(release)
    nvcc = host.run(f"{home}/bin/nvcc --version")
    where = f"{_name(host)}: {home}/bin/nvcc --version"
    assert nvcc.rc == 0, f"{where}: expected exit 0, found {nvcc.rc}: {nvcc.stderr.strip()}"
    expected = release.short
    assert cuda.parse_nvcc_release(nvcc.stdout) == expected, f"{where}: expected release {expected}, found {nvcc.stdout.strip()}"
    version = json.loads(host.file(f"{home}/version.json").content_string)["cuda"]["version"]
    full = release.full
    assert version == full, f"{_name(host)}: {home}/version.json cuda.version: expected {full}, found {version}"


def test_cuda_runtime_not_newer_than_the_driver_supports(host, release):
    smi = host.run("nvidia-smi")
    if smi.rc != 0:
        pytest.fail(f"{_name(host)}: nvidia-smi: expected a loaded driver to compare CUDA {release} with, "
                    f"found exit {smi.rc}: {smi.stdout.strip()[:200]}")
    supported = cuda.parse_smi_cuda(smi.stdout)
    toolkit = release.short
    assert supported and CudaRelease.parse(supported) >= CudaRelease.parse(toolkit), (
        f"{_name(host)}: nvidia-smi CUDA Version: expected >= {toolkit} (the toolkit), found {supported}")


def test_packages_at_pins_and_held(host, wanted, packages):
    if not wanted:
        pytest.skip(f"{_name(host)}: no CUDA package wanted")
    for name, version in sorted(wanted.items()):
        found = packages.get(name)
        where = f"{_name(host)}: package {name}"
        assert found is not None, f"{where}: expected {version} held, found not installed"
        assert found["version"] == version, f"{where}: expected {version}, found {found['version']}"
        assert found["held"], f"{where}: expected held (apt-mark hold), found not held"
    # Only the role's own names count: the toolkit also pulls cuda-toolkit-X-Y-config-common,
    # cuda-toolkit-X-config-common and cuda-toolkit-config-common (component versions, not
    # pinned), which dpkg's patterns match too; cuDNN >= 9.10's -headers is pinned with -dev.
    extra = sorted(name for name in set(packages) - set(wanted)
                   if cuda.MANAGED.match(name) and not cuda.CONFIG_COMMON.match(name))
    assert not extra, f"{_name(host)}: CUDA packages: expected only {sorted(wanted)}, found also {extra}"


def test_toolkit_config_common_packages_are_installed(host, release):
    # Unpinned: the shared two float to the newest toolkit's component version, as apt takes them.
    names = (f"cuda-toolkit-{release.major}-{release.minor}-config-common",
             f"cuda-toolkit-{release.major}-config-common", "cuda-toolkit-config-common")
    found = parse_dpkg_status(host.run(DpkgPackages().command(patterns=names)).stdout.splitlines())
    for name in names:
        assert name in found, f"{_name(host)}: package {name}: expected installed (the toolkit pulls it), found not"


def test_apt_preferences_pin_the_stack(host, wanted):
    if not wanted:
        pytest.skip(f"{_name(host)}: no CUDA package wanted")
    path = preferences_path("cuda")
    expected = render_preferences(wanted, owner="cuda")
    found = host.file(path).content_string if host.file(path).exists else None
    assert found == expected, f"{_name(host)}: {path}: expected\n{expected}\nfound\n{found}"


def test_nccl_header_matches_the_pin(host, settings):
    if settings.cuda_nccl_version is None or not settings.cuda_dev_packages:
        pytest.skip(f"{_name(host)}: no NCCL headers wanted (cuda_nccl_version / cuda_dev_packages)")
    header = host.file("/usr/include/nccl.h")
    expected = settings.cuda_nccl_version.release
    assert header.exists, f"{_name(host)}: /usr/include/nccl.h: expected NCCL {expected}, found no file"
    found = cuda.parse_header_version(header.content_string, "NCCL_")
    assert found == expected, f"{_name(host)}: nccl.h NCCL_MAJOR.MINOR.PATCH: expected {expected}, found {found}"


def test_cudnn_header_matches_the_pin(host, settings):
    if settings.cuda_cudnn_version is None or not settings.cuda_dev_packages:
        pytest.skip(f"{_name(host)}: no cuDNN headers wanted (cuda_cudnn_version / cuda_dev_packages)")
    expected = ".".join(settings.cuda_cudnn_version.release.split(".")[:3])
    found_path = host.run("ls /usr/include/cudnn_version.h /usr/include/*/cudnn_version*.h 2>/dev/null | head -n 1").stdout.strip()
    assert found_path, f"{_name(host)}: cudnn_version.h: expected cuDNN {expected}, found no header"
    found = cuda.parse_header_version(host.file(found_path).content_string, "CUDNN_")
    assert found == expected, f"{_name(host)}: {found_path}: expected cuDNN {expected}, found {found}"


def test_profile_file_and_nvcc_on_the_login_path(host, release):
    path, expected = cuda.PROFILE_FILE, cuda.render_profile(release)
    found = host.file(path).content_string if host.file(path).exists else None
    assert found == expected, f"{_name(host)}: {path}: expected\n{expected}\nfound\n{found}"
    path = host.run("bash -lc 'command -v nvcc'").stdout.strip()
    assert path == f"{cuda.cuda_home(release)}/bin/nvcc", (
        f"{_name(host)}: login shell PATH: expected nvcc from {cuda.cuda_home(release)}/bin, found {path or 'none'}")


def test_the_dynamic_linker_finds_the_toolkit_libcudart(host, release):
    """The toolkit packages' own ld.so.conf.d files (no duplicate of the role's) put the pinned
    toolkit's libcudart on the linker's path."""
    name = _name(host)
    machine = host.check_output("uname -m").strip()
    assert not host.file(cuda.LEGACY_LDCONFIG_FILE).exists, (
        f"{name}: {cuda.LEGACY_LDCONFIG_FILE}: expected absent (the packages ship 000_cuda.conf and "
        f"988_cuda-{release.major}.conf), found present")
    for path, directory in cuda.packaged_ldconfig_files(release.major, machine).items():
        found = host.file(path).content_string.split() if host.file(path).exists else None
        assert found == [directory], f"{name}: {path}: expected {directory}, found {found}"
    library = f"{cuda.cuda_home(release)}/targets/{cuda.TARGET_DIRS[machine]}/lib/libcudart.so.{release.major}"
    real_library = host.check_output(f"readlink -f {library}").strip()
    assert host.file(real_library).exists, f"{name}: {library}: expected the toolkit's libcudart, found none"
    # Every directory ldconfig scans, resolved: the pinned toolkit's library directory is one.
    scan = host.run("ldconfig -v -N -X 2>/dev/null")
    directories = [line.split(":", 1)[0] for line in scan.stdout.splitlines() if line.startswith("/")]
    resolved = {host.check_output(f"readlink -f {d}").strip() for d in directories}
    wanted = real_library.rsplit("/", 1)[0]
    assert wanted in resolved, f"{name}: ldconfig's directories: expected {wanted} among them, found {sorted(resolved)}"
    # An ELF libcudart is in the cache under its soname, from that directory.
    if host.run(f"head -c 4 {real_library} | grep -q ELF").rc == 0:
        cache = host.check_output("ldconfig -p")
        paths = [line.rsplit("=> ", 1)[1] for line in cache.splitlines()
                 if line.strip().startswith(f"libcudart.so.{release.major} ") and "=> " in line]
        found = sorted({host.check_output(f"readlink -f {p}").strip().rsplit("/", 1)[0] for p in paths})
        assert wanted in found, f"{name}: ldconfig -p libcudart.so.{release.major}: expected from {wanted}, found {found}"
