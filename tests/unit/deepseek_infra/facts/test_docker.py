"""DockerState, DpkgPackages and RdmaDevices facts: commands and parsing."""

from deepseek_infra.facts.docker import COMMAND, parse_docker_state
from deepseek_infra.facts.infiniband import RdmaDevices
from deepseek_infra.facts.nvidia import DpkgPackages
from deepseek_infra.versions import NcclVersion


def test_docker_state_parses_sections():
    lines = ["@@daemon", "{", '  "debug": true', "}", "", "@@driver", "550.90.12", "@@cdi",
             "cdiVersion: 0.5.0", "  - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.90.12"]
    state = parse_docker_state(lines)
    assert state["daemon_json"] == '{\n  "debug": true\n}'
    assert state == {**state, "driver": "550.90.12", "cdi_present": True, "cdi_current": True}


def test_docker_state_without_anything():
    assert parse_docker_state(["@@daemon", "", "@@driver", "@@cdi"]) == {
        "docker_major": None, "daemon_json": None, "driver": None, "cdi_present": False, "cdi_current": False}
    mismatch = parse_docker_state(["@@driver", "Failed to initialize NVML: Driver/library version mismatch"])
    assert mismatch["driver"] is None
    assert "/etc/docker/daemon.json" in COMMAND and "/etc/cdi/nvidia.yaml" in COMMAND


def test_dpkg_packages_quotes_patterns_and_parses_holds():
    fact = DpkgPackages()
    command = fact.command(patterns=("libcudnn[0-9]*", "libnccl2"))
    assert "'libcudnn[0-9]*' libnccl2" in command
    assert fact.process(["libnccl2\t2.21.5-1+cuda12.4\thi \thold", "libnccl-dev\t\tun \tunknown"]) == {
        "libnccl2": {"version": NcclVersion.parse("2.21.5-1+cuda12.4"), "held": True}}  # equal as dpkg compares


def test_rdma_devices():
    assert RdmaDevices().process(["mlx5_1", "mlx5_0", ""]) == ["mlx5_0", "mlx5_1"]


def test_docker_major_decides_cdi():
    # Debian 12's docker.io has no CDI; Docker has it (opt-in) from 25.
    assert parse_docker_state(["@@dockerd", "Docker version 20.10.24+dfsg1, build 297e128"])["docker_major"] == 20
    assert parse_docker_state(["@@dockerd", "Docker version 28.2.2, build e6534b4"])["docker_major"] == 28
    assert "dockerd --version" in COMMAND
