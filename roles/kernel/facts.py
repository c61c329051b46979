"""``KernelTuningState``: what the kernel role compares against, in one round trip."""

from __future__ import annotations

from typing import Any, Final

from pyinfra.api import FactBase
from typing_extensions import override

from roles.kernel.plan import GOVERNOR_GLOB, THP_PATH, parse_thp

KERNEL_STATE_COMMAND: Final = "; ".join((
    "echo \"cpu_vendor=$(grep -m1 '^vendor_id' /proc/cpuinfo 2>/dev/null | sed 's/^[^:]*: *//')\"",
    "[ -f /etc/default/grub ] && echo grub_default=1",
    "echo \"update_grub=$(command -v update-grub 2>/dev/null)\"",
    "echo \"update_initramfs=$(command -v update-initramfs 2>/dev/null)\"",
    "[ -d /sys/devices/system/cpu/cpu0/cpufreq ] && echo cpufreq=1",
    f"echo \"governors=$(cat {GOVERNOR_GLOB} 2>/dev/null | sort -u | tr '\\n' ' ')\"",
    f"echo \"thp=$(cat {THP_PATH} 2>/dev/null)\"",
    "grep -q '^nouveau ' /proc/modules 2>/dev/null && echo nouveau_loaded=1",
    # Node memory from sysfs: the kernel's own view, there before numactl is installed.
    (
        "for f in /sys/devices/system/node/node[0-9]*/meminfo; do [ -f \"$f\" ] && "
        "awk '/MemTotal/ {print \"node_mem_kb.\" $2 \"=\" $4}' \"$f\"; done"
    ),
    "true",
))


def parse_kernel_state(lines: list[str]) -> dict[str, Any]:
    """Parse the ``key=value`` lines of ``KERNEL_STATE_COMMAND``.

    >>> parse_kernel_state(["cpu_vendor=GenuineIntel", "update_grub=", "thp=always [madvise] never",
    ...                     "governors=performance ", "node_mem_kb.0=1056", "nouveau_loaded=1"])["thp"]
    'madvise'
    """
    values: dict[str, str] = {}
    node_mem: dict[int, int] = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if not sep:
            continue
        if key.startswith("node_mem_kb.") and key[12:].isdigit() and value.isdigit():
            node_mem[int(key[12:])] = int(value)
        else:
            values[key] = value.strip()
    return {
        "cpu_vendor": values.get("cpu_vendor") or None,
        "grub": values.get("grub_default") == "1",
        "update_grub": values.get("update_grub") or None,
        "update_initramfs": values.get("update_initramfs") or None,
        "cpufreq": values.get("cpufreq") == "1",
        "governors": values.get("governors", "").split(),
        "thp": parse_thp(values.get("thp", "")),
        "nouveau_loaded": values.get("nouveau_loaded") == "1",
        "node_memory_mb": {node: kb // 1024 for node, kb in sorted(node_mem.items())},
    }


class KernelTuningState(FactBase[dict[str, Any]]):
    """Boot-loader tools, cpufreq, THP, nouveau and node memory, as the kernel role needs them.

    .. code:: python

        {"cpu_vendor": "GenuineIntel", "grub": True, "update_grub": "/usr/sbin/update-grub",
         "update_initramfs": "/usr/sbin/update-initramfs", "cpufreq": True,
         "governors": ["performance"], "thp": "madvise", "nouveau_loaded": False,
         "node_memory_mb": {0: 1031564, 1: 1032133}}
    """

    @override
    @staticmethod
    def default() -> dict[str, Any]:
        return parse_kernel_state([])

    @override
    def command(self) -> str:
        return KERNEL_STATE_COMMAND

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_kernel_state(output)
