"""The node facts file (/etc/deepseek/node.json): discovered hardware, stable fields only.

Only values that change when the hardware or OS changes go in (no free memory, no
temperatures, no link state that flaps), so rewriting the file is a real change, and a
re-run on an unchanged host writes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from deepseek_infra.cpulist import format_cpulist
from deepseek_infra.hardware import Hardware

SCHEMA_VERSION = 1


def node_facts_document(hostname: str, hardware: Hardware) -> dict[str, Any]:
    """Reduce the hardware reading to the stable description other tools read."""
    affinity = {gpu.name: gpu for gpu in hardware.topology.gpus}
    gpus = []
    for gpu in hardware.gpus:
        placement = affinity.get(f"GPU{gpu.index}")
        gpus.append({
            "index": gpu.index,
            "name": gpu.name,
            "pci_bus_id": gpu.pci_bus_id,
            "memory_mib": gpu.memory_total_mib,
            "compute_capability": gpu.compute_capability,
            "numa_node": placement.numa_node if placement else None,
            "cpus": format_cpulist(placement.cpus if placement else []),
        })
    cpu, os_release, virtualization = hardware.cpu, hardware.os_release, hardware.virtualization
    return {
        "schema": SCHEMA_VERSION,
        "hostname": hostname,
        "os": {"id": os_release.id, "version_id": os_release.version_id, "codename": os_release.codename},
        "kernel": hardware.kernel_release or None,
        "virtualization": {"vm": virtualization.vm, "container": virtualization.container},
        "cpu": {
            "model": cpu.model_name,
            "cpus": cpu.cpus,
            "sockets": cpu.sockets,
            "cores_per_socket": cpu.cores_per_socket,
            "threads_per_core": cpu.threads_per_core,
        },
        "numa_nodes": {
            str(node): {"cpus": format_cpulist(info.cpus), "memory_mb": info.memory_mb}
            for node, info in sorted(hardware.numa.nodes.items())
        },
        "memory_mb": hardware.memory.total_mb,
        "nvidia_pci_devices": sorted(f"{dev.slot} {dev.device_id}" for dev in hardware.pci_devices),
        "gpus": gpus,
        "infiniband": sorted(
            ({"ca": port.ca, "port": port.port, "link_layer": port.link_layer} for port in hardware.rdma_ports),
            key=lambda port: (str(port["ca"]), port["port"] or 0),
        ),
        "block_devices": [
            {"name": dev.name, "model": dev.model, "size_bytes": dev.size_bytes, "transport": dev.transport}
            for dev in hardware.block_devices
            if dev.type == "disk"
        ],
    }


def render_node_facts(hostname: str, hardware: Hardware) -> str:
    return json.dumps(node_facts_document(hostname, hardware), indent=2, sort_keys=True) + "\n"
