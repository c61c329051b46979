"""``NvidiaDriverState``: what the NVIDIA driver role needs to know, in one round trip.

Installed packages and holds (dpkg; the driver's, and the CUDA toolkits the driver must
run), what ``nvidia-smi`` answers, the loaded kernel
module's version (``/sys/module/nvidia/version``), nouveau (loaded, blacklisted), the
InfiniBand stack nvidia-peermem needs, kernel headers for the running kernel, and whether
nvidia-peermem is configured or loaded.
"""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra.api import FactBase
from typing_extensions import override

from deepseek_infra.cuda import installed_toolkits
from deepseek_infra.nvidia_driver import DPKG_PATTERNS, InstalledPackage, driver_or_none, parse_dpkg_status, parse_smi

PEERMEM_CONF = "/etc/modules-load.d/nvidia-peermem.conf"
# The driver's packages, and the installed CUDA toolkits the driver is gated against.
_PATTERNS = (*DPKG_PATTERNS, "cuda-toolkit-[0-9]*")
_DPKG_FORMAT = r"${Package}\t${Version}\t${db:Status-Abbrev}\t${db:Status-Want}\n"
_MODPROBE_DIRS = "/etc/modprobe.d /run/modprobe.d /usr/lib/modprobe.d /lib/modprobe.d"

COMMAND = "; ".join([
    "echo @@dpkg",
    f"dpkg-query -W -f={shlex.quote(_DPKG_FORMAT)} {' '.join(shlex.quote(p) for p in _PATTERNS)} 2>/dev/null",
    "echo @@smi",
    "if command -v nvidia-smi >/dev/null 2>&1; then "
    "out=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>&1); echo \"rc=$?\"; "
    "printf '%s\\n' \"$out\"; else echo rc=127; fi",
    "echo @@module",
    "cat /sys/module/nvidia/version 2>/dev/null",
    "echo @@nouveau",
    "grep -q '^nouveau ' /proc/modules 2>/dev/null && echo loaded",
    f"grep -lsE '^[[:space:]]*blacklist[[:space:]]+nouveau' $(for d in {_MODPROBE_DIRS}; do "
    "ls $d/*.conf 2>/dev/null; done) /dev/null | sed 's/^/blacklisted_by=/'",
    "echo @@ibstack",
    "command -v ofed_info >/dev/null 2>&1 && ofed_info -s 2>/dev/null | sed 's/^/ofed=/'",
    "dpkg-query -W -f='${db:Status-Abbrev}\\n' rdma-core 2>/dev/null | grep -q '^ii' && echo rdma-core=1",
    "echo @@headers",
    "echo \"release=$(uname -r)\"",
    "[ -d \"/lib/modules/$(uname -r)/build\" ] && echo present=1",
    "echo @@peermem",
    f"[ -f {PEERMEM_CONF} ] && grep -vE '^[[:space:]]*(#|$)' {PEERMEM_CONF} | sed 's/^/conf=/'",
    "grep -q '^nvidia_peermem ' /proc/modules 2>/dev/null && echo loaded=1",
    # ib_core's peer-memory API (MLNX_OFED, or an inbox kernel with the peer-memory patch):
    # listed in modules.symbols without loading anything, or live in kallsyms / sysfs.
    "{ grep -qs ' ib_register_peer_memory_client$' /proc/kallsyms || "
    "grep -qs 'symbol:ib_register_peer_memory_client ' \"/lib/modules/$(uname -r)/modules.symbols\" || "
    "[ -d /sys/kernel/mm/memory_peers ]; } && echo peer_memory=1",
    "echo @@secureboot",
    # mokutil prints "SecureBoot enabled|disabled"; without it, the EFI variable's last byte.
    "if command -v mokutil >/dev/null 2>&1; then mokutil --sb-state 2>&1 | sed 's/^/sb=/'; "
    "elif [ -d /sys/firmware/efi ]; then f=$(ls /sys/firmware/efi/efivars/SecureBoot-* 2>/dev/null | head -1); "
    "[ -n \"$f\" ] && echo \"efivar=$(od -An -tu1 \"$f\" | awk '{print $NF}')\"; else echo sb=bios; fi",
    "[ -f /var/lib/dkms/mok.pub ] && echo dkms_key=1 && command -v mokutil >/dev/null 2>&1 && "
    "mokutil --test-key /var/lib/dkms/mok.pub 2>&1 | grep -q 'is already enrolled' && echo dkms_key_enrolled=1",
    "echo @@nvlink5",
    # NVLink5 systems (HGX B200) carry NVLink switch management in an HCA's VPD, as NVIDIA's
    # driver container detects them (_assert_nvlink5_system in gpu-driver-container's nvidia-driver).
    "grep -lsa SW_MNG /sys/class/infiniband/*/device/vpd 2>/dev/null | sed 's/^/vpd=/'",
    "true",
])


def _sections(lines: list[str]) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith("@@"):
            current = sections.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def _pairs(lines: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep:
            out.setdefault(key, []).append(value.strip())
    return out


def ib_stack_of(ofed_version: str | None, rdma_core: bool) -> str | None:
    """The InfiniBand stack name ``deepseek_infra.compat.check_stack`` accepts.

    >>> ib_stack_of("MLNX_OFED_LINUX-23.10-1.1.9.0", False)
    'mlnx_ofed'
    >>> ib_stack_of("OFED-internal-24.10-1.1.4", True)
    'doca_ofed'
    """
    if ofed_version:
        return "mlnx_ofed" if ofed_version.upper().startswith("MLNX_OFED") else "doca_ofed"
    return "rdma-core" if rdma_core else None


def secure_boot_of(lines: list[str]) -> bool | None:
    """Secure Boot from ``mokutil --sb-state`` (or the SecureBoot EFI variable): True when
    enforcing, False when off or a BIOS boot, None when it cannot be told.

    >>> secure_boot_of(["sb=SecureBoot enabled"]), secure_boot_of(["sb=SecureBoot disabled"])
    (True, False)
    """
    pairs = _pairs(lines)
    for state in pairs.get("sb", []):
        text = state.lower()
        if "secureboot enabled" in text:
            return True
        if "secureboot disabled" in text or "doesn't support secure boot" in text or text == "bios":
            return False
    for value in pairs.get("efivar", []):
        if value.isdigit():
            return value == "1"
    return None


def parse_nvidia_driver_state(lines: list[str]) -> dict[str, Any]:
    sections = _sections(lines)
    smi_lines = sections.get("smi", [])
    rc: int | None = None
    if smi_lines and smi_lines[0].startswith("rc="):
        rc = int(smi_lines[0][3:])
        smi_lines = smi_lines[1:]
    module = [line.strip() for line in sections.get("module", []) if line.strip()]
    nouveau = sections.get("nouveau", [])
    ib = _pairs(sections.get("ibstack", []))
    headers = _pairs(sections.get("headers", []))
    peermem = sections.get("peermem", [])
    packages = parse_dpkg_status(sections.get("dpkg", []))
    return {
        "packages": packages,
        "toolkits": installed_toolkits(packages),
        "smi": parse_smi(rc, "\n".join(smi_lines)),
        "loaded_module": driver_or_none(module[0] if module else None),
        "nouveau_loaded": "loaded" in (line.strip() for line in nouveau),
        "nouveau_blacklisted_by": sorted(
            line.strip().partition("=")[2] for line in nouveau if line.startswith("blacklisted_by=")
        ),
        "ib_stack": ib_stack_of((ib.get("ofed") or [None])[0], bool(ib.get("rdma-core"))),
        "kernel_release": (headers.get("release") or [None])[0],
        "kernel_headers": bool(headers.get("present")),
        "peermem_conf": [line.partition("=")[2].strip() for line in peermem if line.startswith("conf=")],
        "peermem_loaded": any(line.strip() == "loaded=1" for line in peermem),
        "peer_memory": any(line.strip() == "peer_memory=1" for line in peermem),
        "secure_boot": secure_boot_of(sections.get("secureboot", [])),
        "dkms_key": "dkms_key=1" in (line.strip() for line in sections.get("secureboot", [])),
        "dkms_key_enrolled": "dkms_key_enrolled=1" in (line.strip() for line in sections.get("secureboot", [])),
        # RDMA devices whose VPD names NVLink switch management (SW_MNG): an NVLink5 system
        "nvlink5_devices": sorted(
            line.strip()[len("vpd=/sys/class/infiniband/"):].partition("/")[0]
            for line in sections.get("nvlink5", []) if line.startswith("vpd=/sys/class/infiniband/")
        ),
    }


class DpkgPackages(FactBase[dict[str, InstalledPackage]]):
    """Installed packages matching dpkg-query patterns, with their holds (``parse_dpkg_status``).

    .. code:: python

        {"libnccl2": {"version": PackageVersion("2.21.5-1+cuda12.4"), "held": True}}
    """

    default = dict

    @override
    def command(self, patterns: tuple[str, ...] | list[str]) -> str:
        quoted = " ".join(shlex.quote(pattern) for pattern in patterns)
        return f"dpkg-query -W -f={shlex.quote(_DPKG_FORMAT)} {quoted} 2>/dev/null; true"

    @override
    def process(self, output: list[str]) -> dict[str, InstalledPackage]:
        return parse_dpkg_status(output)


class NvidiaDriverState(FactBase[dict[str, Any]]):
    """The NVIDIA driver as the host has it.

    .. code:: python

        {"packages": {"nvidia-smi": {"version": PackageVersion("550.90.12-1"), "held": True}, ...},
         "toolkits": (CudaRelease(12, 4, 1),),  # installed cuda-toolkit-X-Y metapackages
         "smi": {"state": "ok", "version": DriverVersion("550.90.12"), "message": ""},
         "loaded_module": DriverVersion("550.90.12"), "nouveau_loaded": False,
         "nouveau_blacklisted_by": ["/etc/modprobe.d/deepseek-nouveau.conf"],
         "ib_stack": "rdma-core", "kernel_release": "6.1.0-28-amd64", "kernel_headers": False,
         "peermem_conf": ["nvidia-peermem"], "peermem_loaded": False,
         "peer_memory": False,  # ib_core's peer-memory API (nvidia-peermem can load)
         "secure_boot": False, "dkms_key": True, "dkms_key_enrolled": False}
    """

    @override
    @staticmethod
    def default() -> dict[str, Any]:
        return parse_nvidia_driver_state([])

    @override
    def command(self) -> str:
        return COMMAND

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_nvidia_driver_state(output)
