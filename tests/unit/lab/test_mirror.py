"""The lab's NVIDIA mirror catalog (lab/mirror/catalog.py): names, versions, consistency with the role."""

import re

import pytest

from lab.mirror import catalog, repo_url
from deepseek_infra.nvidia_driver import target_packages
from deepseek_infra.versions import DriverVersion

PACKAGES = catalog.packages()
INDEX = {(p.name, p.version) for p in PACKAGES}


def test_names_and_versions_follow_nvidias_debian12_repository():
    for name, version in [
        ("cuda-drivers-550", "550.90.12-1"), ("cuda-drivers-565", "565.57.01-1"), ("nvidia-open", "565.57.01-1"),
        ("nvidia-fabricmanager-550", "550.90.12-1"), ("cuda-toolkit-12-4", "12.4.1-1"),
        ("cuda-toolkit-12-8", "12.8.1-1"), ("libnccl2", "2.21.5-1+cuda12.4"), ("libnccl-dev", "2.25.1-1+cuda12.8"),
        ("libcudnn9-cuda-12", "9.1.0.70-1"), ("nvidia-container-toolkit", "1.17.4-1"),
        ("datacenter-gpu-manager", "1:3.3.9"), ("datacenter-gpu-manager-exporter", "3.3.9-3.6.1-1"),
    ]:
        assert (name, version) in INDEX, f"{name} {version} missing from the mirror"


@pytest.mark.parametrize("driver", sorted(catalog.DRIVERS))
@pytest.mark.parametrize("flavor", ["open", "proprietary"])
def test_every_package_the_role_wants_is_in_the_mirror(driver, flavor):
    release = DriverVersion.parse(driver)
    for name, version in target_packages(release, flavor, fabricmanager=release).items():
        assert (name, str(version)) in INDEX, f"role wants {name}={version}; mirror lacks it"


def test_versioned_dependencies_resolve_inside_the_mirror():
    for package in PACKAGES:
        for clause in package.depends:
            options = [re.match(r"^(\S+) \(= (\S+)\)$", alt.strip()) for alt in clause.split("|")]
            assert all(options), f"{package.name}: unexpected dependency {clause!r}"
            assert any((m.group(1), m.group(2)) in INDEX for m in options), f"{package.name}: {clause} unresolvable"


def test_controls_and_simulated_files_are_marked():
    for package in PACKAGES:
        control = package.control()
        assert control.startswith(f"Package: {package.name}\nVersion: {package.version}\n")
        assert "(LAB SIMULATION)" in control
    for path in catalog.SIM_DIR.iterdir():
        assert "LAB SIMULATION" in path.read_text(), f"{path.name} is not marked LAB SIMULATION"


def test_filled_placeholders_leave_none_behind():
    for package in PACKAGES:
        for rel, (content, _mode) in package.files.items():
            assert not re.search(r"@[A-Z_]+@", content), f"{package.name}: {rel} keeps a placeholder"
        for script, text in package.scripts.items():
            assert not re.search(r"@[A-Z_]+@", text), f"{package.name}: {script} keeps a placeholder"


def test_repo_url_has_nvidias_path():
    assert repo_url().endswith(":8080/compute/cuda/repos/debian12/x86_64/")
