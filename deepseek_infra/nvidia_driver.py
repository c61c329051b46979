"""The NVIDIA driver's package set and how to move a host to it (pure, no pyinfra).

Package names are those of NVIDIA's CUDA repository for Debian 12: per release
``nvidia-driver`` / ``nvidia-open`` metapackages, the kernel module as
``nvidia-kernel-dkms`` (proprietary) or ``nvidia-kernel-open-dkms`` (open),
``nvidia-driver-cuda``, ``nvidia-smi``, ``libnvidia-ml1``, ``libcuda1``,
``nvidia-persistenced``, the branch metapackage ``cuda-drivers-<branch>`` and
``nvidia-fabricmanager-<branch>``, all versioned ``<driver>-1``.

``plan_packages()`` compares the wanted set with what dpkg reports and returns what to
unhold, install at exact versions, remove (the other kernel-module flavour, another
branch's metapackage or fabric manager) and hold again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal, TypedDict

from deepseek_infra.versions import DriverVersion, PackageVersion

Flavor = Literal["open", "proprietary"]

# Every package this role may own; anything matching that is not wanted is removed.
MANAGED: Final = re.compile(
    r"^(cuda-drivers(-\d+)?|nvidia-open(-\d+)?|nvidia-driver|nvidia-driver-cuda|nvidia-smi|"
    r"libnvidia-ml1|libcuda1|nvidia-persistenced|nvidia-kernel-(open-)?dkms|nvidia-fabricmanager(-\d+)?)$"
)
# dpkg-query patterns covering MANAGED (what the fact asks dpkg about).
DPKG_PATTERNS: Final = (
    "cuda-drivers*", "nvidia-open*", "nvidia-driver", "nvidia-driver-cuda", "nvidia-smi",
    "libnvidia-ml1", "libcuda1", "nvidia-persistenced", "nvidia-kernel-dkms",
    "nvidia-kernel-open-dkms", "nvidia-fabricmanager*",
    "cuda-toolkit-[0-9]*",  # not managed here: the installed toolkits the driver is gated against
)
COMMON: Final = ("nvidia-driver", "nvidia-driver-cuda", "nvidia-smi", "libnvidia-ml1", "libcuda1",
                 "nvidia-persistenced")
KERNEL_PACKAGE: Final[dict[str, str]] = {"open": "nvidia-kernel-open-dkms", "proprietary": "nvidia-kernel-dkms"}
SMI_MISMATCH: Final = "Driver/library version mismatch"


class InstalledPackage(TypedDict):
    version: PackageVersion
    held: bool


def deb_version(driver: DriverVersion, revision: str = "1") -> PackageVersion:
    """550.90.12 -> ``550.90.12-1``."""
    return PackageVersion(f"{driver}-{revision}")


def fabricmanager_package(driver: DriverVersion) -> str:
    return f"nvidia-fabricmanager-{driver.branch}"


def target_packages(driver: DriverVersion, flavor: Flavor, *, fabricmanager: DriverVersion | None = None,
                    dkms: bool = True, revision: str = "1") -> dict[str, PackageVersion]:
    """Package -> exact Debian version for a driver release.

    + driver: driver release, 550.90.12
    + flavor: ``"open"`` (nvidia-open, open GPU kernel modules) or ``"proprietary"``
      (cuda-drivers-<branch>, the proprietary modules)
    + fabricmanager: fabric manager release to install (NVSwitch systems), None for none
    + dkms: include the DKMS kernel-module package (False: modules come precompiled)
    + revision: Debian revision of NVIDIA's packages (``1`` in the Debian repository)
    """
    version = deb_version(driver, revision)
    names = list(COMMON)
    names.append("nvidia-open" if flavor == "open" else f"cuda-drivers-{driver.branch}")
    if dkms:
        names.append(KERNEL_PACKAGE[flavor])
    packages = {name: version for name in names}
    if fabricmanager is not None:
        packages[fabricmanager_package(fabricmanager)] = deb_version(fabricmanager, revision)
    return packages


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
    old = installed.get("nvidia-smi", {}).get("version")
    new = wanted.get("nvidia-smi")
    changed = install.get("nvidia-smi") is not None and old is not None
    return PackagePlan(
        install=install, remove=remove, unhold=unhold, hold=hold,
        driver_from=DriverVersion.of_package(old) if changed and old is not None else None,
        driver_to=DriverVersion.of_package(new) if changed and new else None,
    )


def apt_commands(plan: PackagePlan) -> list[str]:
    """Shell commands carrying out ``plan`` in one apt transaction, holds around it."""
    commands: list[str] = []
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
