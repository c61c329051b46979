"""Variables of the infiniband and docker roles: bad values refused naming host and key."""

import pytest

from deepseek_infra.config import validate_host_data
from roles.docker.tasks import toolkit_pins
from roles.docker.defaults import DockerDefaults
from roles.infiniband.tasks import applies
from roles.infiniband.defaults import InfinibandDefaults

ROLES = (InfinibandDefaults, DockerDefaults)


def problems(data):
    return validate_host_data("gpu-a01", data, ROLES)[1]


def test_defaults_are_valid():
    assert problems({}) == []
    assert DockerDefaults().managed()["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"


@pytest.mark.parametrize(("data", "key", "text"), [
    ({"infiniband_ipoib_addresses": {"ib0": "10.10.0.0/16"}}, "infiniband_ipoib_addresses", "network address"),
    ({"infiniband_ipoib_addresses": {"ib0": "10.10.0.11"}}, "infiniband_ipoib_addresses", "prefix length"),
    ({"infiniband_ipoib_addresses": {"ib 0": "10.10.0.11/16"}}, "infiniband_ipoib_addresses", "interface name"),
    ({"infiniband_expected_rate_gbps": 0}, "infiniband_expected_rate_gbps", "greater than 0"),
    ({"infiniband_on_port_problem": "ignore"}, "infiniband_on_port_problem", "warn"),
    ({"infiniband_check_link_layers": ["RoCE"]}, "infiniband_check_link_layers", "InfiniBand"),
    ({"infiniband_kernel_modules": ["mlx5_ib", "x;y"]}, "infiniband_kernel_modules", "kernel module"),
    ({"docker_engine": "docker-ce"}, "docker_ce_repo_url", "required when docker_engine='docker-ce'"),
    ({"docker_engine": "podman"}, "docker_engine", "docker.io"),
    ({"docker_ce_repo_url": "ftp://x"}, "docker_ce_repo_url", "http"),
    ({"docker_nvidia_container_toolkit_version": "1.17.4"}, "docker_nvidia_container_toolkit_version", "revision"),
    ({"docker_data_root": "docker"}, "docker_data_root", "absolute"),
    ({"docker_daemon_extra": {"log-driver": "local"}}, "docker_daemon_extra", "dedicated setting"),
    ({"docker_storage_driver": "btrfs2"}, "docker_storage_driver", "overlay2"),
])
def test_bad_values_are_refused_naming_host_and_key(data, key, text):
    found = problems(data)
    assert any(host == "gpu-a01" and k == key and text in message for host, k, message in found), found


def test_infiniband_applies_to_the_group_or_detected_devices():
    assert applies(["gpu_nodes", "ib_fabric"], [], [])
    assert applies(["gpu_nodes"], ["mlx5_0"], [])
    assert applies(["gpu_nodes"], [], [{"ca": "mlx5_0"}])
    assert not applies(["gpu_nodes"], [], [])


def test_toolkit_pins_follow_the_version():
    pins = toolkit_pins(DockerDefaults(docker_nvidia_container_toolkit_version="1.17.3-1"))
    assert {name: str(version) for name, version in pins.items()} == {
        "nvidia-container-toolkit": "1.17.3-1", "nvidia-container-toolkit-base": "1.17.3-1"}
