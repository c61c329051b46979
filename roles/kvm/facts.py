"""``LibvirtDomain``: a guest's state and its persistent and live definitions."""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra.api import FactBase
from typing_extensions import override

from roles.kvm.domain import parse_domain_xml

_SECTIONS = ("@@state", "@@config", "@@live")


def parse_libvirt_domain(lines: list[str]) -> dict[str, Any]:
    """``{"exists", "state", "config", "live"}``; ``live`` only for a running guest.

    >>> parse_libvirt_domain(["@@state", "shut off", "@@config", "<domain><name>g</name></domain>", "@@live"])["state"]
    'shut off'
    """
    chunks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.strip() in _SECTIONS:
            current = chunks.setdefault(line.strip(), [])
        elif current is not None:
            current.append(line)
    state = " ".join(line.strip() for line in chunks.get("@@state", []) if line.strip()) or None
    config_xml = "\n".join(chunks.get("@@config", [])).strip()
    live_xml = "\n".join(chunks.get("@@live", [])).strip()
    exists = bool(state and config_xml)
    return {
        "exists": exists,
        "state": state if exists else None,
        "config": parse_domain_xml(config_xml) if exists else None,
        "live": parse_domain_xml(live_xml) if exists and state == "running" and live_xml else None,
    }


class LibvirtDomain(FactBase[dict[str, Any]]):
    """One libvirt domain (``virsh dumpxml --inactive`` and, when running, the live XML).

    .. code:: python

        {"exists": True, "state": "running",
         "config": {"name": "gpu-guest-0", "vcpus": 16, "vcpupin": {0: [2], ...},
                    "emulatorpin": [0, 1], "numatune": {"mode": "strict", "nodeset": [0]},
                    "hugepages": True, "hostdevs": ["0000:18:00.0"], ...},
         "live": {...}}
    """

    @override
    @staticmethod
    def default() -> dict[str, Any]:
        return {"exists": False, "state": None, "config": None, "live": None}

    @override
    def requires_command(self, domain: str) -> str:
        return "virsh"

    @override
    def command(self, domain: str) -> str:
        domain = shlex.quote(domain)
        return (
            f"echo @@state; virsh domstate {domain} 2>/dev/null; "
            f"echo @@config; virsh dumpxml --inactive {domain} 2>/dev/null; "
            f"echo @@live; [ \"$(virsh domstate {domain} 2>/dev/null)\" = running ] && virsh dumpxml {domain}; true"
        )

    @override
    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_libvirt_domain(output)
