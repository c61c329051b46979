"""InfiniBand: kernel modules, IPoIB addressing and port checks (pure, no pyinfra).

``port_report()`` judges the ports ``ibstat`` shows (``deepseek_infra.hardware.IbPorts``)
against what the site expects: every checked port Active / LinkUp at no less than the
expected rate. IPoIB addresses are rendered for systemd-networkd (``.network`` files) or
ifupdown (``/etc/network/interfaces.d``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from deepseek_infra.hardware import IbPort

# ib_umad (MAD access: ibstat, opensm), ib_uverbs (verbs: NCCL, perftest), rdma_ucm (RDMA CM),
# mlx5_ib (ConnectX HCAs).
KERNEL_MODULES: Final = ("ib_umad", "ib_uverbs", "rdma_ucm", "mlx5_ib")
MODULES_LOAD_FILE: Final = "/etc/modules-load.d/deepseek-infiniband.conf"
NETWORKD_DIR: Final = "/etc/systemd/network"
IFUPDOWN_DIR: Final = "/etc/network/interfaces.d"
_IFACE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_MODULE: Final = re.compile(r"^[a-z0-9_-]+$")

Method = Literal["networkd", "ifupdown"]


def render_modules_load(modules: Iterable[str]) -> str:
    """``/etc/modules-load.d`` content: one module per line, in order."""
    names = list(modules)
    for name in names:
        if not _MODULE.match(name):
            raise ValueError(f"{name!r} is not a kernel module name")
    return "# Managed by deepseek-infra (infiniband role): RDMA kernel modules loaded at boot.\n" + "".join(
        f"{name}\n" for name in names)


def check_interface(name: str) -> str:
    if not _IFACE.match(name):
        raise ValueError(f"{name!r} is not a network interface name (1-15 of A-Z a-z 0-9 _ . -)")
    return name


def check_cidr(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """An interface address in CIDR form (``10.10.0.11/16``); refuses a bare address, a
    network or broadcast address, and a host prefix too short to hold it.

    >>> str(check_cidr("10.10.0.11/16"))
    '10.10.0.11/16'
    """
    if "/" not in text:
        raise ValueError(f"{text!r}: expected an address with its prefix length, e.g. 10.10.0.11/16")
    try:
        address = ipaddress.ip_interface(text)
    except ValueError as error:
        raise ValueError(f"{text!r}: {error}") from None
    network = address.network
    if network.num_addresses > 2 and address.ip in (network.network_address, network.broadcast_address):
        raise ValueError(f"{text!r}: is the {'network' if address.ip == network.network_address else 'broadcast'} "
                         f"address of {network}, not a host address")
    return address


def ipoib_path(method: Method, interface: str) -> str:
    check_interface(interface)
    if method == "networkd":
        return f"{NETWORKD_DIR}/60-deepseek-{interface}.network"
    return f"{IFUPDOWN_DIR}/deepseek-{interface}"


def render_ipoib(method: Method, interface: str, cidr: str, mtu: int | None = None) -> str:
    """One interface's static IPoIB address for systemd-networkd or ifupdown."""
    address = check_cidr(cidr)
    check_interface(interface)
    header = "# Managed by deepseek-infra (infiniband role): IPoIB address.\n"
    if method == "networkd":
        text = f"{header}[Match]\nName={interface}\n\n[Network]\nAddress={address}\nLinkLocalAddressing=no\n"
        return text + (f"\n[Link]\nMTUBytes={mtu}\n" if mtu else "")
    family = "inet6" if address.version == 6 else "inet"
    text = f"{header}auto {interface}\niface {interface} {family} static\n    address {address}\n"
    return text + (f"    mtu {mtu}\n" if mtu else "")


@dataclass(frozen=True)
class PortReport:
    """What ``port_report`` found: the ports it checked, those it skipped, and the problems."""

    checked: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        if self.problems:
            return "; ".join(self.problems)
        skipped = f" ({len(self.skipped)} other port(s) not checked)" if self.skipped else ""
        return f"{len(self.checked)} port(s) Active/LinkUp at the expected rate{skipped}"


def _rate(value) -> str:
    return "unknown" if value is None else f"{value:g} Gb/s"


def port_report(ports: Iterable[IbPort], expected_rate_gbps: float | None, *,
                link_layers: Iterable[str] = ("InfiniBand",), cas: Iterable[str] = ()) -> PortReport:
    """Judge ``ibstat`` ports against the expected state and rate.

    + ports: the ``ibstat`` ports (``Hardware.ib_ports``)
    + expected_rate_gbps: lowest acceptable rate (400 for NDR); None checks state only
    + link_layers: link layers checked (Ethernet ports are RoCE or management NICs)
    + cas: only these CAs (``mlx5_0``...); empty: every CA of a checked link layer. A CA
      named here but not found is a problem.

    A host with no checked port at all is a problem too: it was expected to have InfiniBand.
    """
    layers = set(link_layers)
    only = set(cas)
    checked: list[str] = []
    skipped: list[str] = []
    problems: list[str] = []
    ports = tuple(ports)
    for port in ports:
        name = f"{port.ca} port {port.port}"
        if (only and port.ca not in only) or (not only and port.link_layer not in layers):
            skipped.append(name)
            continue
        checked.append(name)
        state, physical, rate = port.state, port.physical_state, port.rate_gbps
        if state != "Active" or physical != "LinkUp":
            problems.append(f"{name} ({port.link_layer}): expected Active/LinkUp, found {state}/{physical}")
        elif expected_rate_gbps is not None and (rate is None or rate < expected_rate_gbps):
            problems.append(f"{name}: expected a rate of at least {_rate(expected_rate_gbps)}, found {_rate(rate)}")
    for ca in sorted(only - {port.ca for port in ports}):
        problems.append(f"{ca}: expected by infiniband_check_cas, not found by ibstat")
    if not checked and not problems:
        wanted = f"CAs {', '.join(sorted(only))}" if only else f"{'/'.join(sorted(layers))} ports"
        problems.append(f"expected {wanted}, found none"
                        + (f" ({len(skipped)} other port(s): {', '.join(skipped)})" if skipped else " (ibstat lists no HCA)"))
    return PortReport(tuple(checked), tuple(skipped), tuple(problems))
