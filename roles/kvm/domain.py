"""libvirt guests: read a domain's pinning from its XML, and what to change (pure: no pyinfra).

The plan is ``deepseek_infra.pinning.plan_vcpu_pinning`` and the commands that apply it are
``deepseek_infra.pinning.virsh_commands`` (``--config``); this module keeps only the commands
whose setting differs from the domain's, and adds ``--live`` twins for a running guest
(vCPU and emulator pinning can change live; the memory mode cannot, it waits for the
next start).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from deepseek_infra.cpulist import parse_cpulist
from deepseek_infra.pinning import VcpuPlan, virsh_commands

_KIB = {"b": 1 / 1024, "bytes": 1 / 1024, "k": 1, "kib": 1, "kb": 1000 / 1024, "m": 1024, "mib": 1024,
        "mb": 1e6 / 1024, "g": 1024**2, "gib": 1024**2, "gb": 1e9 / 1024}


def parse_domain_xml(text: str) -> dict[str, Any]:
    """The fields of ``virsh dumpxml`` the kvm role manages.

    >>> parse_domain_xml("<domain><name>g</name><vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='3'/>"
    ...                  "</cputune></domain>")["vcpupin"]
    {0: [3]}
    """
    root = ET.fromstring(text)
    memory = root.find("memory")
    unit = (memory.get("unit", "KiB") if memory is not None else "KiB").lower()
    vcpu = root.find("vcpu")
    numa_memory = root.find("numatune/memory")
    emulator = root.find("cputune/emulatorpin")
    hostdevs = []
    for address in root.findall("devices/hostdev[@type='pci']/source/address"):
        parts = [int(address.get(key, "0"), 16) for key in ("domain", "bus", "slot", "function")]
        hostdevs.append(f"{parts[0]:04x}:{parts[1]:02x}:{parts[2]:02x}.{parts[3]:x}")
    return {
        "name": root.findtext("name"),
        "type": root.get("type"),
        "vcpus": int(vcpu.text) if vcpu is not None and vcpu.text else None,
        "memory_mib": int(int(memory.text) * _KIB.get(unit, 1) // 1024) if memory is not None and memory.text else None,
        "hugepages": root.find("memoryBacking/hugepages") is not None,
        "vcpupin": {int(pin.get("vcpu")): parse_cpulist(pin.get("cpuset", "")) for pin in root.findall("cputune/vcpupin")},
        "emulatorpin": parse_cpulist(emulator.get("cpuset", "")) if emulator is not None else None,
        "numatune": None if numa_memory is None else {
            "mode": numa_memory.get("mode", "strict"), "nodeset": parse_cpulist(numa_memory.get("nodeset", "")),
        },
        "hostdevs": sorted(hostdevs),
    }


def _setting(command: list[str]) -> tuple[tuple, Any]:
    """What one ``virsh_commands`` command sets: (key, wanted value)."""
    verb = command[1]
    if verb == "vcpupin":
        return ("vcpupin", int(command[3])), parse_cpulist(command[4])
    if verb == "emulatorpin":
        return ("emulatorpin",), parse_cpulist(command[3])
    if verb == "numatune":
        return ("numatune",), {"mode": command[command.index("--mode") + 1],
                               "nodeset": parse_cpulist(command[command.index("--nodeset") + 1])}
    raise ValueError(f"unexpected virsh command {command!r}")


def _current(state: Mapping[str, Any] | None, key: tuple) -> Any:
    if state is None:
        return None
    if key[0] == "vcpupin":
        return state["vcpupin"].get(key[1])
    return state[key[0]]


def pinning_changes(
    domain: str, plan: VcpuPlan, config: Mapping[str, Any] | None, live: Mapping[str, Any] | None,
) -> list[list[str]]:
    """The ``virsh`` commands that bring ``domain`` to ``plan``; ``[]`` when it already is.

    ``config`` is the parsed inactive XML (None: unknown, e.g. the domain is being defined
    in this run, so every setting is applied); ``live`` the running XML, None when shut off.
    """
    changes: list[list[str]] = []
    for command in virsh_commands(domain, plan):
        key, wanted = _setting(command)
        if config is None or _current(config, key) != wanted:
            changes.append(command)
        if live is not None and key[0] != "numatune" and _current(live, key) != wanted:
            changes.append([*command[:-1], "--live"])
    return changes


def describe(command: list[str]) -> str:
    return " ".join(command)
