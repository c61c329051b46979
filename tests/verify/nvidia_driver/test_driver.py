"""The NVIDIA driver is what the nvidia_driver role pins: loaded, held, its services up.

Expected values come from the role's defaults (roles/nvidia_driver/defaults.py); a fleet
deployed with other values names them in the environment, as its inventory does:
``DEEPSEEK_NVIDIA_DRIVER_VERSION`` and ``DEEPSEEK_NVIDIA_DRIVER_KERNEL_MODULES``.
Hardware-dependent checks follow what the host shows (lspci), as on a real server.
"""

from __future__ import annotations

import os

import pytest

from deepseek_infra.facts.nvidia import COMMAND as STATE_COMMAND
from deepseek_infra.facts.nvidia import PEERMEM_CONF, parse_nvidia_driver_state
from deepseek_infra.facts.pci import LSPCI_NVIDIA_COMMAND, parse_lspci_nvidia
from deepseek_infra.nvidia_packages import DriverSet
from deepseek_infra.nvidia_repo import distro_dir, preferences_path
from deepseek_infra.versions import DriverVersion
from roles.nvidia_driver.tasks import NVSWITCH_PCI_CLASS, has_switches, is_nvlink5, preferences, wanted_set
from roles.nvidia_driver.defaults import NvidiaDriverDefaults

DEFAULTS = NvidiaDriverDefaults()
DRIVER = (DriverVersion.parse(os.environ["DEEPSEEK_NVIDIA_DRIVER_VERSION"])
          if os.environ.get("DEEPSEEK_NVIDIA_DRIVER_VERSION") else DEFAULTS.nvidia_driver_version)
FLAVOR = os.environ.get("DEEPSEEK_NVIDIA_DRIVER_KERNEL_MODULES", DEFAULTS.nvidia_driver_kernel_modules)
CONFIG = DEFAULTS.model_copy(update={"nvidia_driver_version": DRIVER, "nvidia_driver_branch": DRIVER.branch,
                                     "nvidia_driver_kernel_modules": FLAVOR})
# The desktop closure a compute-only node must not have (Xorg driver, VDPAU, GL libraries).
DESKTOP_ONLY = ("xserver-xorg-video-nvidia", "nvidia-vdpau-driver", "nvidia-driver-libs")
GPU_CLASSES = ("0300", "0302")  # VGA / 3D controller


@pytest.fixture(scope="module")
def nvidia_pci(host) -> list[dict]:
    found = host.run(LSPCI_NVIDIA_COMMAND)
    if found.rc != 0:  # seen on a GPU VM image without pciutils (the base role installs it)
        pytest.fail(f"{host.backend.hostname}: {LSPCI_NVIDIA_COMMAND}: expected exit 0, found {found.rc}: "
                    f"{found.stderr.strip()} (is the base role's pciutils installed?)")
    return parse_lspci_nvidia(found.stdout.splitlines())


@pytest.fixture(scope="module")
def nvlink5(state) -> bool:
    return is_nvlink5(CONFIG, state)


@pytest.fixture(scope="module")
def nvswitch(nvidia_pci, nvlink5) -> bool:
    return has_switches(any(dev["class_id"] == NVSWITCH_PCI_CLASS for dev in nvidia_pci), nvlink5)


@pytest.fixture(scope="module")
def state(host) -> dict:
    return parse_nvidia_driver_state(host.run(STATE_COMMAND).stdout.splitlines())


@pytest.fixture(scope="module")
def distro(host) -> str:
    """NVIDIA's directory name for the host's distribution (debian12, ubuntu2404...)."""
    fields = dict(line.split("=", 1) for line in host.file("/etc/os-release").content_string.splitlines() if "=" in line)
    return distro_dir(fields.get("ID", "").strip('"'), fields.get("VERSION_ID", "").strip('"'))


@pytest.fixture(scope="module")
def wanted_packages(nvswitch, nvlink5, distro) -> DriverSet:
    return wanted_set(CONFIG, distro, nvswitch, nvlink5)


@pytest.fixture(scope="module")
def wanted(wanted_packages) -> dict:
    return dict(wanted_packages.packages)


def test_nvidia_smi_lists_every_gpu(host, nvidia_pci):
    gpus = [dev for dev in nvidia_pci if dev["class_id"] in GPU_CLASSES]
    smi = host.run("nvidia-smi -L")
    where = f"{host.backend.hostname}: nvidia-smi -L"
    assert smi.rc == 0, f"{where}: expected exit 0, found {smi.rc}: {smi.stdout.strip()}"
    listed = [line for line in smi.stdout.splitlines() if line.startswith("GPU ")]
    assert len(listed) == len(gpus), f"{where}: expected {len(gpus)} GPUs (lspci), found {len(listed)}"


def test_loaded_driver_matches_the_pin(host, state):
    smi = state["smi"]
    where = f"{host.backend.hostname}: nvidia-smi driver_version"
    assert smi["state"] != "mismatch", f"{where}: expected {DRIVER}, found a driver/library mismatch (reboot pending)"
    assert smi["state"] == "ok", f"{where}: expected {DRIVER}, found {smi['state']}: {smi['message']}"
    assert smi["version"] == DRIVER, f"{where}: expected {DRIVER}, found {smi['version']}"


def test_packages_at_pinned_versions_and_held(host, state, wanted):
    for name, version in sorted(wanted.items()):
        found = state["packages"].get(name)
        where = f"{host.backend.hostname}: package {name}"
        assert found is not None, f"{where}: expected {version} held, found not installed"
        assert found["version"] == version, f"{where}: expected {version}, found {found['version']}"
        assert found["held"], f"{where}: expected held (apt-mark hold), found not held"


def test_no_other_driver_packages(host, state, wanted):
    extra = sorted(set(state["packages"]) - set(wanted) - {n for n in state["packages"] if n.startswith("cuda-toolkit")})
    assert not extra, f"{host.backend.hostname}: NVIDIA driver packages: expected only {sorted(wanted)}, found also {extra}"


def test_no_desktop_driver_on_a_compute_node(host):
    if CONFIG.nvidia_driver_desktop:
        pytest.skip("nvidia_driver_desktop is on")
    found = [name for name in DESKTOP_ONLY if host.package(name).is_installed]
    assert not found, f"{host.backend.hostname}: expected NVIDIA's compute-only set, found desktop packages {found}"


def test_unnamed_driver_dependencies_follow_the_release(host, wanted):
    """The source pin holds the packages nobody names at the driver's release too."""
    for name in ("nvidia-alternative", "firmware-nvidia-gsp", "nvidia-kernel-support"):
        package = host.package(name)
        if package.is_installed:  # Debian's packaging; Ubuntu's names differ
            assert package.version.startswith(f"{DRIVER}-"), (
                f"{host.backend.hostname}: {name}: expected {DRIVER}, found {package.version}")


def test_apt_candidates_are_the_pinned_versions(host, wanted):
    """What apt would install next is what is pinned: an upgrade moves nothing."""
    for name, version in sorted(wanted.items()):
        policy = host.run(f"apt-cache policy {name}").stdout
        candidate = next((line.split(":", 1)[1].strip() for line in policy.splitlines()
                          if line.strip().startswith("Candidate:")), None)
        assert candidate == str(version), f"{host.backend.hostname}: {name}: expected candidate {version}, found {candidate}"


def test_apt_preferences_pin_the_driver(host, wanted_packages):
    path = preferences_path("nvidia_driver")
    pin = host.file(path)
    assert pin.exists, f"{host.backend.hostname}: {path}: expected the driver's apt pins, found none"
    expected = preferences(wanted_packages)
    assert pin.content_string == expected, f"{host.backend.hostname}: {path}: expected\n{expected}\nfound\n{pin.content_string}"


def test_persistenced_active(host):
    if not DEFAULTS.nvidia_driver_persistenced:
        pytest.skip("nvidia_driver_persistenced is off")
    service = host.service("nvidia-persistenced")
    where = f"{host.backend.hostname}: nvidia-persistenced"
    assert service.is_enabled, f"{where}: expected enabled, found disabled"
    assert service.is_running, f"{where}: expected active, found inactive"


def test_fabricmanager_and_nscq_active_at_driver_version(host, nvswitch, state, wanted_packages):
    if not nvswitch:
        pytest.skip(f"{host.backend.hostname}: no NVSwitch in lspci (class {NVSWITCH_PCI_CLASS}): no fabric manager")
    for part in ("fabricmanager", "nscq"):
        name = wanted_packages.name_of(part)
        found = state["packages"].get(name, {}).get("version")
        assert found == wanted_packages.packages[name], (
            f"{host.backend.hostname}: {name}: expected the driver's version {wanted_packages.packages[name]}, found {found}")
    name = wanted_packages.name_of("fabricmanager")
    where = f"{host.backend.hostname}: {name}"
    service = host.service("nvidia-fabricmanager")
    assert service.is_enabled and service.is_running, f"{where}: expected enabled and active, found not"


def test_peermem_configured_where_the_ib_stack_supports_it(host, state, in_container):
    """nvidia-peermem with an IB stack that has ib_core's peer-memory API (MLNX_OFED, DOCA-OFED,
    a patched inbox kernel); on inbox rdma-core without it the module cannot load, so it is not
    configured and GPUDirect RDMA goes through DMA-BUF."""
    if state["ib_stack"] is None:
        pytest.skip(f"{host.backend.hostname}: no InfiniBand stack installed (MLNX_OFED, DOCA-OFED, rdma-core)")
    if not host.run("ls /sys/class/infiniband 2>/dev/null | grep -q . || command -v ibstat >/dev/null && ibstat -l | grep -q .").rc == 0:
        pytest.skip(f"{host.backend.hostname}: no InfiniBand HCA")
    where = f"{host.backend.hostname}: {PEERMEM_CONF}"
    supported = state["peer_memory"] or state["ib_stack"] in ("mlnx_ofed", "doca_ofed")
    if not supported:
        assert state["peermem_conf"] == [], (
            f"{where}: expected no nvidia-peermem ({state['ib_stack']} without ib_core's peer-memory API: it cannot "
            f"load), found {state['peermem_conf']}")
        return
    assert state["peermem_conf"] == ["nvidia-peermem"], f"{where}: expected nvidia-peermem, found {state['peermem_conf']}"
    if in_container:
        pytest.skip(f"{host.backend.hostname}: a container cannot load nvidia-peermem (configured for boot)")
    assert state["peermem_loaded"], f"{host.backend.hostname}: nvidia_peermem: expected loaded, found not in /proc/modules"


def test_peermem_only_with_an_infiniband_stack(host, state):
    """nvidia-peermem registers with ib_core's peer-memory API: configured without a stack, it cannot load."""
    if not state["peermem_conf"]:
        pytest.skip(f"{host.backend.hostname}: nvidia-peermem not configured")
    where = f"{host.backend.hostname}: {PEERMEM_CONF}"
    assert state["peermem_conf"] == ["nvidia-peermem"], f"{where}: expected nvidia-peermem, found {state['peermem_conf']}"
    assert state["ib_stack"] is not None, f"{where}: expected an InfiniBand stack for nvidia-peermem, found none"
