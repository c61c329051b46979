"""The node facts file (/etc/deepseek/node.json): discovered hardware, stable fields only.

Only values that change when the hardware or OS changes go in (no free memory, no
temperatures, no link state that flaps), so rewriting the file is a real change, and a
re-run on an unchanged host writes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from deepseek_infra.cpulist import format_cpulist

SCHEMA_VERSION = 1


def node_facts_document(hostname: str, hardware: dict[str, Any]) -> dict[str, Any]:
    """Reduce the ``HostHardware`` fact to the stable description other tools read."""
    cpu = hardware.get("cpu") or {}
    numa = (hardware.get("numa") or {}).get("nodes") or {}
    topology = hardware.get("gpu_topology") or {}
    affinity = {gpu["name"]: gpu for gpu in topology.get("gpus", [])}
    gpus = []
    for gpu in hardware.get("gpu_inventory") or []:
        placement = affinity.get(f"GPU{gpu.get('index')}", {})
        gpus.append({
            "index": gpu.get("index"),
            "name": gpu.get("name"),
            "pci_bus_id": gpu.get("pci.bus_id"),
            "memory_mib": gpu.get("memory.total"),
            "compute_capability": gpu.get("compute_cap"),
            "numa_node": placement.get("numa_node"),
            "cpus": format_cpulist(placement.get("cpus", [])),
        })
    block_devices = [
        {"name": dev.get("name"), "model": dev.get("model"), "size_bytes": dev.get("size_bytes"),
         "transport": dev.get("transport")}
        for dev in hardware.get("block_devices") or []
        if dev.get("type") == "disk"
    ]
    virtualization = hardware.get("virtualization") or {}
    os_release = hardware.get("os_release") or {}
    return {
        "schema": SCHEMA_VERSION,
        "hostname": hostname,
        "os": {key: os_release.get(key) for key in ("id", "version_id", "codename")},
        "kernel": hardware.get("kernel_release") or None,
        "virtualization": {"vm": virtualization.get("vm"), "container": virtualization.get("container")},
        "cpu": {
            "model": cpu.get("model_name"),
            "cpus": cpu.get("cpus"),
            "sockets": cpu.get("sockets"),
            "cores_per_socket": cpu.get("cores_per_socket"),
            "threads_per_core": cpu.get("threads_per_core"),
        },
        "numa_nodes": {
            str(node): {"cpus": format_cpulist(info.get("cpus", [])), "memory_mb": info.get("memory_mb")}
            for node, info in sorted(numa.items())
        },
        "memory_mb": (hardware.get("meminfo") or {}).get("mem_total_mb"),
        "nvidia_pci_devices": sorted(
            f"{dev.get('slot')} {dev.get('device_id')}" for dev in hardware.get("nvidia_pci") or []
        ),
        "gpus": gpus,
        "infiniband": sorted(
            ({"ca": port.get("ca"), "port": port.get("port"), "link_layer": port.get("link_layer")}
             for port in hardware.get("ibstat") or []),
            key=lambda port: (str(port["ca"]), port["port"] or 0),
        ),
        "block_devices": block_devices,
    }


def render_node_facts(hostname: str, hardware: dict[str, Any]) -> str:
    return json.dumps(node_facts_document(hostname, hardware), indent=2, sort_keys=True) + "\n"
