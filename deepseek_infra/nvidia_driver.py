"""How to move a host to the NVIDIA driver's package set (pure, no pyinfra).

Which packages make up a driver on which distribution and branch is data, in
``deepseek_infra.nvidia_packages`` (``driver_set``). ``plan_packages()`` compares the
wanted set with what dpkg reports and returns what to unhold, install at exact versions,
remove (the other kernel-module flavour, another branch's packages or fabric manager) and
hold again; ``apt_commands()`` turns the plan into one apt transaction, after checking
that every version it installs is in a configured repository.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Final, Literal, TypedDict

from deepseek_infra.nvidia_packages import DPKG_PATTERNS, MANAGED, SMI, Flavor, driver_set
from deepseek_infra.versions import DriverVersion, PackageVersion

__all__ = ["DPKG_PATTERNS", "MANAGED", "Flavor", "target_packages"]

SMI_MISMATCH: Final = "Driver/library version mismatch"


class InstalledPackage(TypedDict):
    version: PackageVersion
    held: bool


def target_packages(driver: DriverVersion, flavor: Flavor, *, distro: str = "debian12",
                    fabricmanager: DriverVersion | None = None, desktop: bool = False, nvlink5: bool = False,
                    revision: str | None = None) -> dict[str, PackageVersion]:
    """Package -> exact version for a driver release on ``distro`` (``driver_set``'s packages).

    + driver: driver release, 580.95.05
    + flavor: ``"open"`` (open GPU kernel modules) or ``"proprietary"``
    + distro: NVIDIA's repository directory of the host (``debian12``, ``ubuntu2404``...)
    + fabricmanager: fabric manager (and NSCQ) release on NVSwitch systems, None for none
    + desktop: also the desktop metapackage (Xorg, GL); servers get the compute-only set
    + nvlink5: NVLink5 systems: IMEX and NVSDM too
    + revision: one Debian revision for all (None: the distribution's, from the map)
    """
    return dict(driver_set(distro, driver, flavor, desktop=desktop, fabricmanager=fabricmanager,
                           nvlink5=nvlink5, revision_override=revision).packages)


@dataclass(frozen=True)
class PackagePlan:
    """What to do to reach the wanted package set; empty when the host already has it."""

    install: dict[str, PackageVersion] = field(default_factory=dict)  # name -> version (missing or other)
    remove: tuple[str, ...] = ()  # managed packages installed but not wanted
    unhold: tuple[str, ...] = ()  # held packages that must move (install or remove)
    hold: tuple[str, ...] = ()  # wanted packages not held yet (after install)
    driver_from: DriverVersion | None = None  # installed driver version, when it changes
    driver_to: DriverVersion | None = None

    @property
    def changes_packages(self) -> bool:
        return bool(self.install or self.remove)

    @property
    def empty(self) -> bool:
        return not (self.install or self.remove or self.unhold or self.hold)


def plan_packages(wanted: dict[str, PackageVersion], installed: dict[str, InstalledPackage],
                  managed: re.Pattern[str] = MANAGED) -> PackagePlan:
    """Compare the wanted set with dpkg's view (``parse_dpkg_status``).

    + managed: names the calling role owns; installed ones not wanted are removed
      (the driver's set by default; the cuda role passes ``deepseek_infra.cuda.MANAGED``)
    """
    install = {name: version for name, version in wanted.items()
               if installed.get(name, {}).get("version") != version}
    remove = tuple(sorted(name for name in installed if managed.match(name) and name not in wanted))
    moving = set(install) | set(remove)
    unhold = tuple(sorted(name for name in moving if installed.get(name, {}).get("held")))
    hold = tuple(sorted(name for name in wanted if name in install or not installed[name]["held"]))
    # nvidia-smi's package (its name depends on distribution and branch) tells the driver.
    old = next((info["version"] for name, info in sorted(installed.items()) if SMI.match(name)), None)
    new = next((version for name, version in wanted.items() if SMI.match(name)), None)
    changed = new is not None and old is not None and old != new
    return PackagePlan(
        install=install, remove=remove, unhold=unhold, hold=hold,
        driver_from=DriverVersion.of_package(old) if changed and old is not None else None,
        driver_to=DriverVersion.of_package(new) if changed and new else None,
    )


def availability_check(packages: dict[str, PackageVersion], where: str) -> str:
    """A shell command that fails, naming each package, version and ``where`` (the
    distribution), when a configured repository does not carry that exact version.

    Run after ``apt-get update`` and before the install, so a package the map could not
    confirm (or a version the mirror lacks) stops the host with its name, not with apt's
    "held broken packages" halfway through.
    """
    pairs = " ".join(shlex.quote(f"{name}={version}") for name, version in sorted(packages.items()))
    return (
        f"missing=''; for pv in {pairs}; do n=${{pv%%=*}}; v=${{pv#*=}}; "
        "apt-cache madison \"$n\" 2>/dev/null | awk -F'|' '{gsub(/ /, \"\", $2); print $2}' | grep -qxF \"$v\" "
        "|| missing=\"$missing $n=$v\"; done; "
        f"[ -z \"$missing\" ] || {{ echo \"not in any configured repository for {where}:$missing\" >&2; exit 1; }}"
    )


def apt_commands(plan: PackagePlan, where: str | None = None) -> list[str]:
    """Shell commands carrying out ``plan`` in one apt transaction, holds around it.

    + where: the host's distribution: check first that every version installed is in a
      configured repository (``availability_check``); None skips the check
    """
    commands: list[str] = []
    # The check comes first: a version missing from the repositories stops the host with its
    # holds still in place.
    if plan.changes_packages and where and plan.install:
        commands.append(availability_check(plan.install, where))
    if plan.unhold:
        commands.append("apt-mark unhold " + " ".join(plan.unhold))
    if plan.changes_packages:
        items = [f"{name}={version}" for name, version in sorted(plan.install.items())]
        items += [f"{name}-" for name in plan.remove]  # "pkg-" removes in the same transaction
        commands.append(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades "
            "--allow-change-held-packages -o Dpkg::Options::=--force-confold " + " ".join(items)
        )
    if plan.hold:
        commands.append("apt-mark hold " + " ".join(plan.hold))
    return commands


def parse_dpkg_status(lines: list[str]) -> dict[str, InstalledPackage]:
    """Parse ``dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Abbrev}\\t${db:Status-Want}\\n'``.

    Only installed packages (status ``ii``/``hi``...: second letter ``i``) are kept, their
    versions parsed (``PackageVersion``) here, once.

    >>> parse_dpkg_status(["nvidia-smi\\t550.90.12-1\\thi \\thold", "libcuda1\\t\\tun \\tunknown"])
    {'nvidia-smi': {'version': PackageVersion(text='550.90.12-1'), 'held': True}}
    """
    result: dict[str, InstalledPackage] = {}
    for line in lines:
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 4:
            continue
        name, version, abbrev, want = parts[0], parts[1], parts[2], parts[3].strip()
        if len(abbrev) >= 2 and abbrev[1] == "i" and version:
            result[name] = {"version": PackageVersion.parse(version), "held": want == "hold"}
    return result


class SmiState(TypedDict):
    state: Literal["ok", "mismatch", "no-driver", "missing"]
    version: DriverVersion | None  # driver version nvidia-smi reports (ok), NVML library version (mismatch)
    message: str


def driver_or_none(text: str | None) -> DriverVersion | None:
    """A driver release a tool printed (nvidia-smi, /sys/module/nvidia/version); None when
    there is none or it is not one (then it is reported as unknown, never guessed)."""
    try:
        return DriverVersion.parse(text) if text else None
    except ValueError:
        return None


def parse_smi(rc: int | None, output: str) -> SmiState:
    """Classify ``nvidia-smi --query-gpu=driver_version --format=csv,noheader``.

    >>> parse_smi(18, "Failed to initialize NVML: Driver/library version mismatch\\nNVML library version: 565.57")["state"]
    'mismatch'
    """
    text = output.strip()
    if rc is None or rc == 127:
        return {"state": "missing", "version": None, "message": "nvidia-smi is not installed"}
    if SMI_MISMATCH in text:
        match = re.search(r"NVML library version: (\S+)", text)
        return {"state": "mismatch", "version": driver_or_none(match.group(1) if match else None), "message": text}
    if rc == 0 and text:
        versions = {line.strip() for line in text.splitlines() if line.strip()}
        version = driver_or_none(versions.pop()) if len(versions) == 1 else None
        if version is not None:
            return {"state": "ok", "version": version, "message": ""}
    return {"state": "no-driver", "version": None, "message": text or f"nvidia-smi exited with {rc}"}


def reboot_reasons(plan: PackagePlan, loaded_module: DriverVersion | None, smi: SmiState,
                   target: DriverVersion) -> list[str]:
    """Why the host must reboot for the loaded driver to match its packages (empty: it need not).

    + plan: the package change about to run (``driver_from`` -> ``driver_to``)
    + loaded_module: version of the loaded kernel module, None when none is loaded or unknown
    + smi: what nvidia-smi answers now (``parse_smi``)
    + target: the driver release the packages are (or will be) at

    The sentence does not depend on the run, so the run after a switch (which sees the
    mismatch instead of the switch) records the same reason and changes nothing.
    """
    switching = plan.driver_to is not None and plan.driver_from != plan.driver_to
    stale = (
        (switching and loaded_module is not None)
        or smi["state"] == "mismatch"
        or (loaded_module is not None and not switching and loaded_module != target)
    )
    if not stale:
        return []
    return [f"NVIDIA driver {target} is installed but another kernel module version is loaded: "
            f"reboot to load {target}"]
