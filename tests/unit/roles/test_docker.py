"""The docker role's variables: bad values refused naming host and key; the toolkit pins."""

import pytest

from deepseek_infra.config import validate_host_data
from roles.docker.defaults import DockerDefaults
from roles.docker.tasks import toolkit_pins


def problems(data):
    return validate_host_data("gpu-a01", data, (DockerDefaults,))[1]


def test_defaults_are_valid():
    assert problems({}) == []
    assert DockerDefaults().managed()["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"


@pytest.mark.parametrize(("data", "key", "text"), [
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


def test_toolkit_pins_follow_the_version():
    pins = toolkit_pins(DockerDefaults(docker_nvidia_container_toolkit_version="1.17.3-1"))
    assert {name: str(version) for name, version in pins.items()} == {
        "nvidia-container-toolkit": "1.17.3-1", "nvidia-container-toolkit-base": "1.17.3-1",
        "libnvidia-container-tools": "1.17.3-1", "libnvidia-container1": "1.17.3-1"}


def test_the_lab_mirror_has_the_toolkits_real_dependency_shapes():
    # 1.17: libnvidia-container-tools (>=), so the libraries float unless pinned; 1.18: (=).
    from lab.mirror import catalog

    deps = {p.version: p.depends for p in catalog.packages() if p.name == "nvidia-container-toolkit"}
    assert "libnvidia-container-tools (>= 1.17.4-1)" in deps["1.17.4-1"]
    assert "libnvidia-container-tools (= 1.18.0-1)" in deps["1.18.0-1"]
    base = next(p for p in catalog.packages() if p.name == "nvidia-container-toolkit-base")
    assert {"usr/bin/nvidia-ctk", "usr/bin/nvidia-container-runtime", "usr/bin/nvidia-cdi-hook"} <= set(base.files)
