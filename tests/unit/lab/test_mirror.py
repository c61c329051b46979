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
        ("cuda-drivers-550", "550.90.12-1"), ("cuda-drivers-580", "580.95.05-1"), ("nvidia-open", "580.105.08-1"),
        ("nvidia-fabricmanager-550", "550.90.12-1"), ("libnvidia-nscq-550", "550.90.12-1"),
        ("nvidia-fabricmanager", "580.95.05-1"), ("libnvidia-nscq", "580.105.08-1"),
        ("firmware-nvidia-gsp", "580.105.08-1"), ("nvidia-alternative", "550.90.12-1"), ("cuda-toolkit-12-4", "12.4.1-1"),
        ("cuda-toolkit-12-8", "12.8.1-1"), ("libnccl2", "2.21.5-1+cuda12.4"), ("libnccl-dev", "2.25.1-1+cuda12.8"),
        ("libcudnn9-cuda-12", "9.1.0.70-1"), ("nvidia-container-toolkit", "1.17.4-1"),
        ("libnvidia-container1", "1.17.4-1"), ("nvidia-container-toolkit", "1.18.0-1"),
        ("datacenter-gpu-manager", "1:3.3.9"), ("datacenter-gpu-manager-4-core", "1:4.5.2-1"),
        ("datacenter-gpu-manager-4-cuda12", "1:4.5.2-1"), ("datacenter-gpu-manager-exporter", "4.8.2-1"),
    ]:
        assert (name, version) in INDEX, f"{name} {version} missing from the mirror"


@pytest.mark.parametrize("driver", sorted(catalog.DRIVERS))
@pytest.mark.parametrize("flavor", ["open", "proprietary"])
@pytest.mark.parametrize("desktop", [False, True])
def test_every_package_the_role_wants_is_in_the_mirror(driver, flavor, desktop):
    release = DriverVersion.parse(driver)
    for name, version in target_packages(release, flavor, fabricmanager=release, desktop=desktop).items():
        assert (name, str(version)) in INDEX, f"role wants {name}={version}; mirror lacks it"


def test_dependencies_resolve_inside_the_mirror():
    provided = {name for p in PACKAGES for name in (p.name, *(v.split()[0] for v in p.provides))}
    for package in PACKAGES:
        for clause in package.depends:
            options = [re.match(r"^(\S+)(?: \((=|>=) (\S+)\))?$", alt.strip()) for alt in clause.split("|")]
            assert all(options), f"{package.name}: unexpected dependency {clause!r}"
            assert any(m.group(1) in provided for m in options), f"{package.name}: {clause} unresolvable"
            exact = [m for m in options if m.group(2) == "="]
            if exact and len(exact) == len(options):
                assert any((m.group(1), m.group(3)) in INDEX for m in exact), f"{package.name}: {clause} unresolvable"


def test_the_driver_closure_has_newer_versions_than_an_old_pin_names():
    """Finding 1: packages nobody names depend with (= version) and exist in newer versions,
    so a pin of only the named packages cannot hold an old release (the source pin does)."""
    named = set(target_packages(DriverVersion.parse("550.90.12"), "open", fabricmanager=DriverVersion.parse("550.90.12")))
    closure = {"nvidia-alternative", "firmware-nvidia-gsp", "nvidia-kernel-support", "libnvidia-ptxjitcompiler1"}
    assert not closure & named
    for name in closure:
        versions = {p.version for p in PACKAGES if p.name == name}
        assert {"550.90.12-1", "580.105.08-1"} <= versions, f"{name}: {sorted(versions)}"


def test_controls_and_simulated_files_are_marked():
    for package in PACKAGES:
        control = package.control()
        assert control.startswith(f"Package: {package.name}\n")
        assert f"\nVersion: {package.version}\n" in control
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
    assert repo_url("debian13").endswith(":8080/compute/cuda/repos/debian13/x86_64/")
    # the lab inventory's URL: the nvidia_repo role fills {distro} in per node
    assert repo_url(None).endswith(":8080/compute/cuda/repos/{distro}/x86_64/")
