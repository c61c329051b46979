"""Package sources and apt pins of the NVIDIA stack (deepseek_infra/nvidia_repo.py)."""

import pytest

from deepseek_infra.nvidia_repo import (
    NVIDIA_REPO_BASE, UnsupportedPlatformError, nvidia_repo_url, preferences_path, render_preferences, sources_entry,
)


@pytest.mark.parametrize(("os_id", "version", "arch", "expected"), [
    ("debian", "12", "x86_64", "debian12/x86_64/"),
    ("ubuntu", "22.04", "x86_64", "ubuntu2204/x86_64/"),
    ("ubuntu", "24.04", "aarch64", "ubuntu2404/sbsa/"),
    ("Ubuntu", "24.04", "arm64", "ubuntu2404/sbsa/"),
])
def test_repo_url_per_distro(os_id, version, arch, expected):
    assert nvidia_repo_url(os_id, version, arch) == f"{NVIDIA_REPO_BASE}/{expected}"


def test_repo_url_of_a_mirror_base():
    assert nvidia_repo_url("debian", "12", base="http://mirror.site:8080/cuda/") == (
        "http://mirror.site:8080/cuda/debian12/x86_64/")


@pytest.mark.parametrize(("os_id", "version", "arch", "named"), [
    ("debian", "11", "x86_64", "debian 11"), ("rocky", "9", "x86_64", "rocky 9"), ("debian", "12", "ppc64le", "ppc64le"),
])
def test_repo_url_refuses_unsupported_platforms(os_id, version, arch, named):
    with pytest.raises(UnsupportedPlatformError, match=named):
        nvidia_repo_url(os_id, version, arch)


def test_sources_entry_signed_flat_repository():
    text = sources_entry("http://m/compute/cuda/repos/debian12/x86_64", signed_by="/usr/share/keyrings/k.asc")
    assert "URIs: http://m/compute/cuda/repos/debian12/x86_64/\n" in text
    assert "Suites: /\n" in text and "Components" not in text
    assert text.endswith("Signed-By: /usr/share/keyrings/k.asc\n")


def test_sources_entry_bundle_is_trusted_and_unsigned_is_refused():
    assert sources_entry("file:/opt/deepseek/nvidia-bundle/", trusted=True).endswith(
        "URIs: file:/opt/deepseek/nvidia-bundle/\nSuites: /\nTrusted: yes\n")
    with pytest.raises(ValueError, match="signing keyring"):
        sources_entry("http://m/")


def test_render_preferences_groups_by_version_sorted():
    text = render_preferences(
        {"nvidia-smi": "550.90.12-1", "libcuda1": "550.90.12-1", "libnccl2": "2.21.5-1+cuda12.4"}, owner="x")
    stanzas = text.split("\n\n")
    assert stanzas[0].endswith("Package: libnccl2\nPin: version 2.21.5-1+cuda12.4\nPin-Priority: 1001")
    assert stanzas[1] == "Package: libcuda1 nvidia-smi\nPin: version 550.90.12-1\nPin-Priority: 1001\n"
    assert text.startswith("# Managed by deepseek-infra (x)")


@pytest.mark.parametrize("pins", [{}, {"a b": "1"}, {"a": ""}, {"a": "1 2"}])
def test_render_preferences_refuses_bad_input(pins):
    with pytest.raises(ValueError):
        render_preferences(pins, owner="x")


def test_preferences_path():
    assert preferences_path("nvidia_driver") == "/etc/apt/preferences.d/deepseek-nvidia-driver"


def test_debian13_has_its_own_signing_key():
    from deepseek_infra.nvidia_repo import repo_key

    assert nvidia_repo_url("debian", "13").endswith("/debian13/x86_64/")
    assert repo_key("debian13") == ("8793F200.pub", "02182E60104FCDC26EAE1B8597A5D4CB8793F200")
    assert repo_key("debian12")[0] == repo_key("ubuntu2404")[0] == "3bf863cc.pub"


def test_mirror_url_placeholders_are_filled_per_node():
    from deepseek_infra.nvidia_repo import UnsupportedPlatformError, mirror_url_for

    url = "http://mirror:8080/compute/cuda/repos/{distro}/{arch}/"
    assert mirror_url_for(url, "debian", "13") == "http://mirror:8080/compute/cuda/repos/debian13/x86_64/"
    assert mirror_url_for(url, "ubuntu", "22.04", "aarch64") == "http://mirror:8080/compute/cuda/repos/ubuntu2204/sbsa/"
    assert mirror_url_for("http://m/fixed/", None, None) == "http://m/fixed/"  # no placeholder: as given
    with pytest.raises(UnsupportedPlatformError, match="fedora"):
        mirror_url_for(url, "fedora", "41")
