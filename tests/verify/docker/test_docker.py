"""Docker with the NVIDIA runtime, as the docker role configured it: running, daemon.json
holding every managed key (merged: other keys kept), `docker info` listing the nvidia
runtime, the container toolkit pinned and held, and a CDI spec for the loaded driver.

Expected values come from the settings the role recorded (/etc/deepseek/docker.json,
validated again as DockerDefaults).
"""

from __future__ import annotations

import json

import pytest

from deepseek_infra.docker_config import (
    CDI_SPEC,
    DAEMON_JSON,
    NVIDIA_RUNTIME,
    cdi_spec_current,
    is_merged,
)
from deepseek_infra.facts.nvidia import DpkgPackages
from deepseek_infra.nvidia_driver import parse_dpkg_status
from deepseek_infra.facts.docker import docker_major
from roles.docker.tasks import CDI_DOCKER_MAJOR, RECORD_FILE, TOOLKIT_PACKAGES, toolkit_pins
from roles.docker.defaults import DockerDefaults


def _name(host) -> str:
    return host.backend.hostname


@pytest.fixture(scope="module")
def settings(host) -> DockerDefaults:
    record = host.file(RECORD_FILE)
    if not record.exists:
        pytest.skip(f"{_name(host)}: {RECORD_FILE}: Docker not deployed here (deploy/docker.py not run)")
    return DockerDefaults(**json.loads(record.content_string)["settings"])


@pytest.fixture(scope="module")
def info(host, settings) -> dict:
    result = host.run("docker info --format '{{json .}}'")
    assert result.rc == 0, f"{_name(host)}: docker info: expected exit 0, found {result.rc}: {result.stderr.strip()}"
    return json.loads(result.stdout)


def test_docker_running_and_enabled(host, settings):
    service = host.service("docker")
    assert service.is_enabled, f"{_name(host)}: docker.service: expected enabled, found disabled"
    assert service.is_running, f"{_name(host)}: docker.service: expected active, found inactive"


def test_daemon_json_holds_the_managed_keys(host, settings):
    found = json.loads(host.file(DAEMON_JSON).content_string)
    managed = settings.managed()
    assert is_merged(found, managed), f"{_name(host)}: {DAEMON_JSON}: expected to contain {managed}, found {found}"


def test_docker_info_lists_the_nvidia_runtime(host, info):
    runtimes = sorted(info.get("Runtimes") or {})
    assert NVIDIA_RUNTIME in runtimes, f"{_name(host)}: docker info Runtimes: expected {NVIDIA_RUNTIME}, found {runtimes}"


def test_docker_info_matches_the_settings(host, settings, info):
    checks = [("LoggingDriver", settings.docker_log_driver)]
    if settings.docker_data_root:
        checks.append(("DockerRootDir", settings.docker_data_root))
    if settings.docker_storage_driver:
        checks.append(("Driver", settings.docker_storage_driver))
    if settings.docker_default_runtime:
        checks.append(("DefaultRuntime", settings.docker_default_runtime))
    for key, expected in checks:
        assert info.get(key) == expected, f"{_name(host)}: docker info {key}: expected {expected!r}, found {info.get(key)!r}"


def test_container_toolkit_pinned_and_held(host, settings):
    found = parse_dpkg_status(host.run(DpkgPackages().command(patterns=TOOLKIT_PACKAGES)).stdout.splitlines())
    for name, version in toolkit_pins(settings).items():
        got = found.get(name)
        where = f"{_name(host)}: package {name}"
        assert got is not None, f"{where}: expected {version} held, found not installed"
        assert got["version"] == version and got["held"], f"{where}: expected {version} held, found {got}"


def test_cdi_spec_names_the_loaded_driver(host, settings):
    if not settings.docker_cdi:
        pytest.skip("docker_cdi is off")
    major = docker_major(host.run("dockerd --version").stdout)
    if major is not None and major < CDI_DOCKER_MAJOR:
        pytest.skip(f"{_name(host)}: Docker {major} has no CDI (>= {CDI_DOCKER_MAJOR}): GPUs through the nvidia runtime")
    if tuple(settings.docker_nvidia_container_toolkit_version.parts[:2]) >= (1, 18):
        pytest.skip(f"{_name(host)}: toolkit >= 1.18 keeps its own spec (nvidia-cdi-refresh, /var/run/cdi)")
    smi = host.run("nvidia-smi --query-gpu=driver_version --format=csv,noheader")
    if smi.rc != 0:
        pytest.skip(f"{_name(host)}: no loaded NVIDIA driver (nvidia-smi exit {smi.rc}): no CDI spec expected yet")
    driver = smi.stdout.split()[0]
    spec = host.file(CDI_SPEC)
    assert spec.exists, f"{_name(host)}: {CDI_SPEC}: expected a CDI spec for driver {driver}, found none"
    assert cdi_spec_current(spec.content_string, driver), (
        f"{_name(host)}: {CDI_SPEC}: expected libraries of driver {driver} (.so.{driver}), found another driver's")
