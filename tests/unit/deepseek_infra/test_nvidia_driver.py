"""Driver package set, pin planning and state parsing (deepseek_infra/nvidia_driver.py)."""

import pytest

from deepseek_infra.nvidia_driver import (
    PackagePlan, apt_commands, parse_dpkg_status, parse_smi, plan_packages, reboot_reasons, target_packages,
)

from deepseek_infra.versions import DriverVersion, PackageVersion

A, B = DriverVersion.parse("550.90.12"), DriverVersion.parse("580.95.05")


def installed(packages: dict, held: bool = True) -> dict:
    """dpkg's view, parsed as the fact parses it."""
    return parse_dpkg_status([f"{name}\t{version}\t{'hi' if held else 'ii'} \t{'hold' if held else 'install'}"
                              for name, version in packages.items()])


def test_target_open_with_fabricmanager_is_compute_only():
    wanted = target_packages(A, "open", fabricmanager=A)
    assert wanted["nvidia-driver-cuda"] == wanted["nvidia-kernel-open-dkms"] == PackageVersion.parse("550.90.12-1")
    assert str(wanted["nvidia-fabricmanager-550"]) == str(wanted["libnvidia-nscq-550"]) == "550.90.12-1"
    # no desktop metapackage (Xorg, GL) and not the other kernel-module flavour
    assert not {"nvidia-driver", "nvidia-open", "nvidia-kernel-dkms", "cuda-drivers-550"} & set(wanted)


def test_target_desktop_proprietary_with_a_site_revision():
    wanted = target_packages(B, "proprietary", desktop=True, revision="2")
    assert str(wanted["cuda-drivers-580"]) == str(wanted["nvidia-driver"]) == "580.95.05-2"
    assert "nvidia-kernel-dkms" in wanted and "nvidia-kernel-open-dkms" not in wanted
    assert not any("fabricmanager" in name for name in wanted)


def test_plan_fresh_install():
    wanted = target_packages(A, "open")
    plan = plan_packages(wanted, {})
    assert plan.install == wanted and plan.hold == tuple(sorted(wanted))
    assert not plan.remove and not plan.unhold and plan.driver_from is None


def test_plan_nothing_to_do_when_installed_and_held():
    wanted = target_packages(A, "open", fabricmanager=A)
    plan = plan_packages(wanted, installed(wanted))
    assert plan.empty and apt_commands(plan) == []


def test_plan_holds_what_is_installed_but_not_held():
    wanted = target_packages(A, "open")
    plan = plan_packages(wanted, installed(wanted, held=False))
    assert not plan.changes_packages and plan.hold == tuple(sorted(wanted))
    assert apt_commands(plan) == ["apt-mark hold " + " ".join(sorted(wanted))]


def test_plan_branch_switch_unholds_removes_installs_holds():
    old = target_packages(A, "proprietary", fabricmanager=A)
    new = target_packages(B, "open", fabricmanager=B)
    plan = plan_packages(new, installed(old))
    # R580 renames fabric manager and NSCQ: the suffixed ones go in the same transaction.
    assert set(plan.remove) == {"nvidia-kernel-dkms", "nvidia-fabricmanager-550", "libnvidia-nscq-550"}
    assert set(plan.unhold) == (set(old) & set(new)) | set(plan.remove)
    assert plan.install == new and (plan.driver_from, plan.driver_to) == (A, B)
    commands = apt_commands(plan)
    assert commands[0].startswith("apt-mark unhold ")
    assert "nvidia-smi=580.95.05-1" in commands[1] and " nvidia-fabricmanager-550-" in commands[1]
    assert "nvidia-fabricmanager=580.95.05-1" in commands[1]
    assert "--allow-downgrades" in commands[1]
    assert commands[2] == "apt-mark hold " + " ".join(sorted(new))


def test_plan_leaves_unmanaged_packages_alone():
    wanted = target_packages(A, "open")
    plan = plan_packages(wanted, {**installed(wanted), **installed({"cuda-toolkit-12-4": "12.4.1-1"}, held=False)})
    assert plan.empty


def test_parse_dpkg_status_keeps_installed_and_holds():
    lines = ["nvidia-smi\t550.90.12-1\thi \thold", "libcuda1\t550.90.12-1\tii \tinstall",
             "nvidia-open\t\tun \tunknown", "cuda-drivers-550\t550.90.12-1\trc \tdeinstall", "garbage"]
    assert parse_dpkg_status(lines) == {
        "nvidia-smi": {"version": PackageVersion("550.90.12-1"), "held": True},
        "libcuda1": {"version": PackageVersion("550.90.12-1"), "held": False},
    }


def test_a_different_revision_is_another_version_to_install():
    wanted = target_packages(A, "open", revision="2")
    plan = plan_packages(wanted, installed(target_packages(A, "open")))
    assert plan.install == wanted and (plan.driver_from, plan.driver_to) == (A, A)
    # same driver, other packaging: the loaded module still matches, no reboot
    assert reboot_reasons(plan, A, parse_smi(0, "550.90.12"), A) == []


@pytest.mark.parametrize(("rc", "out", "state", "version"), [
    (0, "550.90.12\n550.90.12\n", "ok", "550.90.12"),
    (18, "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 565.57", "mismatch", "565.57"),
    (9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", "no-driver", None),
    (127, "", "missing", None),
    (None, "", "missing", None),
    (0, "550.90.12\n565.57.01\n", "no-driver", None),
])
def test_parse_smi(rc, out, state, version):
    parsed = parse_smi(rc, out)
    assert (parsed["state"], parsed["version"]) == (state, version and DriverVersion.parse(version))


def test_reboot_reason_is_the_same_on_the_switch_run_and_the_next():
    switch = plan_packages(target_packages(B, "open"), installed(target_packages(A, "open")))
    on_switch = reboot_reasons(switch, A, parse_smi(0, str(A)), B)
    after = reboot_reasons(PackagePlan(), None, parse_smi(18, "Driver/library version mismatch"), B)
    assert on_switch == after and "580.95.05" in on_switch[0]


def test_no_reboot_on_first_install_or_when_consistent():
    fresh = plan_packages(target_packages(A, "open"), {})
    assert reboot_reasons(fresh, None, parse_smi(127, ""), A) == []
    assert reboot_reasons(PackagePlan(), A, parse_smi(0, str(A)), A) == []
