"""LAB SIMULATION: the collection's GPU reading of a hardware profile, without a container.

``profile_hardware(name)`` writes the files the simulated ``nvidia-smi`` reads (the
profile as a node overlay has it, the driver loaded) to a temporary directory, runs it with the exact query of the collection's GPU inventory
fact (``deepseek_infra.facts.gpu.GPU_INVENTORY_COMMAND``) and parses its output with that
fact's parser into the typed reading (``Hardware``, ``gpus`` section only): what a lab node
of that profile reports to the preflight, the serve role and the cost report.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

from deepseek_infra.facts.gpu import GPU_INVENTORY_COMMAND, parse_gpu_query_csv
from deepseek_infra.hardware import Hardware
from lab import hwsim


@cache
def gpu_query_output(name: str) -> str:
    """What ``GPU_INVENTORY_COMMAND`` prints on a lab node of profile ``name`` (driver loaded)."""
    with tempfile.TemporaryDirectory(prefix=f"hwsim-{name}-") as scratch:
        hw = Path(scratch)  # as render_node_overlay lays out <node>/usr/lib/deepseek-lab/hw
        (hw / "profile.json").write_text(json.dumps(hwsim.load_profile(name), indent=1, sort_keys=True) + "\n")
        (hw / "query-gpu-fields.txt").write_text(hwsim.FIELDS_FILE.read_text())
        (hw / "driver-loaded").touch()
        tool, *args = shlex.split(GPU_INVENTORY_COMMAND)
        env = {**os.environ, "DEEPSEEK_LAB_HW_DIR": str(hw)}
        result = subprocess.run([sys.executable, str(hwsim.BIN_DIR / tool), *args], capture_output=True,
                                text=True, env=env, check=False)
    if result.returncode != 0:
        raise hwsim.ProfileError(f"{name}: simulated {GPU_INVENTORY_COMMAND!r} failed: {result.stdout}{result.stderr}")
    return result.stdout


def profile_hardware(name: str) -> Hardware:
    """The typed reading of profile ``name``'s GPUs, parsed as the GPU inventory fact parses them."""
    return Hardware.from_sections({"gpu_inventory": parse_gpu_query_csv(gpu_query_output(name).splitlines())})
