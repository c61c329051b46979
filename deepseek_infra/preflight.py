"""Preflight: what a host has against what the configured model and engine need.

Pure: it takes the typed hardware reading (``deepseek_infra.hardware.Hardware``), the
filesystem under the weights path and the requirements, and returns a report; the
preflight role gathers the facts and decides what a failure stops. Each check has a verdict:

- ``pass``: requirement met;
- ``fail``: the host cannot serve this configuration; the deploy stops for it;
- ``warn``: not blocking (e.g. the driver is not installed yet, so GPU memory comes from
  the PCI device table; a later role fixes what is reported).

Default thresholds follow the design brief's server bar (GPU >= 40 GB and BF16, i.e.
compute capability >= 8.0; >= 32 CPU cores; NVMe; 10 GbE or InfiniBand HDR between nodes).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from deepseek_infra.catalog import ModelSpec
from deepseek_infra.gpus import lookup_gpu
from deepseek_infra.hardware import Hardware
from deepseek_infra.sizing import ServingPlan, plan_serving, required_disk_gb

Verdict = Literal["pass", "fail", "warn"]
GIB = 2**30
HDR_GBPS = 200  # InfiniBand HDR, the brief's bar for traffic between nodes


@dataclass(frozen=True, slots=True, kw_only=True)
class Requirements:
    min_gpu_memory_gib: float = 40
    min_compute_capability: float = 8.0
    min_cpu_cores: int = 32
    min_memory_gib: float = 64
    kept_releases: int = 2
    min_network_gbps: float = 10
    min_ib_gbps_multinode: float = HDR_GBPS
    nodes: int = 1  # nodes serving one model replica together
    max_model_len: int | None = None


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    needed: str
    found: str
    verdict: Verdict
    detail: str = ""


@dataclass(frozen=True, slots=True)
class GpuSummary:
    count: int
    name: str | None
    memory_mib: float | None
    compute_capability: float | None
    source: str  # "driver" (nvidia-smi) or "pci" (device table, before any driver)
    driver_version: str | None


@dataclass(frozen=True, slots=True)
class PreflightReport:
    host: str
    model: str
    engine: str
    gpus: GpuSummary
    checks: list[Check] = field(default_factory=list)
    plan: ServingPlan | None = None
    replica: str | None = None  # "replica 'r1' (a head, b)" for a host of a multi-node replica

    @property
    def passed(self) -> bool:
        return all(check.verdict != "fail" for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.verdict == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host, "replica": self.replica, "model": self.model, "engine": self.engine, "passed": self.passed,
            "gpus": asdict(self.gpus),
            "checks": [asdict(check) for check in self.checks],
            "plan": asdict(self.plan) if self.plan else None,
        }

    def render_table(self) -> str:
        rows = [("check", "needed", "found", "verdict")]
        rows += [(c.name, c.needed, c.found, c.verdict.upper()) for c in self.checks]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        where = f"{self.host} ({self.replica})" if self.replica else self.host
        lines = [f"preflight {where}: {self.model} on {self.engine}: {'PASS' if self.passed else 'FAIL'}"]
        lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
        plan_reason = self.plan.reason if self.plan else None
        lines += [f"  - {c.name}: {c.detail}" for c in self.checks
                  if c.detail and c.verdict != "pass" and c.detail != plan_reason]
        if self.plan:
            lines.append(f"  plan: {self.plan.reason}")
        return "\n".join(lines)


def summarize_gpus(hardware: Hardware) -> GpuSummary:
    """GPUs from nvidia-smi when the driver answers, else from lspci and the device table."""
    inventory = hardware.gpus
    if inventory:
        first = inventory[0]
        memories = [gpu.memory_total_mib for gpu in inventory if gpu.memory_total_mib is not None]
        capability = first.compute_capability
        if capability is None:
            known = lookup_gpu(name=first.name)
            capability = float("%d.%d" % known.compute_capability) if known else None
        return GpuSummary(
            count=len(inventory), name=first.name,
            memory_mib=min(memories) if memories else None,
            compute_capability=float(capability) if capability is not None else None,
            source="driver", driver_version=first.driver_version,
        )
    devices = hardware.pci_gpus
    models = [lookup_gpu(pci_device_id=dev.device_id) for dev in devices]
    known = [model for model in models if model]
    memory = None
    if known and len(known) == len(models):
        memory = min(model.memory_mib or model.memory_gb * 1e9 / 2**20 for model in known)
    return GpuSummary(
        count=len(devices), name=known[0].smi_name if known else None, memory_mib=memory,
        compute_capability=min(float("%d.%d" % m.compute_capability) for m in known) if known else None,
        source="pci", driver_version=None,
    )


def _network_gbps(hardware: Hardware) -> tuple[float, str]:
    best, where = 0.0, "none"
    for name, nic in hardware.network.items():
        speed = nic.speed_mbps
        if nic.type != "loopback" and speed and speed / 1000 > best:
            best, where = speed / 1000, name
    for port in hardware.rdma_ports:
        rate = port.rate_gbps or 0
        if port.state == "Active" and rate > best:
            best, where = float(rate), f"{port.ca}/{port.port}"
    return best, where


def _fabric_check(hardware: Hardware, min_gbps: float) -> Check:
    """InfiniBand for a multi-node replica, from the kernel's sysfs (ibstat only where sysfs has
    nothing): a fresh node passes or fails on its fabric, not on a tool installed later."""
    ports = hardware.rdma_ports
    expected = f">= {min_gbps:g} Gb/s active (multi-node)"
    why = "pipeline parallelism across nodes needs an HDR (200 Gb/s) or faster fabric"
    if not ports:
        source = ("no RDMA device in /sys/class/infiniband (HCA driver not loaded?)"
                  + ("" if "ibstat" in hardware.unavailable else ", none in ibstat"))
        return Check("infiniband", expected, source, "fail", why)
    source = "sysfs" if hardware.ib_sysfs_ports else "ibstat"
    active = [p for p in ports if p.state == "Active" and p.link_layer == "InfiniBand"]
    best = max((p.rate_gbps or 0 for p in active), default=0)
    return Check("infiniband", expected, f"{len(active)} of {len(ports)} port(s) active, best {best:g} Gb/s ({source})",
                 "pass" if best >= min_gbps else "fail", why)


def _fmt_gib(value: float) -> str:
    return f"{value:,.0f} GiB" if value >= 10 else f"{value:.1f} GiB"


def evaluate(
    host: str,
    hardware: Hardware,
    weights_fs: dict[str, Any] | None,
    model: ModelSpec,
    engine: str,
    requirements: Requirements,
) -> PreflightReport:
    """Compare the host with the requirements; never raises on missing data (verdicts say it)."""
    gpus = summarize_gpus(hardware)
    checks: list[Check] = []
    cpu_only_ok = engine == "transformers"

    if gpus.count == 0:
        checks.append(Check("gpus", ">= 1 NVIDIA GPU", "none", "warn" if cpu_only_ok else "fail",
                            "transformers can serve on the CPU" if cpu_only_ok else
                            f"{engine} needs NVIDIA GPUs; none was found by nvidia-smi or lspci"))
    else:
        checks.append(Check("gpus", ">= 1 NVIDIA GPU", f"{gpus.count} x {gpus.name or 'unknown model'}", "pass",
                            "" if gpus.source == "driver" else "from lspci (driver not installed yet)"))

    plan: ServingPlan | None = None
    if gpus.count:
        needed_cc = max(requirements.min_compute_capability, model.min_compute_capability)
        if gpus.memory_mib is None:
            checks.append(Check("gpu memory", f">= {requirements.min_gpu_memory_gib:g} GiB", "unknown", "warn",
                                "GPU model not in the device table and no driver yet: install the driver, then rerun"))
        else:
            memory_gib = gpus.memory_mib / 1024
            checks.append(Check(
                "gpu memory", f">= {requirements.min_gpu_memory_gib:g} GiB per GPU", _fmt_gib(memory_gib),
                "pass" if memory_gib >= requirements.min_gpu_memory_gib else "fail",
            ))
        if gpus.compute_capability is None:
            checks.append(Check("compute capability", f">= {needed_cc:.1f}", "unknown", "warn"))
        else:
            checks.append(Check(
                "compute capability", f">= {needed_cc:.1f}", f"{gpus.compute_capability:.1f}",
                "pass" if gpus.compute_capability >= needed_cc else "fail",
                f"{model.name} ({model.dtype}) needs {model.min_compute_capability:g}; the brief's bar is "
                f"{requirements.min_compute_capability:g} (BF16)",
            ))
        if gpus.memory_mib is not None:
            try:
                plan = plan_serving(model, gpus.memory_mib, gpus.count, nodes=requirements.nodes,
                                    engine=engine, max_model_len=requirements.max_model_len)
                checks.append(Check(
                    "serving plan", f"{model.name} on {requirements.nodes} node(s)",
                    f"TP {plan.tensor_parallel_size} x PP {plan.pipeline_parallel_size}, len {plan.max_model_len}"
                    if plan.fits else "does not fit",
                    "pass" if plan.fits else "fail", plan.reason,
                ))
            except ValueError as error:
                checks.append(Check("serving plan", f"{model.name} on {engine}", "invalid", "fail", str(error)))

    cores = hardware.cpu.physical_cores
    checks.append(Check(
        "cpu cores", f">= {requirements.min_cpu_cores}", str(cores) if cores else "unknown",
        "warn" if cores is None else ("pass" if cores >= requirements.min_cpu_cores else "fail"),
    ))

    mem_mb = hardware.memory.total_mb
    checks.append(Check(
        "memory", f">= {requirements.min_memory_gib:g} GiB", _fmt_gib(mem_mb / 1024) if mem_mb else "unknown",
        "warn" if not mem_mb else ("pass" if mem_mb / 1024 >= requirements.min_memory_gib else "fail"),
    ))

    disk_needed_gb = required_disk_gb(model, requirements.kept_releases + 1)
    if weights_fs and weights_fs.get("size_bytes"):
        size_gb = weights_fs["size_bytes"] / 1e9
        device = str(weights_fs.get("device") or "?")
        checks.append(Check(
            "weights storage", f">= {disk_needed_gb:,} GB ({requirements.kept_releases} kept + 1 new)",
            f"{size_gb:,.0f} GB on {device}",
            "pass" if size_gb >= disk_needed_gb else "fail",
            "" if "nvme" in device else f"{weights_fs.get('existing_path')} is not on an NVMe device ({device})",
        ))
    else:
        checks.append(Check("weights storage", f">= {disk_needed_gb:,} GB", "unknown", "warn",
                            "the filesystem under the weights path could not be read"))

    gbps, where = _network_gbps(hardware)
    checks.append(Check(
        "network", f">= {requirements.min_network_gbps:g} Gb/s", f"{gbps:g} Gb/s ({where})" if gbps else "unknown",
        "pass" if gbps >= requirements.min_network_gbps else ("warn" if not gbps else "fail"),
    ))
    if requirements.nodes > 1:
        checks.append(_fabric_check(hardware, requirements.min_ib_gbps_multinode))

    if gpus.driver_version:
        checks.append(Check("nvidia driver", "installed", gpus.driver_version, "pass"))
    elif gpus.count:
        checks.append(Check("nvidia driver", "installed", "not installed", "warn",
                            "the NVIDIA stack role installs it"))

    return PreflightReport(host=host, model=model.hf_repo, engine=engine, gpus=gpus, checks=checks, plan=plan)


def reports_to_json(reports: list[PreflightReport]) -> str:
    return json.dumps({"hosts": [report.to_dict() for report in reports]}, indent=2, sort_keys=True) + "\n"
