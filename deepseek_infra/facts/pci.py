"""NVIDIA PCI devices from ``lspci``: visible before any driver is installed."""

from __future__ import annotations

import re
from typing import TypedDict

from pyinfra.api import FactBase
from typing_extensions import override

NVIDIA_VENDOR_ID = "10de"
# -D prints the PCI domain so slots compare with nvidia-smi's "00000000:18:00.0" bus ids.
LSPCI_NVIDIA_COMMAND = f"lspci -D -nn -d {NVIDIA_VENDOR_ID}:"

_LSPCI_NN_LINE = re.compile(
    r"^(?P<slot>(?:[0-9a-fA-F]{4,8}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])\s+"
    r"(?P<class_name>.+?) \[(?P<class_id>[0-9a-fA-F]{4})\]: "
    r"(?P<description>.+) \[(?P<vendor_id>[0-9a-fA-F]{4}):(?P<device_id>[0-9a-fA-F]{4})\]"
    r"(?: \(rev (?P<revision>[0-9a-fA-F]+)\))?"
)


class PciDevice(TypedDict):
    slot: str
    class_id: str
    class_name: str
    vendor_id: str
    device_id: str
    description: str
    revision: str | None


def parse_lspci_nn(lines: list[str]) -> list[PciDevice]:
    """Parse ``lspci -nn`` lines (with or without ``-D``); unparseable lines are skipped.

    >>> parse_lspci_nn(["18:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)"])
    [{'slot': '18:00.0', 'class_id': '0302', 'class_name': '3D controller', 'vendor_id': '10de', 'device_id': '2330', 'description': 'NVIDIA Corporation GH100 [H100 SXM5 80GB]', 'revision': 'a1'}]
    """
    devices: list[PciDevice] = []
    for line in lines:
        match = _LSPCI_NN_LINE.match(line.strip())
        if match:
            devices.append(
                {
                    "slot": match["slot"].lower(),
                    "class_id": match["class_id"].lower(),
                    "class_name": match["class_name"],
                    "vendor_id": match["vendor_id"].lower(),
                    "device_id": match["device_id"].lower(),
                    "description": match["description"],
                    "revision": match["revision"],
                }
            )
    return devices


def parse_lspci_nvidia(lines: list[str]) -> list[PciDevice]:
    """Only the NVIDIA (vendor 10de) devices of ``lspci -nn`` output: GPUs, NVSwitches, audio.

    >>> [d["device_id"] for d in parse_lspci_nvidia([
    ...     "0000:18:00.0 3D controller [0302]: NVIDIA Corporation GH100 [H100 SXM5 80GB] [10de:2330] (rev a1)",
    ...     "0000:19:00.0 Ethernet controller [0200]: Mellanox Technologies MT2910 Family [ConnectX-7] [15b3:1021]"])]
    ['2330']
    """
    return [device for device in parse_lspci_nn(lines) if device["vendor_id"] == NVIDIA_VENDOR_ID]


class NvidiaPciDevices(FactBase[list[PciDevice]]):
    """NVIDIA PCI functions on the bus, whether or not a driver is bound.

    .. code:: python

        [{"slot": "0000:18:00.0", "class_id": "0302", "class_name": "3D controller",
          "vendor_id": "10de", "device_id": "2330",
          "description": "NVIDIA Corporation GH100 [H100 SXM5 80GB]", "revision": "a1"}]
    """

    default = list

    @override
    def requires_command(self) -> str:
        return "lspci"

    @override
    def command(self) -> str:
        return LSPCI_NVIDIA_COMMAND

    @override
    def process(self, output: list[str]) -> list[PciDevice]:
        return parse_lspci_nvidia(output)
