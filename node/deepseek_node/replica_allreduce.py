"""Acceptance gate, node side: all-reduce bus bandwidth across the nodes of one replica.

A single node's ``all_reduce_perf`` shows its NVLink/NVSwitch; the replica's engine also
all-reduces across its nodes, over the fabric between them. This measures that with
torch.distributed. torchrun starts it on every node of the replica at the same time::

    python -m torch.distributed.run --nnodes 2 --node-rank R --nproc-per-node G \\
        --master-addr HEAD --master-port 29511 -m deepseek_node.replica_allreduce \\
        --backend nccl --min-bytes 8M --max-bytes 2G --iters 20 --warmup 5

(G: the node's GPUs for nccl, 1 for gloo on the CPU). Each rank joins the process group from
torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) and, for each float32
message size from --min-bytes to --max-bytes doubling (nccl-tests' ``-f 2``): one checked
all-reduce (every rank holds rank+1, so every element must sum to n(n+1)/2), the warmup
all-reduces, then --iters timed ones. The figures are nccl-tests' (doc/PERFORMANCE.md)::

    time   = elapsed / iters                      (the slowest rank's: ReduceOp.MAX)
    algbw  = size_bytes / time                    (GB/s, 1e9 bytes)
    busbw  = algbw * 2 * (n - 1) / n              (n: ranks in the replica)

busbw is what compares with the links' bandwidth whatever n is. The process with LOCAL_RANK
0 prints one JSON line (every node the same rows)::

    {"backend": "nccl", "world_size": 16, "nodes": 2, "node_rank": 0, "torch": "2.13.0",
     "device": "cuda", "rows": [{"size_bytes": 8388608, "time_us": 101.2, "algbw_gbps": 82.9,
                                 "busbw_gbps": 155.4, "wrong": 0}, ...]}

or ``{"error": "..."}`` and exit status 2 (torch missing, the group never formed, a failed
collective). torch is imported inside the functions that need it: the pure helpers and
``main`` import on the hosts' python3 (3.10+) without it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

FLOAT32_BYTES = 4
_SIZE = re.compile(r"(\d+)([KMG]?)", re.IGNORECASE)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}  # nccl-tests' -b/-e suffixes


# --- pure helpers (no torch) ------------------------------------------------------------------

def parse_size(text: str) -> int:
    """``"8M"`` -> 8388608: an integer with an optional K, M or G suffix (powers of 2)."""
    match = _SIZE.fullmatch(str(text).strip())
    if not match:
        raise ValueError(f"size {text!r}: expected an integer with an optional K, M or G suffix (e.g. 8M)")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def sizes(min_bytes: int, max_bytes: int) -> list[int]:
    """min_bytes, doubling, up to max_bytes (a max between two steps is not reached, as in nccl-tests)."""
    if min_bytes <= 0 or max_bytes < min_bytes:
        raise ValueError(f"sizes: need 0 < min <= max, got min {min_bytes} and max {max_bytes}")
    result = [min_bytes]
    while result[-1] * 2 <= max_bytes:
        result.append(result[-1] * 2)
    return result


def bus_bandwidth(size_bytes: int, seconds: float, world: int) -> tuple[float, float]:
    """(algbw, busbw) in GB/s of one all-reduce of ``size_bytes`` taking ``seconds`` on ``world``
    ranks: nccl-tests' doc/PERFORMANCE.md (busbw 0 for one rank, as there: nothing crosses a link)."""
    if seconds <= 0 or world < 1:
        raise ValueError(f"bus_bandwidth: need seconds > 0 and world >= 1, got {seconds} and {world}")
    algbw = size_bytes / seconds / 1e9
    return algbw, algbw * 2 * (world - 1) / world


def expected_sum(world: int) -> int:
    """What every element holds after the checked all-reduce: the sum of rank+1 over the ranks."""
    return world * (world + 1) // 2


# --- the measurement (torch) ------------------------------------------------------------------

def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def _measure(options: argparse.Namespace) -> dict[str, Any]:
    """Join the group, run every size, leave the group; the document local rank 0 prints."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError as error:
        raise RuntimeError(f"torch is not importable here ({error}): run it in the engine's venv") from None

    local_rank = _local_rank()
    cuda = options.backend == "nccl"
    if cuda:
        torch.cuda.set_device(local_rank)  # before init: NCCL binds each rank to its own GPU
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    dist.init_process_group(options.backend, timeout=timedelta(seconds=options.timeout_s))
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))

        def synchronize() -> None:
            if cuda:
                torch.cuda.synchronize(device)

        def barrier() -> None:
            # nccl: name the device, or the barrier guesses one (and warns)
            if cuda:
                dist.barrier(device_ids=[local_rank])
            else:
                dist.barrier()
            synchronize()

        rows = []
        for size in sizes(options.min_bytes, options.max_bytes):
            count = size // FLOAT32_BYTES
            tensor = torch.full((count,), float(rank + 1), dtype=torch.float32, device=device)
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            wrong = (tensor != float(expected_sum(world))).sum().to(torch.int64)
            dist.all_reduce(wrong, op=dist.ReduceOp.SUM)  # every rank's errors, as nccl-tests' #wrong
            # Zeros for the timed ops: repeated sums of rank+1 would grow by n each op and
            # overflow to inf; the collectives' speed does not depend on the values.
            tensor.zero_()
            for _ in range(options.warmup):
                dist.all_reduce(tensor)
            barrier()
            start = time.perf_counter()
            for _ in range(options.iters):
                dist.all_reduce(tensor)
            synchronize()  # nccl returns once the op is queued: wait for the GPU to finish it
            elapsed = torch.tensor([time.perf_counter() - start], dtype=torch.float64, device=device)
            dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)  # the slowest rank: all report the same
            seconds = elapsed.item() / options.iters
            algbw, busbw = bus_bandwidth(count * FLOAT32_BYTES, seconds, world)
            rows.append({"size_bytes": count * FLOAT32_BYTES, "time_us": seconds * 1e6,
                         "algbw_gbps": algbw, "busbw_gbps": busbw, "wrong": int(wrong.item())})
            del tensor  # the next size's tensor is twice as big: free this one first
        nodes = options.nodes or int(os.environ.get("GROUP_WORLD_SIZE") or max(1, world // local_world))
        node_rank = int(os.environ.get("GROUP_RANK") or rank // local_world)
        return {"backend": options.backend, "world_size": world, "nodes": nodes, "node_rank": node_rank,
                "torch": torch.__version__, "device": device.type, "rows": rows}
    finally:
        dist.destroy_process_group()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)  # a bad argument is an {"error"} line too, not only usage on stderr


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m deepseek_node.replica_allreduce",
                     description="All-reduce bus bandwidth across a replica's nodes (run under torchrun).")
    parser.add_argument("--backend", choices=("nccl", "gloo"), default="nccl")
    parser.add_argument("--min-bytes", type=_size, default=parse_size("8M"))
    parser.add_argument("--max-bytes", type=_size, default=parse_size("2G"))
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--timeout-s", type=float, default=300.0, help="init_process_group's timeout")
    parser.add_argument("--nodes", type=int, default=None,
                        help="the replica's node count (default: torchrun's GROUP_WORLD_SIZE)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        options = _parser().parse_args(argv)
        if options.min_bytes % FLOAT32_BYTES or options.iters < 1 or options.warmup < 0:
            raise ValueError("--min-bytes must be a multiple of 4 (float32), --iters >= 1, --warmup >= 0")
        sizes(options.min_bytes, options.max_bytes)  # a bad range fails before the group forms
        document = _measure(options)
    except Exception as error:  # torch missing, the group never formed, a collective failed
        message = f"{type(error).__name__}: {error}"
        if _local_rank() == 0:
            print(json.dumps({"error": message}), flush=True)
        else:  # one line per node on stdout; the other ranks' reasons go to the journal
            print(f"replica_allreduce rank {os.environ.get('RANK', '?')}: {message}", file=sys.stderr)
        return 2
    if _local_rank() == 0:
        print(json.dumps(document), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
