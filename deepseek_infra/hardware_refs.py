"""Settings that name a host's hardware, checked against what the host has.

A GPU index, a CPU list, a NUMA node, an HCA, a network interface or a PCI address typed
into host data is valid syntax anywhere and wrong on most hosts. Pure: it takes the typed
hardware reading (``deepseek_infra.hardware.Hardware``) and the settings' values by key,
and returns ``(key, message)`` for each reference the host does not have; preflight shows
them and each role that uses one refuses it while preparing, before any host is changed.
A section the host could not report (no ``lspci``, no sysfs) is not judged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from deepseek_infra.cpulist import format_cpulist, parse_cpulist
from deepseek_infra.hardware import Hardware

#: kernel parameters whose value is a cpulist (isolcpus= may start with flags: "managed_irq,domain,2-5")
CPULIST_PARAMS = ("isolcpus", "nohz_full", "rcu_nocbs", "irqaffinity", "rcu_nocb_poll_cpus")
_ISOLCPUS_FLAGS = {"nohz", "domain", "managed_irq"}

#: the settings this module reads (roles/settings.py hands their values over)
REFERENCE_KEYS = (
    "tuning_gpu_indices", "tuning_nccl_env", "kernel_isolated_cpus", "kernel_cmdline_extra",
    "kvm_guests", "netcheck_ib", "netcheck_ib_device",
)


def online_cpus(hardware: Hardware) -> tuple[int, ...]:
    """CPUs the kernel schedules on: sysfs, else numactl's nodes, else lscpu's count."""
    if hardware.online.cpus:
        return hardware.online.cpus
    from_nodes = sorted({cpu for node in hardware.numa.nodes.values() for cpu in node.cpus})
    if from_nodes:
        return tuple(from_nodes)
    return tuple(range(hardware.cpu.cpus)) if hardware.cpu.cpus else ()


def numa_nodes(hardware: Hardware) -> tuple[int, ...]:
    return hardware.online.nodes or tuple(sorted(hardware.numa.nodes)) or tuple(sorted(hardware.cpu.numa_nodes))


def gpu_indices(hardware: Hardware) -> tuple[int, ...] | None:
    """nvidia-smi's indices; before any driver, 0..n-1 over the PCI GPUs (nvidia-smi's
    default order is PCI bus order); None when neither could be read."""
    if hardware.gpus:
        return tuple(gpu.index if gpu.index is not None else position for position, gpu in enumerate(hardware.gpus))
    if "nvidia_pci" in hardware.unavailable and "gpu_inventory" in hardware.unavailable:
        return None
    return tuple(range(len(hardware.pci_gpus)))


def _pci(address: str) -> str:
    address = address.lower()
    return address if address.count(":") == 2 else f"0000:{address}"


def _missing(wanted: Iterable[int], present: Iterable[int]) -> list[int]:
    present = set(present)
    return sorted(set(wanted) - present)


def _cpulist_param(key: str, value: str) -> str:
    if key == "isolcpus":  # [flag,...,]cpulist: drop the leading flag words
        parts = value.split(",")
        while parts and parts[0] in _ISOLCPUS_FLAGS:
            parts.pop(0)
        value = ",".join(parts)
    return value


def _cpus_problem(key: str, text: str, cpus: tuple[int, ...], what: str) -> tuple[str, str] | None:
    try:
        wanted = parse_cpulist(text)
    except ValueError:
        return None  # a syntax error is the settings' own validation's to report
    missing = _missing(wanted, cpus)
    if not missing:
        return None
    return key, (f"{what} names CPU(s) {format_cpulist(missing)}, which this host does not have "
                 f"(online CPUs: {format_cpulist(cpus)})")


def _interface_problems(key: str, value: str, interfaces: Iterable[str]) -> list[tuple[str, str]]:
    """NCCL_SOCKET_IFNAME: comma-separated prefixes, ``=name`` exact, ``^...`` excludes."""
    if value.startswith("^"):
        return []
    exact = value.startswith("=")
    names = sorted(name for name in interfaces if name != "lo")
    problems = []
    for entry in filter(None, value.lstrip("=").split(",")):
        if not any(name == entry if exact else name.startswith(entry) for name in names):
            problems.append((key, f"NCCL_SOCKET_IFNAME={value}: no interface {'named' if exact else 'starting with'} "
                                  f"{entry!r} on this host (interfaces: {', '.join(names) or 'none'})"))
    return problems


def reference_problems(hardware: Hardware, values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, message)`` for every hardware reference in ``values`` the host does not have."""
    problems: list[tuple[str, str]] = []
    cpus, nodes = online_cpus(hardware), numa_nodes(hardware)

    indices = values.get("tuning_gpu_indices")
    present = gpu_indices(hardware)
    if indices and present is not None:
        missing = _missing(indices, present)
        if missing:
            have = f"GPUs {', '.join(map(str, present))}" if present else "no NVIDIA GPU"
            problems.append(("tuning_gpu_indices", f"GPU index(es) {', '.join(map(str, missing))} not on this host "
                                                   f"(it has {have}); use indices from nvidia-smi -L, or None"))

    isolated = values.get("kernel_isolated_cpus")
    if isolated and cpus:
        found = _cpus_problem("kernel_isolated_cpus", isolated, cpus, f"{isolated!r}")
        if found:
            problems.append(found)
        elif set(parse_cpulist(isolated)) >= set(cpus) - {0}:
            problems.append(("kernel_isolated_cpus", f"{isolated!r} isolates every CPU but the boot CPU: nothing "
                                                     "would be left for the OS, IRQs and housekeeping"))

    for param, value in (values.get("kernel_cmdline_extra") or {}).items():
        if value is None:
            continue
        if param in CPULIST_PARAMS and cpus:
            found = _cpus_problem("kernel_cmdline_extra", _cpulist_param(param, value), cpus, f"{param}={value}")
            if found:
                problems.append(found)
        elif param == "hugepages" and ":" in value and nodes:  # per node: hugepages=0:16,1:16
            named = [int(item.split(":", 1)[0]) for item in value.split(",") if item.split(":", 1)[0].isdigit()]
            missing = _missing(named, nodes)
            if missing:
                problems.append(("kernel_cmdline_extra", f"hugepages={value} names NUMA node(s) "
                                 f"{', '.join(map(str, missing))}; this host has {', '.join(map(str, nodes))}"))

    if hardware.pci_devices or "nvidia_pci" not in hardware.unavailable:
        slots = {_pci(device.slot) for device in hardware.pci_devices}
        for guest in values.get("kvm_guests") or ():
            for address in guest.gpus:
                if _pci(address) not in slots:
                    gpus = ", ".join(sorted(_pci(device.slot) for device in hardware.pci_gpus)) or "none"
                    problems.append(("kvm_guests", f"guest {guest.name}: no NVIDIA device at PCI {address} on this host "
                                                   f"(its GPUs: {gpus})"))

    device = values.get("netcheck_ib_device")
    if device and values.get("netcheck_ib", True) and "ib_sysfs" not in hardware.unavailable:
        cas = sorted({port.ca for port in hardware.rdma_ports})
        if device not in cas:
            problems.append(("netcheck_ib_device", f"no RDMA device {device!r} on this host "
                                                   f"(/sys/class/infiniband has {', '.join(cas) or 'none'})"))

    ifname = (values.get("tuning_nccl_env") or {}).get("NCCL_SOCKET_IFNAME")
    if ifname and hardware.network:
        problems.extend(_interface_problems("tuning_nccl_env", ifname, hardware.network))
    return problems
