"""Capture a real GPU host's hardware outputs, for lab profiles and parser fixtures.

Run it ON the machine (no pyinfra, no SSH): it runs the commands a lab profile is made
from (``lab/profiles/README.md``) and, when the collection is importable, the exact
commands of the collection's facts (``HostHardware``, ``NvidiaSmi``, ``NvidiaDriverState``,
...), and records NVML's own view of the GPUs when ``nvidia-ml-py`` is installed, so the
parsers can be checked against the driver's API rather than against themselves.

    python3 -m lab.capture OUTDIR

writes ``OUTDIR/capture.json`` (command, exit code, stdout, stderr per entry, plus
``nvml``) and each stdout byte for byte as ``OUTDIR/<name>.txt``. Check the files for
serial numbers and host names before publishing them.

Standard library only, apart from the optional imports named above.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# What a lab profile is made from (lab/profiles/README.md, step 1).
PROFILE_COMMANDS: dict[str, str] = {
    "nvidia-smi": "nvidia-smi",
    "nvidia-smi-L": "nvidia-smi -L",
    "nvidia-smi-q": "nvidia-smi -q",
    "nvidia-smi-topo-m": "nvidia-smi topo -m",
    "lscpu": "LC_ALL=C lscpu",
    "numactl-hardware": "numactl -H",
    "ibstat": "ibstat",
    "lspci-nvidia": "lspci -nn -d 10de:",
    "meminfo": "cat /proc/meminfo",
    "cmdline": "cat /proc/cmdline",
    "os-release": "cat /etc/os-release",
    "uname": "uname -a",
    # Which device groups the engine unit's DeviceAllow= names really exist (deepseek_infra/engine.py).
    "proc-devices": "cat /proc/devices",
    "dev-nvidia": "ls -l /dev/nvidia* /dev/nvidia-caps 2>&1",
}
COMMAND_TIMEOUT_S = 60


def fact_commands() -> dict[str, str]:
    """The collection's fact commands, keyed ``fact:<Name>``; empty when pyinfra is missing."""
    try:
        from deepseek_infra.facts import gpu, host, nvidia
    except ImportError as error:
        print(f"collection facts skipped: {error}", file=sys.stderr)
        return {}
    return {
        "fact:HostHardware": host.HostHardware().command(),
        "fact:NvidiaSmi": gpu.NVIDIA_SMI_COMMAND,
        "fact:GpuInventory": gpu.GPU_INVENTORY_COMMAND,
        "fact:GpuTopology": gpu.GPU_TOPOLOGY_COMMAND,
        "fact:NvidiaDriverState": nvidia.COMMAND,
    }


def run_command(command: str) -> dict[str, Any]:
    try:
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return {"command": command, "rc": None, "stdout": "", "stderr": f"timed out after {COMMAND_TIMEOUT_S}s"}
    return {"command": command, "rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _try(call, *args) -> Any:
    """One NVML query; a GPU or driver that does not support it records why instead."""
    try:
        return _text(call(*args))
    except Exception as error:  # pynvml.NVMLError and its many subclasses
        return {"error": str(error)}


def nvml_view() -> dict[str, Any]:
    """The driver's own answers (NVML), per GPU, in the units the facts use (MiB, W)."""
    try:
        import pynvml
    except ImportError as error:
        return {"error": f"nvidia-ml-py not installed: {error}"}
    try:
        pynvml.nvmlInit()
    except Exception as error:
        return {"error": f"nvmlInit: {error}"}
    try:
        cuda = _try(pynvml.nvmlSystemGetCudaDriverVersion)
        view: dict[str, Any] = {
            "driver_version": _try(pynvml.nvmlSystemGetDriverVersion),
            "nvml_version": _try(pynvml.nvmlSystemGetNVMLVersion),
            "cuda_driver_version": f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else cuda,
            "gpus": [],
        }
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = _try(pynvml.nvmlDeviceGetMemoryInfo, handle)
            power = _try(pynvml.nvmlDeviceGetPowerManagementLimit, handle)
            capability = _try(pynvml.nvmlDeviceGetCudaComputeCapability, handle)
            pci = _try(pynvml.nvmlDeviceGetPciInfo, handle)
            mig = _try(pynvml.nvmlDeviceGetMigMode, handle)
            ecc = _try(pynvml.nvmlDeviceGetEccMode, handle)
            view["gpus"].append({
                "index": index,
                "name": _try(pynvml.nvmlDeviceGetName, handle),
                "uuid": _try(pynvml.nvmlDeviceGetUUID, handle),
                "serial": _try(pynvml.nvmlDeviceGetSerial, handle),
                "pci_bus_id": _text(pci.busId) if hasattr(pci, "busId") else pci,
                "pci_device_id": f"{pci.pciDeviceId >> 16:04x}" if hasattr(pci, "pciDeviceId") else None,
                "memory_total_mib": memory.total // 2**20 if hasattr(memory, "total") else memory,
                "compute_cap": f"{capability[0]}.{capability[1]}" if isinstance(capability, tuple) else capability,
                "power_limit_w": power / 1000 if isinstance(power, int) else power,
                "persistence_mode": _try(pynvml.nvmlDeviceGetPersistenceMode, handle),
                "mig_mode_current": mig[0] if isinstance(mig, (list, tuple)) else mig,
                "ecc_mode_current": ecc[0] if isinstance(ecc, (list, tuple)) else ecc,
                "vbios_version": _try(pynvml.nvmlDeviceGetVbiosVersion, handle),
                "numa_node": _try(getattr(pynvml, "nvmlDeviceGetNumaNodeId", lambda _h: None), handle),
                "temperature_c": _try(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU),
            })
        return view
    finally:
        pynvml.nvmlShutdown()


def capture(out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    commands = {**PROFILE_COMMANDS, **fact_commands()}
    record: dict[str, Any] = {
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.machine(),
        "commands": {},
    }
    for name, command in commands.items():
        result = run_command(command)
        record["commands"][name] = result
        (out_dir / f"{name.replace(':', '-')}.txt").write_text(result["stdout"])
        print(f"{name}: rc={result['rc']} {len(result['stdout'].splitlines())} lines", file=sys.stderr)
    record["nvml"] = nvml_view()
    (out_dir / "capture.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab.capture", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    record = capture(args.out_dir)
    print(json.dumps(record["nvml"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
