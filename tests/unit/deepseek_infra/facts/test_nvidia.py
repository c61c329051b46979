"""NvidiaDriverState parsing (deepseek_infra/facts/nvidia.py), from a lab node's real output."""

from deepseek_infra.facts.nvidia import COMMAND, ib_stack_of, parse_nvidia_driver_state
from deepseek_infra.versions import CudaRelease, DriverVersion, PackageVersion

# Output of the fact's command on a lab HGX node after a switch to 565 (trimmed).
SWITCHED = """@@dpkg
libcuda1\t565.57.01-1\thi \thold
nvidia-fabricmanager\t\tun \tunknown
nvidia-fabricmanager-565\t565.57.01-1\thi \thold
nvidia-smi\t565.57.01-1\thi \thold
nvidia-persistenced\t565.57.01-1\tii \tinstall
cuda-toolkit-12-4\t12.4.1-1\thi \thold
cuda-toolkit-12-4-config-common\t12.4.127-1\tii \tinstall
cuda-toolkit-12-config-common\t12.4.127-1\tii \tinstall
cuda-toolkit-config-common\t12.4.127-1\tii \tinstall
@@smi
rc=18
Failed to initialize NVML: Driver/library version mismatch
NVML library version: 565.57
@@module
@@nouveau
blacklisted_by=/etc/modprobe.d/deepseek-nouveau.conf
@@ibstack
rdma-core=1
@@headers
release=6.1.0-28-amd64
@@peermem
conf=nvidia-peermem
""".splitlines()


def test_parse_switched_node():
    state = parse_nvidia_driver_state(SWITCHED)
    assert state["packages"]["nvidia-smi"] == {"version": PackageVersion("565.57.01-1"), "held": True}
    assert state["packages"]["nvidia-persistenced"]["held"] is False
    assert "nvidia-fabricmanager" not in state["packages"]
    # the toolkit the driver must run, read once here; its config-common siblings are no release
    assert state["toolkits"] == (CudaRelease(12, 4, 1),)
    assert state["smi"]["state"] == "mismatch" and state["smi"]["version"] == DriverVersion("565.57")
    assert state["loaded_module"] is None and state["nouveau_loaded"] is False
    assert state["nouveau_blacklisted_by"] == ["/etc/modprobe.d/deepseek-nouveau.conf"]
    assert state["ib_stack"] == "rdma-core"
    assert (state["kernel_release"], state["kernel_headers"]) == ("6.1.0-28-amd64", False)
    assert (state["peermem_conf"], state["peermem_loaded"]) == (["nvidia-peermem"], False)


def test_parse_real_host_sections():
    state = parse_nvidia_driver_state([
        "@@smi", "rc=0", "550.90.12", "@@module", "550.90.12", "@@nouveau", "loaded",
        "@@headers", "release=6.8.0-48-generic", "present=1", "@@peermem", "loaded=1",
    ])
    assert state["smi"] == {"state": "ok", "version": DriverVersion("550.90.12"), "message": ""}
    assert state["loaded_module"] == DriverVersion("550.90.12") and state["nouveau_loaded"] is True
    assert state["kernel_headers"] is True and state["peermem_loaded"] is True
    assert state["nouveau_blacklisted_by"] == [] and state["ib_stack"] is None


def test_empty_output_is_the_default():
    state = parse_nvidia_driver_state([])
    assert state["packages"] == {} and state["toolkits"] == () and state["smi"]["state"] == "missing"


def test_the_command_asks_dpkg_about_installed_toolkits_too():
    assert "'cuda-toolkit-[0-9]*'" in COMMAND


def test_an_unreadable_module_version_is_unknown_not_guessed():
    state = parse_nvidia_driver_state(["@@smi", "rc=0", "N/A", "@@module", "garbage"])
    assert state["loaded_module"] is None and state["smi"]["state"] == "no-driver"


def test_ib_stack_names():
    assert ib_stack_of("MLNX_OFED_LINUX-23.10-1.1.9.0:", False) == "mlnx_ofed"
    assert ib_stack_of("OFED-internal-24.10-1.1.4", False) == "doca_ofed"
    assert ib_stack_of(None, True) == "rdma-core"
    assert ib_stack_of(None, False) is None


def test_secure_boot_and_dkms_key_from_mokutil():
    # mokutil's real answers: "SecureBoot enabled", "SecureBoot disabled",
    # "EFI variables are not supported on this system" (BIOS), and --test-key's
    # "/var/lib/dkms/mok.pub is already enrolled".
    enrolled = parse_nvidia_driver_state(["@@secureboot", "sb=SecureBoot enabled", "dkms_key=1", "dkms_key_enrolled=1"])
    assert (enrolled["secure_boot"], enrolled["dkms_key"], enrolled["dkms_key_enrolled"]) == (True, True, True)
    assert parse_nvidia_driver_state(["@@secureboot", "sb=SecureBoot disabled"])["secure_boot"] is False
    assert parse_nvidia_driver_state(["@@secureboot", "sb=bios"])["secure_boot"] is False
    # no mokutil: the SecureBoot EFI variable's last byte
    assert parse_nvidia_driver_state(["@@secureboot", "efivar=1"])["secure_boot"] is True
    assert parse_nvidia_driver_state(["@@secureboot", "efivar=0"])["secure_boot"] is False
    # cannot be told: unknown, not guessed
    assert parse_nvidia_driver_state(["@@secureboot", "sb=EFI variables are not supported"])["secure_boot"] is None


def test_peer_memory_api_from_the_fact():
    assert parse_nvidia_driver_state(["@@peermem", "peer_memory=1"])["peer_memory"] is True
    assert parse_nvidia_driver_state(["@@peermem"])["peer_memory"] is False
    assert "ib_register_peer_memory_client" in COMMAND and "modules.symbols" in COMMAND


def test_the_command_asks_dpkg_about_every_distributions_driver_names():
    for pattern in ("'libnvidia-compute*'", "'nvidia-utils*'", "'libnvidia-nscq*'", "'nvidia-fabricmanager*'"):
        assert pattern in COMMAND, pattern


def test_nvlink5_from_an_hca_vpd_naming_sw_mng(tmp_path):
    """The fact's NVLink5 probe run against a sysfs tree: one HCA's VPD names SW_MNG (binary
    around it, as VPD is), the other's does not; a node without /sys/class/infiniband has none."""
    import subprocess

    probe = next(part for part in COMMAND.split("; ") if "SW_MNG" in part)
    root = tmp_path / "sys/class/infiniband"
    for device, vpd in (("mlx5_0", b"\x82\x10ConnectX-7\x90\x20PN\x08MCX75310SW_MNG\x00\x78"),
                        ("mlx5_1", b"\x82\x10ConnectX-7\x90\x20PN\x08MCX75310AAS\x00\x78")):
        (root / device / "device").mkdir(parents=True)
        (root / device / "device" / "vpd").write_bytes(vpd)
    out = subprocess.run(["sh", "-c", probe.replace("/sys/class/infiniband", str(root))],
                         capture_output=True, text=True).stdout
    lines = ["@@nvlink5", *out.replace(str(root), "/sys/class/infiniband").splitlines()]
    assert parse_nvidia_driver_state(lines)["nvlink5_devices"] == ["mlx5_0"]
    empty = subprocess.run(["sh", "-c", probe.replace("/sys/class/infiniband", str(tmp_path / "none"))],
                           capture_output=True, text=True)
    assert empty.stdout == "" and parse_nvidia_driver_state(["@@nvlink5"])["nvlink5_devices"] == []
