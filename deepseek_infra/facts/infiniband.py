"""RDMA adapter discovery: the kernel's ``/sys/class/infiniband``, ``ibstat``, ``ibv_devinfo``
and ``ibdev2netdev``.

The ``parse_*`` functions are pure so a batched fact can feed them the output of the
``*_COMMAND`` constants; the facts below only wrap them.
"""

from __future__ import annotations

import re
from typing import TypedDict

from pyinfra.api import FactBase
from typing_extensions import override
from deepseek_infra.text import clean_line

IBSTAT_COMMAND = "ibstat"
IBV_DEVINFO_COMMAND = "ibv_devinfo"
IBDEV2NETDEV_COMMAND = "ibdev2netdev"
# One tab-separated line per port from the kernel's RDMA sysfs (drivers/infiniband/core/sysfs.c):
# no userspace tool needed, so a fresh node (no infiniband-diags yet) reports its fabric.
IB_SYSFS_COMMAND = (
    "for p in /sys/class/infiniband/*/ports/*; do [ -d \"$p\" ] || continue; d=${p%/ports/*}; "
    "printf '%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' \"${d##*/}\" \"${p##*/}\" "
    "\"$(cat \"$p/state\")\" \"$(cat \"$p/phys_state\")\" \"$(cat \"$p/rate\")\" \"$(cat \"$p/link_layer\")\" "
    "\"$(cat \"$d/hca_type\")\" \"$(cat \"$d/fw_ver\")\"; done 2>/dev/null; true"
)
# sysfs port states ("4: ACTIVE") in ibstat's words (libibumad), so both sources read alike.
_SYSFS_STATES = {"NOP": "Nop", "DOWN": "Down", "INIT": "Initializing", "ARMED": "Armed", "ACTIVE": "Active",
                 "ACTIVE_DEFER": "Active"}

_KEY_VALUE = re.compile(r"^\s*([^:]+?):\s*(.*?)\s*$")


class IbPort(TypedDict):
    ca: str
    ca_type: str | None
    firmware: str | None
    port: int
    state: str | None
    physical_state: str | None
    rate_gbps: int | float | None
    link_layer: str | None


def _rate(text: str | None) -> int | float | None:
    """ibstat prints whole Gb/s ("400") except for SDR-era rates ("2.5")."""
    if not text or not re.fullmatch(r"\d+(\.\d+)?", text):
        return None
    return float(text) if "." in text else int(text)


def parse_ibstat(lines: list[str]) -> list[IbPort]:
    """Parse ``ibstat`` into one entry per CA port, in output order.

    Sample return value::

        [{"ca": "mlx5_0", "ca_type": "MT4129", "firmware": "28.39.1002", "port": 1,
          "state": "Active", "physical_state": "LinkUp", "rate_gbps": 400,
          "link_layer": "InfiniBand"},
         {"ca": "mlx5_1", "ca_type": "MT4125", "firmware": "22.38.1002", "port": 1,
          "state": "Active", "physical_state": "LinkUp", "rate_gbps": 100,
          "link_layer": "Ethernet"}]
    """
    ports: list[IbPort] = []
    adapter: dict[str, str] = {}
    port: dict[str, str] | None = None

    def finish_port() -> None:
        if port is not None:
            ports.append(
                {
                    "ca": adapter["ca"],
                    "ca_type": adapter.get("CA type") or None,
                    "firmware": adapter.get("Firmware version") or None,
                    "port": int(port["number"]),
                    "state": port.get("State"),
                    "physical_state": port.get("Physical state"),
                    "rate_gbps": _rate(port.get("Rate")),
                    "link_layer": port.get("Link layer"),
                }
            )

    for raw in lines:
        line = clean_line(raw).strip()
        if match := re.fullmatch(r"CA '([^']+)'", line):
            finish_port()
            adapter, port = {"ca": match.group(1)}, None
        elif adapter and (match := re.fullmatch(r"Port (\d+):", line)):
            finish_port()
            port = {"number": match.group(1)}
        elif adapter and (match := _KEY_VALUE.match(line)):
            (port if port is not None else adapter)[match.group(1)] = match.group(2)
    finish_port()
    return ports


def _sysfs_enum(text: str) -> str | None:
    """"4: ACTIVE" -> "ACTIVE"; "5: LinkUp" -> "LinkUp" (the kernel's "<code>: <name>")."""
    name = text.partition(":")[2].strip() if ":" in text else text.strip()
    return name or None


def _sysfs_rate(text: str) -> int | float | None:
    """"400 Gb/sec (4X NDR)" -> 400, "2.5 Gb/sec (1X)" -> 2.5 (rate_show in the kernel)."""
    match = re.match(r"\s*(\d+(?:\.\d+)?) Gb/sec", text)
    return _rate(match.group(1)) if match else None


def parse_ib_sysfs(lines: list[str]) -> list[IbPort]:
    """Parse ``IB_SYSFS_COMMAND`` output (ca, port, state, phys_state, rate, link_layer,
    hca_type, fw_ver per line) into the entries ``parse_ibstat`` gives, sorted by CA and port.

    A line ``mlx5_0  1  4: ACTIVE  5: LinkUp  400 Gb/sec (4X NDR)  InfiniBand  MT4129  28.39.1002``
    (tab-separated) gives ``{"ca": "mlx5_0", "port": 1, "state": "Active", "physical_state":
    "LinkUp", "rate_gbps": 400, "link_layer": "InfiniBand", "ca_type": "MT4129", ...}``.
    """
    ports: list[IbPort] = []
    for raw in lines:
        fields = clean_line(raw).rstrip("\r\n").split("\t")
        if len(fields) != 8 or not fields[1].isdigit():
            raise ValueError(f"not a sysfs RDMA port line: {raw!r}")
        ca, port, state, phys, rate, link_layer, hca_type, firmware = (field.strip() for field in fields)
        kernel_state = _sysfs_enum(state)
        ports.append({
            "ca": ca, "ca_type": hca_type or None, "firmware": firmware or None, "port": int(port),
            "state": _SYSFS_STATES.get(kernel_state or "", kernel_state), "physical_state": _sysfs_enum(phys),
            "rate_gbps": _sysfs_rate(rate), "link_layer": link_layer or None,
        })
    return sorted(ports, key=lambda entry: (entry["ca"], entry["port"]))


def _devinfo_value(text: str) -> str | int:
    """Drop the enum code ("PORT_ACTIVE (4)" to "PORT_ACTIVE"); decimal text becomes int."""
    text = re.sub(r"\s+\(\d+\)$", "", text)
    return int(text) if text.isdigit() else text


def parse_ibv_devinfo(lines: list[str]) -> list[dict]:
    """Parse ``ibv_devinfo`` (also ``-d <hca>`` and ``-v``) into one dict per HCA.

    Every ``key: value`` line is kept under its own name; enum codes in parentheses are
    dropped and plain decimal numbers become int. Ports are listed under ``ports``.
    "No IB devices found" gives ``[]``.

    Sample return value::

        [{"hca_id": "mlx5_0", "transport": "InfiniBand", "fw_ver": "28.43.2026",
          "vendor_id": "0x02c9", "vendor_part_id": 4129, "board_id": "MT_0000000838",
          "phys_port_cnt": 1, ...,
          "ports": [{"port": 1, "state": "PORT_ACTIVE", "max_mtu": 4096,
                     "active_mtu": 4096, "link_layer": "Ethernet", ...}]}]
    """
    adapters: list[dict] = []
    target: dict | None = None
    for raw in lines:
        match = _KEY_VALUE.match(clean_line(raw))
        if not match:
            continue
        key, value = match.group(1), _devinfo_value(match.group(2))
        if key == "hca_id":
            target = {"hca_id": value, "ports": []}
            adapters.append(target)
        elif target is None:
            continue
        elif key == "port":
            target = {"port": value}
            adapters[-1]["ports"].append(target)
        else:
            target.setdefault(key, value)
    return adapters


_IBDEV2NETDEV_LINE = re.compile(
    # "mlx5_0 port 1 ==> ibp25s0 (Up)"; -v prefixes the PCI address and adds card details.
    r"^(?:[0-9a-fA-F]{4}:\S+\s+)?(?P<device>\S+)\b.*?\bport (?P<port>\d+)(?: \([^)]*\))?"
    r" ==> (?P<netdev>\S+) \((?P<state>\w+)\)"
)


def parse_ibdev2netdev(lines: list[str]) -> dict[str, dict]:
    """Parse ``ibdev2netdev`` (or ``-v``): RDMA device -> port, network interface, link up.

    Keyed by device; an mlx5 device has one port, so the first port listed is kept.

    Sample return value::

        {"mlx5_0": {"port": 1, "netdev": "enp25s0np0", "up": True},
         "mlx5_3": {"port": 1, "netdev": "bond0", "up": True},
         "mlx5_4": {"port": 1, "netdev": "enp83s0f1np1", "up": False}}
    """
    devices: dict[str, dict] = {}
    for raw in lines:
        if match := _IBDEV2NETDEV_LINE.match(clean_line(raw).strip()):
            devices.setdefault(
                match.group("device"),
                {
                    "port": int(match.group("port")),
                    "netdev": match.group("netdev"),
                    "up": match.group("state") == "Up",
                },
            )
    return devices


class IbStat(FactBase[list[IbPort]]):
    """State, rate and link layer of every RDMA adapter port; see ``parse_ibstat``.

    .. code:: python

        [{"ca": "mlx5_0", "ca_type": "MT4129", "firmware": "28.39.1002", "port": 1,
          "state": "Active", "physical_state": "LinkUp", "rate_gbps": 400,
          "link_layer": "InfiniBand"}]
    """

    default = list

    @override
    def requires_command(self) -> str:
        return "ibstat"

    @override
    def command(self) -> str:
        return IBSTAT_COMMAND

    @override
    def process(self, output: list[str]) -> list[IbPort]:
        return parse_ibstat(output)


class IbSysfsPorts(FactBase[list[IbPort]]):
    """The same port entries as ``IbStat``, read from ``/sys/class/infiniband`` (no tool
    needed: what a fresh node has before the infiniband role installs ``ibstat``); see
    ``parse_ib_sysfs``.
    """

    default = list

    @override
    def command(self) -> str:
        return IB_SYSFS_COMMAND

    @override
    def process(self, output: list[str]) -> list[IbPort]:
        return parse_ib_sysfs(output)


class IbvDevinfo(FactBase[list[dict]]):
    """Verbs view of every HCA (firmware, board id, ports); see ``parse_ibv_devinfo``.

    .. code:: python

        [{"hca_id": "mlx5_0", "fw_ver": "28.43.2026", "board_id": "MT_0000000838",
          "ports": [{"port": 1, "state": "PORT_ACTIVE", "link_layer": "Ethernet"}]}]
    """

    default = list

    @override
    def requires_command(self) -> str:
        return "ibv_devinfo"

    @override
    def command(self) -> str:
        return IBV_DEVINFO_COMMAND

    @override
    def process(self, output: list[str]) -> list[dict]:
        return parse_ibv_devinfo(output)


class IbDev2Netdev(FactBase[dict[str, dict]]):
    """RDMA device to network interface mapping; see ``parse_ibdev2netdev``.

    .. code:: python

        {"mlx5_0": {"port": 1, "netdev": "enp25s0np0", "up": True}}
    """

    default = dict

    @override
    def requires_command(self) -> str:
        return "ibdev2netdev"

    @override
    def command(self) -> str:
        return IBDEV2NETDEV_COMMAND

    @override
    def process(self, output: list[str]) -> dict[str, dict]:
        return parse_ibdev2netdev(output)


class RdmaDevices(FactBase[list[str]]):
    """RDMA devices the kernel registered (``/sys/class/infiniband``), before any userspace
    tool is installed.

    .. code:: python

        ["mlx5_0", "mlx5_1"]
    """

    default = list

    @override
    def command(self) -> str:
        return "ls -1 /sys/class/infiniband 2>/dev/null; true"

    @override
    def process(self, output: list[str]) -> list[str]:
        return sorted(line.strip() for line in output if line.strip())
