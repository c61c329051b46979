"""The hardware reading of one host as typed values (pure: no pyinfra).

``deepseek_infra.facts.host.HostHardware`` gathers every hardware fact in one round trip;
its sections are parsed by the single facts' parsers (dicts and lists, as each tool
prints them) and turned into these frozen values once, by ``Hardware.from_sections``.
Roles and the pure planners read attributes (``hardware.virtualization.container``,
``hardware.numa.nodes``), never a section by string key, so a renamed or missing field is
a type error at the reader instead of a ``KeyError`` on some host.

Each section class builds itself from its fact's parsed output (``from_fact``), which
tolerates partial input: a missing key reads as "not reported" (``None``, empty).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")

_EMPTY: Mapping[Any, Any] = {}


def _ints(values: Any) -> tuple[int, ...]:
    return tuple(int(value) for value in values or ())


# --- GPUs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Gpu:
    """One GPU as ``nvidia-smi --query-gpu`` reports it (the driver answers)."""

    index: int | None = None
    name: str | None = None
    uuid: str | None = None
    pci_bus_id: str | None = None
    memory_total_mib: int | float | None = None
    memory_used_mib: int | float | None = None
    compute_capability: float | None = None  # as nvidia-smi prints it ("9.0")
    driver_version: str | None = None
    persistence_mode: str | None = None
    power_limit_w: float | None = None
    ecc_mode: str | None = None
    mig_mode: str | None = None
    temperature_c: int | float | None = None
    utilization_pct: int | float | None = None

    @classmethod
    def from_fact(cls, row: Mapping[str, Any]) -> Gpu:
        """From one ``parse_gpu_query_csv`` row (query field names as keys)."""
        capability = row.get("compute_cap")
        return cls(
            index=row.get("index"), name=row.get("name"), uuid=row.get("uuid"), pci_bus_id=row.get("pci.bus_id"),
            memory_total_mib=row.get("memory.total"), memory_used_mib=row.get("memory.used"),
            compute_capability=capability if isinstance(capability, (int, float)) else None,
            driver_version=row.get("driver_version"), persistence_mode=row.get("persistence_mode"),
            power_limit_w=row.get("power.limit"), ecc_mode=row.get("ecc.mode.current"),
            mig_mode=row.get("mig.mode.current"), temperature_c=row.get("temperature.gpu"),
            utilization_pct=row.get("utilization.gpu"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PciDevice:
    """An NVIDIA PCI function from ``lspci -D -nn``: visible before any driver is installed."""

    slot: str
    class_id: str = ""
    class_name: str | None = None
    vendor_id: str | None = None
    device_id: str | None = None
    description: str | None = None
    revision: str | None = None

    NVSWITCH_CLASS: ClassVar[str] = "0680"  # "Bridge": NVSwitch functions

    @property
    def is_gpu(self) -> bool:
        # NVSwitches (bridges) and HDMI audio are NVIDIA functions too; GPUs are PCI class 03xx.
        return self.class_id.startswith("03")

    @property
    def is_nvswitch(self) -> bool:
        return self.class_id == self.NVSWITCH_CLASS

    @classmethod
    def from_fact(cls, device: Mapping[str, Any]) -> PciDevice:
        return cls(
            slot=str(device.get("slot", "")), class_id=str(device.get("class_id") or ""),
            class_name=device.get("class_name"), vendor_id=device.get("vendor_id"),
            device_id=device.get("device_id"), description=device.get("description"), revision=device.get("revision"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TopologyGpu:
    """A GPU row of ``nvidia-smi topo -m`` (or its sysfs equivalent before the driver)."""

    name: str
    cpus: tuple[int, ...] = ()
    numa_node: int | None = None
    links: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class TopologyNic:
    name: str
    device: str | None = None
    links: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Topology:
    """GPU/NIC affinity and link classes; empty when nvidia-smi does not answer."""

    gpus: tuple[TopologyGpu, ...] = ()
    nics: tuple[TopologyNic, ...] = ()

    @classmethod
    def from_fact(cls, topology: Mapping[str, Any] | None) -> Topology:
        """From ``parse_topology`` output."""
        topology = topology or _EMPTY
        return cls(
            gpus=tuple(TopologyGpu(name=gpu["name"], cpus=_ints(gpu.get("cpus")), numa_node=gpu.get("numa_node"),
                                   links=dict(gpu.get("links") or {})) for gpu in topology.get("gpus") or ()),
            nics=tuple(TopologyNic(name=nic["name"], device=nic.get("device"), links=dict(nic.get("links") or {}))
                       for nic in topology.get("nics") or ()),
        )


# --- CPU, NUMA, memory ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Cpu:
    """``lscpu``: model and topology; ``None`` where lscpu does not report a value."""

    architecture: str | None = None
    model_name: str | None = None
    cpus: int | None = None
    sockets: int | None = None
    cores_per_socket: int | None = None
    threads_per_core: int | None = None
    numa_nodes: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    hypervisor_vendor: str | None = None
    virtualization_type: str | None = None

    @property
    def physical_cores(self) -> int | None:
        """Sockets x cores per socket; the CPU count when lscpu does not say."""
        if self.sockets and self.cores_per_socket:
            return self.sockets * self.cores_per_socket
        return self.cpus

    @classmethod
    def from_fact(cls, cpu: Mapping[str, Any] | None) -> Cpu:
        """From ``parse_lscpu`` output (``{}`` when lscpu printed nothing usable)."""
        cpu = cpu or _EMPTY
        return cls(
            architecture=cpu.get("architecture"), model_name=cpu.get("model_name"), cpus=cpu.get("cpus"),
            sockets=cpu.get("sockets"), cores_per_socket=cpu.get("cores_per_socket"),
            threads_per_core=cpu.get("threads_per_core"),
            numa_nodes={int(node): _ints(cpus) for node, cpus in (cpu.get("numa_nodes") or {}).items()},
            flags=tuple(cpu.get("flags") or ()), hypervisor_vendor=cpu.get("hypervisor_vendor"),
            virtualization_type=cpu.get("virtualization_type"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Online:
    """CPUs and NUMA nodes the kernel schedules on (sysfs): what systemd accepts in a unit."""

    cpus: tuple[int, ...] = ()
    nodes: tuple[int, ...] = ()

    @classmethod
    def from_fact(cls, online: Mapping[str, Any] | None) -> Online:
        online = online or _EMPTY
        return cls(cpus=_ints(online.get("cpus")), nodes=_ints(online.get("nodes")))


@dataclass(frozen=True, slots=True, kw_only=True)
class NumaNode:
    cpus: tuple[int, ...] = ()  # empty for memory-only nodes (CXL, Grace Hopper GPU memory)
    memory_mb: int | None = None
    free_mb: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Numa:
    """``numactl --hardware``: nodes with CPUs and memory, and the distance matrix."""

    nodes: Mapping[int, NumaNode] = field(default_factory=dict)
    distances: Mapping[int, Mapping[int, int]] = field(default_factory=dict)

    def node_cpus(self) -> dict[int, tuple[int, ...]]:
        """Node -> CPUs, memory-only nodes left out."""
        return {node: info.cpus for node, info in self.nodes.items() if info.cpus}

    @classmethod
    def from_fact(cls, numa: Mapping[str, Any] | None) -> Numa:
        """From ``parse_numactl_hardware`` output."""
        numa = numa or _EMPTY
        return cls(
            nodes={int(node): NumaNode(cpus=_ints(info.get("cpus")), memory_mb=info.get("memory_mb"),
                                       free_mb=info.get("free_mb"))
                   for node, info in sorted((numa.get("nodes") or {}).items())},
            distances={int(a): {int(b): int(d) for b, d in row.items()} for a, row in (numa.get("distances") or {}).items()},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Memory:
    """``/proc/meminfo``: the totals roles size things by (kB as the kernel reports them)."""

    total_kb: int | None = None
    total_mb: int | None = None
    hugepages_total: int | None = None
    hugepages_free: int | None = None
    hugepage_size_kb: int | None = None

    @classmethod
    def from_fact(cls, meminfo: Mapping[str, Any] | None) -> Memory:
        """From ``parse_meminfo`` output; ``total_mb`` follows ``MemTotal`` when only that is given."""
        meminfo = meminfo or _EMPTY
        total_kb = meminfo.get("MemTotal")
        total_mb = meminfo.get("mem_total_mb")
        if total_mb is None and total_kb is not None:
            total_mb = total_kb // 1024
        return cls(
            total_kb=total_kb, total_mb=total_mb, hugepages_total=meminfo.get("HugePages_Total"),
            hugepages_free=meminfo.get("HugePages_Free"), hugepage_size_kb=meminfo.get("Hugepagesize"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HugepagePool:
    total: int = 0
    free: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Hugepages:
    """Hugepage pools per page size (kB), and configured pages per NUMA node and size."""

    sizes_kb: Mapping[int, HugepagePool] = field(default_factory=dict)
    per_node: Mapping[int, Mapping[int, int]] = field(default_factory=dict)

    @property
    def total_mib(self) -> int:
        return sum(size_kb * pool.total // 1024 for size_kb, pool in self.sizes_kb.items())

    @classmethod
    def from_fact(cls, hugepages: Mapping[str, Any] | None) -> Hugepages:
        """From ``parse_hugepages_sysfs`` output."""
        hugepages = hugepages or _EMPTY
        return cls(
            sizes_kb={int(size): HugepagePool(total=int(pool.get("total", 0)), free=int(pool.get("free", 0)))
                      for size, pool in (hugepages.get("sizes_kb") or {}).items()},
            per_node={int(node): {int(size): int(count) for size, count in sizes.items()}
                      for node, sizes in (hugepages.get("per_node") or {}).items()},
        )


# --- kernel, devices, system ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Cmdline:
    """The boot command line: raw, and ordered ``(key, value)`` pairs (``None`` for a flag)."""

    raw: str = ""
    params: tuple[tuple[str, str | None], ...] = ()
    init_args: tuple[str, ...] = ()

    @classmethod
    def from_fact(cls, cmdline: Mapping[str, Any] | None) -> Cmdline:
        cmdline = cmdline or _EMPTY
        return cls(raw=cmdline.get("raw") or "", params=tuple((key, value) for key, value in cmdline.get("params") or ()),
                   init_args=tuple(cmdline.get("init_args") or ()))


@dataclass(frozen=True, slots=True, kw_only=True)
class IbPort:
    """One CA port as ``ibstat`` shows it."""

    ca: str
    port: int
    ca_type: str | None = None
    firmware: str | None = None
    state: str | None = None
    physical_state: str | None = None
    rate_gbps: int | float | None = None
    link_layer: str | None = None

    @classmethod
    def from_fact(cls, port: Mapping[str, Any]) -> IbPort:
        return cls(
            ca=port["ca"], port=int(port["port"]), ca_type=port.get("ca_type"), firmware=port.get("firmware"),
            state=port.get("state"), physical_state=port.get("physical_state"), rate_gbps=port.get("rate_gbps"),
            link_layer=port.get("link_layer"),
        )


class IbPorts(tuple[IbPort, ...]):
    """Every CA port ``ibstat`` lists, in its order (empty: no HCA, or no ``ibstat``)."""

    __slots__ = ()

    @classmethod
    def from_fact(cls, ports: list[Mapping[str, Any]] | None) -> IbPorts:
        """From ``parse_ibstat`` output."""
        return cls(IbPort.from_fact(port) for port in ports or ())


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockDevice:
    name: str
    type: str | None = None
    size_bytes: int | None = None
    model: str | None = None
    rotational: bool | None = None
    transport: str | None = None
    mountpoint: str | None = None
    parent: str | None = None

    @classmethod
    def from_fact(cls, device: Mapping[str, Any]) -> BlockDevice:
        return cls(
            name=str(device.get("name", "")), type=device.get("type"), size_bytes=device.get("size_bytes"),
            model=device.get("model"), rotational=device.get("rotational"), transport=device.get("transport"),
            mountpoint=device.get("mountpoint"), parent=device.get("parent"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NetInterface:
    state: str | None = None
    speed_mbps: int | None = None  # None when the driver reports no speed
    mtu: int | None = None
    mac: str | None = None
    type: str | None = None  # "ether", "infiniband", "loopback", ...

    @classmethod
    def from_fact(cls, interface: Mapping[str, Any]) -> NetInterface:
        return cls(state=interface.get("state"), speed_mbps=interface.get("speed_mbps"), mtu=interface.get("mtu"),
                   mac=interface.get("mac"), type=interface.get("type"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Virtualization:
    """The container runtime and hypervisor this host runs under (``None``: bare)."""

    container: str | None = None
    vm: str | None = None

    @classmethod
    def from_fact(cls, virtualization: Mapping[str, Any] | None) -> Virtualization:
        virtualization = virtualization or _EMPTY
        return cls(container=virtualization.get("container"), vm=virtualization.get("vm"))


@dataclass(frozen=True, slots=True, kw_only=True)
class OsRelease:
    """The ``/etc/os-release`` fields that decide package sources and versions."""

    id: str | None = None
    id_like: tuple[str, ...] = ()
    version_id: str | None = None
    codename: str | None = None
    pretty_name: str | None = None

    @classmethod
    def from_fact(cls, os_release: Mapping[str, Any] | None) -> OsRelease:
        os_release = os_release or _EMPTY
        return cls(id=os_release.get("id"), id_like=tuple(os_release.get("id_like") or ()),
                   version_id=os_release.get("version_id"), codename=os_release.get("codename"),
                   pretty_name=os_release.get("pretty_name"))


class Hostname(str):
    """The host's own name (``hostname``); ``""`` when it could not be read."""

    __slots__ = ()

    @classmethod
    def from_fact(cls, name: str | None) -> Hostname:
        return cls(name or "")


# --- the whole reading ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Hardware:
    """Every hardware section of one host, typed; see the section classes above."""

    hostname: Hostname = Hostname()
    pci_devices: tuple[PciDevice, ...] = ()
    topology: Topology = Topology()
    gpus: tuple[Gpu, ...] = ()
    cpu: Cpu = Cpu()
    online: Online = Online()
    numa: Numa = Numa()
    ib_ports: IbPorts = IbPorts()  # as ibstat shows them (once infiniband-diags is installed)
    ib_sysfs_ports: IbPorts = IbPorts()  # as the kernel shows them (/sys/class/infiniband), no tool needed
    memory: Memory = Memory()
    hugepages: Hugepages = Hugepages()
    cmdline: Cmdline = Cmdline()
    kernel_release: str | None = None
    block_devices: tuple[BlockDevice, ...] = ()
    network: Mapping[str, NetInterface] = field(default_factory=dict)
    virtualization: Virtualization = Virtualization()
    os_release: OsRelease = OsRelease()
    # Section name -> why it fell back to its default ("lspci not found"): "not installed
    # yet" reads differently from "no devices".
    unavailable: Mapping[str, str] = field(default_factory=dict)

    @property
    def pci_gpus(self) -> tuple[PciDevice, ...]:
        return tuple(device for device in self.pci_devices if device.is_gpu)

    @property
    def rdma_ports(self) -> IbPorts:
        """The RDMA ports: the kernel's own view where it has one (a fresh node has no
        ``ibstat`` yet), else ``ibstat``'s."""
        return self.ib_sysfs_ports or self.ib_ports

    @property
    def has_nvswitch(self) -> bool:
        return any(device.is_nvswitch for device in self.pci_devices)

    def part(self, kind: type[T]) -> T:
        """The section of class ``kind`` (``Virtualization``, ``OsRelease``, ...)."""
        return getattr(self, SECTIONS[PART_SECTION[kind]][0])

    @classmethod
    def from_sections(cls, sections: Mapping[str, Any]) -> Hardware:
        """Build the reading from ``parse_host_hardware`` output: section name -> its fact's
        parsed value (``"unavailable"``: why sections fell back). Missing sections are empty."""
        values: dict[str, Any] = {
            attribute: build(sections[name]) for name, (attribute, build) in SECTIONS.items() if name in sections
        }
        return cls(**values, unavailable=dict(sections.get("unavailable") or {}))


def _each(build: Callable[[Mapping[str, Any]], T]) -> Callable[[Any], tuple[T, ...]]:
    return lambda items: tuple(build(item) for item in items or ())


# ``HostHardware`` section name -> (``Hardware`` attribute, builder from the fact's value).
SECTIONS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "hostname": ("hostname", Hostname.from_fact),
    "nvidia_pci": ("pci_devices", _each(PciDevice.from_fact)),
    "gpu_topology": ("topology", Topology.from_fact),
    "gpu_inventory": ("gpus", _each(Gpu.from_fact)),
    "cpu": ("cpu", Cpu.from_fact),
    "online": ("online", Online.from_fact),
    "numa": ("numa", Numa.from_fact),
    "ibstat": ("ib_ports", IbPorts.from_fact),
    "ib_sysfs": ("ib_sysfs_ports", IbPorts.from_fact),
    "meminfo": ("memory", Memory.from_fact),
    "hugepages": ("hugepages", Hugepages.from_fact),
    "cmdline": ("cmdline", Cmdline.from_fact),
    "kernel_release": ("kernel_release", lambda release: release or None),
    "block_devices": ("block_devices", _each(BlockDevice.from_fact)),
    "network": ("network", lambda nics: {name: NetInterface.from_fact(nic) for name, nic in (nics or {}).items()}),
    "virtualization": ("virtualization", Virtualization.from_fact),
    "os_release": ("os_release", OsRelease.from_fact),
}

# Section classes a role may ask for alone (``hardware_part``), and the section each is.
PART_SECTION: dict[type, str] = {
    Hostname: "hostname", Topology: "gpu_topology", Cpu: "cpu", Online: "online", Numa: "numa",
    IbPorts: "ibstat", Memory: "meminfo", Hugepages: "hugepages", Cmdline: "cmdline",
    Virtualization: "virtualization", OsRelease: "os_release",
}


def build_part(kind: type[T], value: Any) -> T:
    """Section ``kind`` from its own small fact's value (the same builder the reading uses)."""
    return SECTIONS[PART_SECTION[kind]][1](value)
