"""GPU memory bandwidth and a short matmul burn-in, node side (the acceptance check ``burnin``).

    python -m deepseek_node.burnin --device cuda --seconds 30 --size-mib 1024

Per visible device (every CUDA device, or the CPU): (a) device-memory copy bandwidth, a large
tensor ``copy_`` into another timed with CUDA events (``time.perf_counter`` on the CPU);
(b) a matmul burn-in for ``--seconds`` (bf16 on CUDA, float32 on the CPU, all GPUs at once),
reporting the achieved TFLOPS and the errors found: the first product checked against a float64
reference on a corner slice, every later product compared bitwise with the first on the device
(same inputs, same kernel: a healthy GPU repeats itself exactly), NaN/inf counted. Prints one JSON document::

    {"devices": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_bandwidth_gbps": 2861.2,
                  "matmul_tflops": 702.4, "matmul_errors": 0}], "torch": "2.5.1", "device": "cuda"}

A failure without a figure (torch missing, no GPU) prints ``{"error": ...}`` and exits 2; one
device failing carries ``"error"`` in its entry. The controller judges the figures
(deepseek_infra/acceptance.py: burnin_verdicts). Imports torch only inside functions: the module
imports on the hosts' python3 (3.10+) without it, the pure helpers below need none.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

NO_TORCH = "torch is not importable"  # the controller adds how to get it (deploy serve)
NO_DEVICE = "no CUDA device visible to PyTorch"
CHECK_SLICE = 64  # rows x columns of the product checked against float64
BATCH = 10  # matmuls per timed batch (one pair of CUDA events per batch)


# --- pure helpers (no torch) -------------------------------------------------------------------

def matmul_flops(n: int, count: int = 1) -> float:
    """FLOPs of ``count`` products of two n x n matrices: n^3 multiply-adds, 2 FLOPs each."""
    return 2.0 * n**3 * count


def tflops(flops: float, seconds: float) -> float:
    return flops / seconds / 1e12 if seconds > 0 else 0.0


def copy_bandwidth_gbps(nbytes: int, iterations: int, seconds: float) -> float:
    """GB/s (10^9 bytes) of ``iterations`` device-to-device copies of ``nbytes`` each.

    Each byte copied is read once and written once, so it counts twice, as CUDA samples'
    bandwidthTest counts its device-to-device test (``2.0f * memSize * MEMCOPY_ITERATIONS / 1e9
    / time_s``, NVIDIA/cuda-samples Samples/1_Utilities/bandwidthTest/bandwidthTest.cu); this is
    the figure comparable with the datasheet's memory bandwidth (reads plus writes). nvbandwidth's
    ``device_local_copy`` counts the bytes copied once (``copySize * loopCount / time``,
    NVIDIA/nvbandwidth memcpy.cpp): half this figure for the same copy.
    """
    return 2.0 * nbytes * iterations / seconds / 1e9 if seconds > 0 else 0.0


def slice_mismatches(result: Sequence[Sequence[float]], reference: Sequence[Sequence[float]], n: int) -> int:
    """Elements of a checked slice off the float64 reference by more than 5% of the typical |C| (sqrt(n)
    for standard-normal inputs), or not finite. bf16 rounds C to 8 bits (0.4%): only wrong math fails."""
    tolerance = 0.05 * math.sqrt(n)
    return sum(1 for row, ref_row in zip(result, reference) for value, ref in zip(row, ref_row)
               if not math.isfinite(value) or abs(value - ref) > tolerance)


def device_entry(index: int, name: str, bandwidth_gbps: float | None, matmul_tflops: float | None,
                 errors: int | None, error: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "index": index, "name": name,
        "memory_bandwidth_gbps": None if bandwidth_gbps is None else round(bandwidth_gbps, 1),
        "matmul_tflops": None if matmul_tflops is None else round(matmul_tflops, 2),
        "matmul_errors": errors,
    }
    if error:
        entry["error"] = error
    return entry


def document(devices: Sequence[dict[str, Any]], torch_version: str | None, device: str,
             error: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"devices": list(devices), "torch": torch_version, "device": device}
    if error:
        doc["error"] = error
    return doc


# --- measurements (torch) ------------------------------------------------------------------------

def _elapsed(torch: Any, device: Any, work: Callable[[], None]) -> float:
    """Seconds ``work`` takes on ``device`` (CUDA events there, perf_counter on the CPU)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        work()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


def measure_bandwidth(torch: Any, device: Any, size_mib: int, iterations: int = 20) -> float:
    """GB/s of ``copy_`` between two ``size_mib`` buffers on ``device`` (read + write counted)."""
    source = torch.ones(size_mib * 2**20 // 4, dtype=torch.float32, device=device)
    target = torch.empty_like(source)
    target.copy_(source)  # warm-up (allocation, first touch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)

    def copies() -> None:
        for _ in range(iterations):
            target.copy_(source)

    seconds = _elapsed(torch, device, copies)
    return copy_bandwidth_gbps(source.numel() * source.element_size(), iterations, seconds)


def burn_matmul(torch: Any, device: Any, seconds: float, n: int) -> tuple[float, int]:
    """(TFLOPS, errors) of n x n products on ``device`` for about ``seconds``."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=generator).to(device=device, dtype=dtype)
    first = a @ b
    k = min(CHECK_SLICE, n)
    reference = (a[:k].double().cpu() @ b[:, :k].double().cpu()).tolist()  # the inputs as rounded, in float64
    errors = slice_mismatches(first[:k, :k].double().cpu().tolist(), reference, n)
    errors += int((~torch.isfinite(first)).sum())
    out = torch.empty_like(first)
    mismatches = torch.zeros((), dtype=torch.int64, device=device)

    def batch() -> None:
        nonlocal mismatches
        for _ in range(BATCH):
            torch.matmul(a, b, out=out)
            mismatches += (out != first).sum()  # n^2 beside n^3: every product checked; NaN != NaN counts

    busy, count, deadline = 0.0, 0, time.monotonic() + seconds
    while True:
        busy += _elapsed(torch, device, batch)
        count += BATCH
        if time.monotonic() >= deadline:
            break
    errors += int(mismatches)
    return tflops(matmul_flops(n, count), busy), errors


def _device_run(torch: Any, device: Any, index: int, name: str, seconds: float, size_mib: int, n: int,
                bandwidth: float | None) -> dict[str, Any]:
    try:
        if device.type == "cuda":
            torch.cuda.set_device(device)  # this thread's current device
        achieved, errors = burn_matmul(torch, device, seconds, n)
        return device_entry(index, name, bandwidth, achieved, errors)
    except Exception as error:  # noqa: BLE001 - a device that fails is reported, the others still are
        return device_entry(index, name, bandwidth, None, None, f"{type(error).__name__}: {error}")


def run(device_kind: str, seconds: float, size_mib: int, matrix: int | None = None) -> dict[str, Any]:
    """Measure every device of ``device_kind`` ("cuda" or "cpu"); the document to print."""
    try:
        import torch
    except ImportError as error:
        return document([], None, device_kind, f"{NO_TORCH} ({sys.executable}): {error}")
    if device_kind == "cuda":
        if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
            return document([], torch.__version__, device_kind, f"{NO_DEVICE} (torch {torch.__version__})")
        devices = [(i, torch.device("cuda", i), torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())]
        n = matrix or 8192
    else:
        devices = [(0, torch.device("cpu"), "cpu")]
        n = matrix or 512
    bandwidths: dict[int, float | None] = {}
    failed: dict[int, str] = {}
    for index, device, _ in devices:  # one at a time: each copy has its GPU's memory to itself
        try:
            bandwidths[index] = measure_bandwidth(torch, device, size_mib)
        except Exception as error:  # noqa: BLE001
            bandwidths[index], failed[index] = None, f"{type(error).__name__}: {error}"
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:  # all GPUs burn together (power, heat)
        futures = [pool.submit(_device_run, torch, device, index, name, seconds, size_mib, n, bandwidths[index])
                   for index, device, name in devices]
        entries = [future.result() for future in futures]
    for entry in entries:
        if entry["index"] in failed and "error" not in entry:
            entry["error"] = failed[entry["index"]]
    return document(entries, torch.__version__, device_kind)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepseek_node.burnin", description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--seconds", type=float, default=30.0, help="matmul burn-in per device (all at once)")
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the copied buffer (two are allocated)")
    parser.add_argument("--matrix", type=int, default=None, help="n of the n x n matmul (default 8192 CUDA, 512 CPU)")
    args = parser.parse_args(argv)
    result = run(args.device, args.seconds, args.size_mib, args.matrix)
    print(json.dumps(result, sort_keys=True))
    return 2 if result.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
