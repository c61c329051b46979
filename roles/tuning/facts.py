"""``PciLocality``: where the NVIDIA GPUs and RDMA adapters sit, from sysfs (no driver needed)."""

from __future__ import annotations

from typing import Any, Final

from pyinfra.api import FactBase
from typing_extensions import override

from deepseek_infra.cpulist import parse_cpulist

# One line per device: kind, name, sysfs path, numa_node, local_cpulist. GPUs are matched
# on vendor 0x10de and display class 0x03xxxx, so a host's other devices are never taken.
PCI_LOCALITY_COMMAND: Final = (
    "for d in /sys/bus/pci/devices/*; do [ -r \"$d/vendor\" ] || continue; "
    "read -r v < \"$d/vendor\"; read -r c < \"$d/class\"; "
    "case \"$v:$c\" in 0x10de:0x03*) echo \"gpu ${d##*/} $(readlink -f \"$d\") "
    "$(cat \"$d/numa_node\" 2>/dev/null) $(cat \"$d/local_cpulist\" 2>/dev/null)\";; esac; done; "
    "for i in /sys/class/infiniband/*; do [ -e \"$i/device\" ] || continue; "
    "echo \"hca ${i##*/} $(readlink -f \"$i/device\") $(cat \"$i/device/numa_node\" 2>/dev/null) "
    "$(cat \"$i/device/local_cpulist\" 2>/dev/null)\"; done; "
    "[ -f /etc/default/irqbalance ] && echo irqbalance_config; true"
)


def parse_pci_locality(lines: list[str]) -> dict[str, Any]:
    """GPU functions and HCAs with sysfs path, NUMA node (None for -1) and local CPUs.

    >>> parse_pci_locality(["gpu 0000:18:00.0 /sys/devices/pci0000:15/0000:15:01.0/0000:18:00.0 0 0-47,96-143",
    ...                     "hca mlx5_0 /sys/devices/pci0000:15/0000:15:01.0/0000:19:00.0 -1 0-191"])["hcas"][0]["numa_node"] is None
    True
    """
    result: dict[str, Any] = {"gpus": [], "hcas": [], "irqbalance_config": False}
    for line in lines:
        words = line.split()
        if words == ["irqbalance_config"]:
            result["irqbalance_config"] = True
            continue
        if len(words) < 3 or words[0] not in ("gpu", "hca"):
            continue
        node = int(words[3]) if len(words) > 3 and words[3].lstrip("-").isdigit() else -1
        entry = {
            "path": words[2],
            "numa_node": node if node >= 0 else None,
            "cpus": parse_cpulist(words[4]) if len(words) > 4 else [],
        }
        if words[0] == "gpu":
            result["gpus"].append({"slot": words[1].lower(), **entry})
        else:
            result["hcas"].append({"name": words[1], **entry})
    return result


class PciLocality(FactBase[dict[str, Any]]):
    """NVIDIA GPUs and RDMA adapters as sysfs places them, and whether irqbalance is configured.

    .. code:: python

        {"gpus": [{"slot": "0000:18:00.0", "path": "/sys/devices/pci0000:15/.../0000:18:00.0",
                   "numa_node": 0, "cpus": [0, ..., 47, 96, ..., 143]}],
         "hcas": [{"name": "mlx5_0", "path": "/sys/devices/pci0000:15/.../0000:19:00.0",
                   "numa_node": 0, "cpus": [...]}],
         "irqbalance_config": True}
    """

    @override
    @staticmethod
    def default() -> dict[str, Any]:
        return parse_pci_locality([])

    @override
    def command(self) -> str:
        return PCI_LOCALITY_COMMAND

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_pci_locality(output)
