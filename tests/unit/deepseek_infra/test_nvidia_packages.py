"""The driver's package map per distribution and branch (deepseek_infra/nvidia_packages.py),
the source-wide apt pin and the repository check before an install."""

import subprocess
from pathlib import Path

import pytest

from deepseek_infra.nvidia_driver import apt_commands, availability_check, plan_packages
from deepseek_infra.nvidia_packages import (
    DISTRO_FAMILY, MANAGED, ROWS, SMI, SWITCH_ROWS, UnknownDistroError, driver_set, source_pin,
)
from deepseek_infra.versions import DriverVersion, PackageVersion

R535, R550, R580, R595 = (DriverVersion.parse(v) for v in ("535.261.03", "550.90.07", "580.95.05", "595.71.05"))


def names(distro, driver, flavor="open", **kwargs):
    return {name: str(version) for name, version in driver_set(distro, driver, flavor, **kwargs).packages.items()}


@pytest.mark.parametrize("distro", ["debian12", "debian13"])
def test_debian_compute_only_set_has_no_branch_in_names(distro):
    assert names(distro, R580, fabricmanager=R580) == {
        "nvidia-driver-cuda": "580.95.05-1", "nvidia-kernel-open-dkms": "580.95.05-1", "nvidia-smi": "580.95.05-1",
        "libcuda1": "580.95.05-1", "libnvidia-ml1": "580.95.05-1", "nvidia-persistenced": "580.95.05-1",
        "nvidia-fabricmanager": "580.95.05-1", "libnvidia-nscq": "580.95.05-1"}


def test_ubuntu_below_590_carries_the_branch_and_0ubuntu1():
    # ubuntu2204 pins as published: libnvidia-compute-550=550.90.07-0ubuntu1, cuda-drivers-550=550.90.07-1
    assert names("ubuntu2204", R550, fabricmanager=R550) == {
        "libnvidia-compute-550": "550.90.07-0ubuntu1", "nvidia-dkms-550-open": "550.90.07-0ubuntu1",
        "nvidia-utils-550": "550.90.07-0ubuntu1", "nvidia-compute-utils-550": "550.90.07-0ubuntu1",
        "nvidia-fabricmanager-550": "550.90.07-1", "libnvidia-nscq-550": "550.90.07-1"}
    assert names("ubuntu2404", R580, "proprietary")["nvidia-dkms-580"] == "580.95.05-0ubuntu1"


def test_ubuntu_from_590_drops_the_suffix_and_uses_1ubuntu1():
    found = names("ubuntu2404", R595, fabricmanager=R595, desktop=True)
    assert found["libnvidia-compute"] == found["nvidia-dkms-open"] == found["nvidia-driver-open"] == "595.71.05-1ubuntu1"
    assert found["nvidia-fabricmanager"] == "595.71.05-1ubuntu1"  # as NVIDIA's 595 install line writes it
    assert not any(name[-1].isdigit() for name in found)


def test_no_debian_only_names_on_ubuntu():
    # Ubuntu has no nvidia-smi, libcuda1, libnvidia-ml1, nvidia-kernel-open-dkms or nvidia-driver-cuda package.
    for driver in (R535, R550, R580, R595):
        for flavor in ("open", "proprietary"):
            found = set(names("ubuntu2204", driver, flavor, desktop=True, fabricmanager=driver))
            assert not found & {"nvidia-smi", "libcuda1", "libnvidia-ml1", "nvidia-kernel-open-dkms",
                                "nvidia-driver-cuda"}, (driver, flavor)


def test_fabric_manager_and_nscq_rename_at_580_on_every_distro():
    for distro in DISTRO_FAMILY:
        old, new = names(distro, R550, fabricmanager=R550), names(distro, R580, fabricmanager=R580)
        assert {"nvidia-fabricmanager-550", "libnvidia-nscq-550"} <= set(old), distro
        assert {"nvidia-fabricmanager", "libnvidia-nscq"} <= set(new), distro


def test_nvlink5_adds_imex_and_nvsdm_at_the_driver_version_and_nvlsm_unpinned():
    found = driver_set("ubuntu2404", R580, "open", fabricmanager=R580, nvlink5=True)
    assert str(found.packages["nvidia-imex"]) == str(found.packages["libnvsdm"]) == "580.95.05-1"
    assert found.unpinned == ("nvlsm", "infiniband-diags")
    assert "nvidia-imex" not in driver_set("ubuntu2404", R580, "open", fabricmanager=R580).packages


def test_unconfirmed_rows_are_reported_not_hidden():
    # nvidia-driver-cuda came with R560: for R535/R550 on Debian it is not confirmed.
    assert "nvidia-driver-cuda" in driver_set("debian12", R550, "open").unconfirmed
    assert driver_set("debian12", R580, "open").unconfirmed == {}
    assert "nvidia-utils" in driver_set("ubuntu2404", R595, "open").unconfirmed


def test_every_row_cites_a_source_and_every_name_is_managed():
    for row in (*ROWS, *SWITCH_ROWS):
        assert len(row.source) > 20, row
        assert MANAGED.match(row.name.format(branch=580)), row.name
    assert SMI.match("nvidia-smi") and SMI.match("nvidia-utils-550") and SMI.match("nvidia-utils")
    # dependencies nobody names are never "managed" (so never removed)
    for name in ("nvidia-driver-libs", "nvidia-driver-bin", "nvidia-alternative", "firmware-nvidia-gsp",
                 "nvidia-driver-pinning-580", "libnvidia-container1"):
        assert not MANAGED.match(name), name


def test_unknown_distro_is_named():
    with pytest.raises(UnknownDistroError, match="rhel9"):
        driver_set("rhel9", R580, "open")


def test_ubuntu_branch_switch_removes_the_old_branch_names():
    old, new = driver_set("ubuntu2204", R550, "open").packages, driver_set("ubuntu2204", R580, "open").packages
    dpkg = {name: {"version": version, "held": True} for name, version in old.items()}
    plan = plan_packages(dict(new), dpkg)
    assert set(plan.remove) == set(old) and plan.install == dict(new)
    assert (plan.driver_from, plan.driver_to) == (R550, R580)  # told by nvidia-utils-<branch>


def test_source_pin_names_nvidias_sources_at_every_revision_of_the_release():
    text = source_pin(R580, owner="nvidia_driver")
    assert "Package: src:*nvidia*:any src:cuda-drivers*:any" in text
    assert "\nPin: version 580.95.05-*\n" in text and "Pin-Priority: 1001" in text


def fake_apt_cache(tmp_path: Path, madison: dict[str, list[str]]) -> dict:
    """An apt-cache on PATH that answers ``madison`` as apt does (`` pkg | version | source``)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    lines = "\n".join(f'  {name}) printf "%s\\n" ' + " ".join(
        f"' {name} | {version} | http://mirror/repo  Packages'" for version in versions) + " ;;"
        for name, versions in madison.items())
    script = bin_dir / "apt-cache"
    script.write_text(f'#!/bin/sh\n[ "$1" = madison ] || exit 2\ncase "$2" in\n{lines}\n  *) exit 0 ;;\nesac\n')
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def test_availability_check_passes_when_the_repository_has_every_exact_version(tmp_path):
    env = fake_apt_cache(tmp_path, {"nvidia-smi": ["580.105.08-1", "580.95.05-1"], "libcuda1": ["580.95.05-1"]})
    command = availability_check({"nvidia-smi": PackageVersion("580.95.05-1"),
                                  "libcuda1": PackageVersion("580.95.05-1")}, "debian12")
    assert subprocess.run(["sh", "-c", command], env=env).returncode == 0


def test_availability_check_names_missing_package_version_and_distro(tmp_path):
    env = fake_apt_cache(tmp_path, {"nvidia-smi": ["580.105.08-1"]})
    command = availability_check({"nvidia-smi": PackageVersion("580.95.05-1"),
                                  "nvidia-driver-cuda": PackageVersion("550.90.12-1")}, "debian12")
    result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == ("not in any configured repository for debian12: "
                                     "nvidia-driver-cuda=550.90.12-1 nvidia-smi=580.95.05-1")


def test_install_commands_check_the_repository_before_apt_get_install():
    wanted = dict(driver_set("debian12", R580, "open").packages)
    commands = apt_commands(plan_packages(wanted, {}), "debian12")
    assert commands[0].startswith("missing=''") and "apt-cache madison" in commands[0]
    assert commands[1].startswith("DEBIAN_FRONTEND=noninteractive apt-get install")


def test_a_failed_repository_check_leaves_the_holds_in_place(tmp_path):
    """The check runs before ``apt-mark unhold``: run as one ``&&`` chain (as pyinfra runs an
    operation's commands), a missing version stops the host before any hold is lifted."""
    old = dict(driver_set("debian12", DriverVersion.parse("550.90.12"), "open").packages)
    new = dict(driver_set("debian12", R580, "open").packages)
    installed = {name: {"version": v, "held": True} for name, v in old.items()}
    commands = apt_commands(plan_packages(new, installed), "debian12")
    marks = tmp_path / "apt-mark.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-cache").write_text("#!/bin/sh\nexit 0\n")  # madison: no version anywhere
    (bin_dir / "apt-mark").write_text(f"#!/bin/sh\necho \"$@\" >> {marks}\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    result = subprocess.run(["sh", "-c", " && ".join(commands)], env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "not in any configured repository for debian12" in result.stderr
    assert not marks.exists()
    assert [c.split()[0] for c in commands[1:]] == ["apt-mark", "DEBIAN_FRONTEND=noninteractive", "apt-mark"]


# --- Ubuntu, checked against real captures (tests/fixtures/nvidia/SOURCES.md) --------------------

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia"
R550_54 = DriverVersion.parse("550.54.15")


def repo_files(name: str) -> set[tuple[str, str]]:
    """(package, version) of every amd64 .deb in a captured ``dpkg-deb -c`` of NVIDIA's local repo."""
    import re

    text = (FIXTURES / "ubuntu2204" / name).read_text()
    return set(re.findall(r"/([a-z0-9.+-]+)_([0-9][^_]*)_amd64\.deb", text))


def test_ubuntu2204_r550_names_and_revisions_are_in_nvidias_repository():
    files = repo_files("dpkg-deb-c-nvidia-driver-local-repo-ubuntu2204-550.54.15.txt")
    for flavor in ("open", "proprietary"):
        wanted = driver_set("ubuntu2204", R550_54, flavor, fabricmanager=R550_54, desktop=True).packages
        missing = {(name, str(version)) for name, version in wanted.items()} - files
        assert not missing, f"{flavor}: not in NVIDIA's ubuntu2204 550.54.15 repository: {sorted(missing)}"


def test_ubuntu2204_r550_compute_set_is_what_the_desktop_metapackage_pins_exactly():
    # nvidia-driver-550's real control: the compute-only names at (= 550.54.15-0ubuntu1).
    control = (FIXTURES / "ubuntu2204" / "dpkg-deb-info-nvidia-driver-550_550.54.15-0ubuntu1.txt").read_text()
    compute = driver_set("ubuntu2204", R550_54, "proprietary").packages
    for part in ("libnvidia-compute-550", "nvidia-utils-550", "nvidia-compute-utils-550"):
        assert f"{part} (= {compute[part]})" in control, part
    # the kernel module only by a range: the name is right, the exact pin is ours
    assert "nvidia-dkms-550 (>= 550.54.15)" in control and "nvidia-dkms-550" in compute


def test_ubuntu2204_r580_fabric_manager_is_unsuffixed_at_dash_1():
    # apt on ubuntu2204: "nvidia-fabricmanager-580 is a virtual package provided by: nvidia-fabricmanager 580.65.06-1"
    capture = (FIXTURES / "ubuntu2204" / "apt-install-nvidia-fabricmanager-580-virtual.txt").read_text()
    r580 = DriverVersion.parse("580.65.06")
    found = driver_set("ubuntu2204", r580, "open", fabricmanager=r580).packages
    assert f" nvidia-fabricmanager {found['nvidia-fabricmanager']}" in capture
    assert "nvidia-fabricmanager-580" not in found and "virtual package" in capture


@pytest.mark.parametrize(("distro", "expected"), [("ubuntu2204", "ubuntu2204"), ("ubuntu2404", "ubuntu2404")])
def test_real_os_release_maps_to_nvidias_directory(distro, expected):
    from deepseek_infra.nvidia_repo import distro_dir

    fields = dict(line.split("=", 1) for line in (FIXTURES / distro / "os-release").read_text().splitlines() if "=" in line)
    assert distro_dir(fields["ID"].strip('"'), fields["VERSION_ID"].strip('"')) == expected
