"""Network interface facts read from ``/sys/class/net`` in one command."""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import FactBase
from typing_extensions import override

NET_ATTRIBUTES = ("operstate", "speed", "mtu", "address", "type")

# Globs are listed per attribute because dash has no brace expansion. Reading "speed" of
# a down or virtual link fails with EINVAL; grep reports it on stderr and moves on.
NET_SYSFS_COMMAND = (
    "grep -H . "
    + " ".join(f"/sys/class/net/*/{attribute}" for attribute in NET_ATTRIBUTES)
    + " 2>/dev/null || true"
)

# ARPHRD_* link types from include/uapi/linux/if_arp.h that matter on GPU nodes.
ARPHRD_NAMES = {
    1: "ether",
    32: "infiniband",
    768: "ipip",
    772: "loopback",
    776: "sit",
    778: "gre",
    823: "ip6gre",
    65534: "none",
}

# Drivers report an unknown speed as -1, or as (u32)-1 on older kernels.
_UNKNOWN_SPEEDS = {-1, 0xFFFFFFFF}


class NetInterface(TypedDict):
    state: str | None
    speed_mbps: int | None
    mtu: int | None
    mac: str | None
    type: str | None


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_net_sysfs(lines: list[str]) -> dict[str, NetInterface]:
    """Parse ``grep -H . /sys/class/net/*/<attr>`` output into one dict per interface.

    Interface names cannot contain ":" (the kernel rejects them), so the first ":" ends
    the path even though MAC addresses contain colons.

    >>> parse_net_sysfs(["/sys/class/net/ib0/operstate:up", "/sys/class/net/ib0/speed:400000",
    ...                  "/sys/class/net/ib0/type:32", "/sys/class/net/ib0/mtu:4092"])
    {'ib0': {'state': 'up', 'speed_mbps': 400000, 'mtu': 4092, 'mac': None, 'type': 'infiniband'}}
    """
    raw: dict[str, dict[str, str]] = {}
    for line in lines:
        path, sep, value = line.strip().partition(":")
        parts = path.split("/")
        if not sep or len(parts) != 6 or parts[:4] != ["", "sys", "class", "net"]:
            continue
        raw.setdefault(parts[4], {})[parts[5]] = value.strip()

    interfaces: dict[str, NetInterface] = {}
    for name, attributes in sorted(raw.items()):
        speed = _int_or_none(attributes.get("speed"))
        link_type = _int_or_none(attributes.get("type"))
        interfaces[name] = {
            "state": attributes.get("operstate"),
            "speed_mbps": None if speed in _UNKNOWN_SPEEDS else speed,
            "mtu": _int_or_none(attributes.get("mtu")),
            "mac": attributes.get("address") or None,
            "type": None if link_type is None else ARPHRD_NAMES.get(link_type, str(link_type)),
        }
    return interfaces


class NetworkInterfaces(FactBase[dict[str, NetInterface]]):
    """Interfaces with link state, speed (Mb/s, ``None`` when unknown), MTU, MAC and link type.

    .. code:: python

        {"eth0": {"state": "up", "speed_mbps": 100000, "mtu": 9000,
                  "mac": "b8:3f:d2:11:22:33", "type": "ether"},
         "ib0": {"state": "up", "speed_mbps": 400000, "mtu": 4092,
                 "mac": "00:00:10:29:fe:80:00:00:00:00:00:00:b8:3f:d2:03:00:aa:bb:cc",
                 "type": "infiniband"},
         "lo": {"state": "unknown", "speed_mbps": None, "mtu": 65536,
                "mac": "00:00:00:00:00:00", "type": "loopback"}}
    """

    default = dict

    @override
    def command(self) -> str:
        return NET_SYSFS_COMMAND

    @override
    def process(self, output: list[str]) -> dict[str, NetInterface]:
        return parse_net_sysfs(output)
