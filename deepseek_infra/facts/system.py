"""System facts: virtualization/container detection and ``/etc/os-release``."""

from __future__ import annotations

import re
import shlex
from typing import TypedDict

from pyinfra.api import FactBase
from typing_extensions import override

# Every probe prints one "key=value" line; systemd-detect-virt may be absent (minimal
# images), so the marker files and PID 1's cgroup path back it up. Ends in `true` because
# a failed `[ -e ]` probe must not fail the fact.
VIRTUALIZATION_COMMAND = (
    'echo "vm=$(systemd-detect-virt --vm 2>/dev/null)"; '
    'echo "container=$(systemd-detect-virt --container 2>/dev/null)"; '
    "[ -e /.dockerenv ] && echo dockerenv=1; "
    "[ -e /run/.containerenv ] && echo containerenv=1; "
    "echo \"cgroup=$(grep -o -E 'docker|libpod|lxc|kubepods' /proc/1/cgroup 2>/dev/null | head -n 1)\"; "
    # Without systemd-detect-virt, the CPU's hypervisor bit (and lscpu's vendor) still tell a VM.
    "grep -qw hypervisor /proc/cpuinfo 2>/dev/null && "
    "echo \"hypervisor=$(LC_ALL=C lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p')\"; "
    "true"
)
# /usr/lib/os-release is the spec's fallback location when /etc/os-release is absent.
OS_RELEASE_COMMAND = "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null || true"

# Names follow systemd-detect-virt's vocabulary so both sources read the same.
_CGROUP_CONTAINERS = {"docker": "docker", "libpod": "podman", "lxc": "lxc", "kubepods": "container-other"}
# lscpu's "Hypervisor vendor" -> systemd-detect-virt --vm; anything else is "vm-other".
_HYPERVISOR_VENDORS = {"KVM": "kvm", "Microsoft": "microsoft", "VMware": "vmware", "Xen": "xen",
                       "ACRN": "acrn", "QNX": "qnx", "bhyve": "bhyve"}


class VirtualizationInfo(TypedDict):
    container: str | None
    vm: str | None


def empty_virtualization() -> VirtualizationInfo:
    return {"container": None, "vm": None}


def parse_virtualization(lines: list[str]) -> VirtualizationInfo:
    """Combine systemd-detect-virt with container marker files and cgroup hints.

    >>> parse_virtualization(["vm=kvm", "container=none", "dockerenv=1", "cgroup="])
    {'container': 'docker', 'vm': 'kvm'}
    """
    probes: dict[str, str] = {}
    for line in lines:
        key, _, value = line.strip().partition("=")
        probes[key] = value.strip()

    def detected(key: str) -> str | None:
        value = probes.get(key, "")
        return value if value and value != "none" else None

    container = (
        detected("container")
        or ("docker" if probes.get("dockerenv") else None)
        or ("podman" if probes.get("containerenv") else None)
        or _CGROUP_CONTAINERS.get(probes.get("cgroup", ""))
    )
    vm = detected("vm")
    if vm is None and not probes.get("vm") and "hypervisor" in probes:  # no systemd-detect-virt
        vm = _HYPERVISOR_VENDORS.get(probes["hypervisor"], "vm-other")
    return {"container": container, "vm": vm}


class Virtualization(FactBase[VirtualizationInfo]):
    """The hypervisor and container runtime this host runs under (``None`` = bare).

    .. code:: python

        {"container": "docker", "vm": "kvm"}
    """

    default = staticmethod(empty_virtualization)

    @override
    def command(self) -> str:
        return VIRTUALIZATION_COMMAND

    @override
    def process(self, output: list[str]) -> VirtualizationInfo:
        return parse_virtualization(output)


class OsReleaseInfo(TypedDict):
    id: str | None
    id_like: list[str]
    version_id: str | None
    codename: str | None
    pretty_name: str | None


def empty_os_release() -> OsReleaseInfo:
    return {"id": None, "id_like": [], "version_id": None, "codename": None, "pretty_name": None}


def _unquote(value: str) -> str:
    # os-release values use shell quoting; fall back to the text as-is if it is malformed.
    try:
        words = shlex.split(value)
    except ValueError:
        return value.strip().strip("\"'")
    return " ".join(words)


def parse_os_release(lines: list[str]) -> OsReleaseInfo:
    """The fields of ``/etc/os-release`` that decide package sources and versions.

    ``codename`` falls back to ``UBUNTU_CODENAME`` and then to a lone parenthesised word
    in ``VERSION`` (older Debian releases have no ``VERSION_CODENAME``).

    >>> parse_os_release(['ID=debian', 'VERSION_ID="12"', 'VERSION="12 (bookworm)"'])
    {'id': 'debian', 'id_like': [], 'version_id': '12', 'codename': 'bookworm', 'pretty_name': None}
    """
    fields: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            fields[key.strip()] = _unquote(value)

    codename = fields.get("VERSION_CODENAME") or fields.get("UBUNTU_CODENAME")
    if not codename:
        match = re.search(r"\(([A-Za-z]+)\)", fields.get("VERSION", ""))
        codename = match.group(1).lower() if match else None
    return {
        "id": fields.get("ID") or None,
        "id_like": fields.get("ID_LIKE", "").split(),
        "version_id": fields.get("VERSION_ID") or None,
        "codename": codename,
        "pretty_name": fields.get("PRETTY_NAME") or None,
    }


class OsRelease(FactBase[OsReleaseInfo]):
    """Distribution identity from ``/etc/os-release``.

    .. code:: python

        {"id": "ubuntu", "id_like": ["debian"], "version_id": "22.04",
         "codename": "jammy", "pretty_name": "Ubuntu 22.04.5 LTS"}
    """

    default = staticmethod(empty_os_release)

    @override
    def command(self) -> str:
        return OS_RELEASE_COMMAND

    @override
    def process(self, output: list[str]) -> OsReleaseInfo:
        return parse_os_release(output)
