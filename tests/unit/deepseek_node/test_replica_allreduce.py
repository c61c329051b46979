"""deepseek_node/replica_allreduce.py: the acceptance gate's all-reduce across a replica's nodes
(its helpers against nccl-tests' own figures, and real torchrun runs on gloo)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import deepseek_node
from deepseek_node.replica_allreduce import bus_bandwidth, expected_sum, main, parse_size, sizes

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "acceptance"
NODE_ROOT = Path(deepseek_node.__file__).resolve().parents[1]  # the source tree's node/, or the venv's site-packages


@pytest.mark.parametrize(("text", "size"), [("8", 8), ("64K", 65536), ("8M", 8388608), ("2G", 2147483648),
                                            ("1m", 2**20), (" 16K ", 16384)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "8MB", "1.5G", "-8M", "M", "8T", "eight"])
def test_parse_size_rejects_what_is_not_a_size(text):
    with pytest.raises(ValueError, match=r"expected an integer with an optional K, M or G suffix"):
        parse_size(text)


def test_sizes_double_from_min_to_max():
    assert sizes(parse_size("64K"), parse_size("1M")) == [65536, 131072, 262144, 524288, 1048576]
    assert sizes(8, 8) == [8] and sizes(8, 31) == [8, 16]  # a max between steps is not reached
    for low, high in ((0, 8), (16, 8)):
        with pytest.raises(ValueError, match="need 0 < min <= max"):
            sizes(low, high)


def test_expected_sum_and_one_rank():
    assert [expected_sum(n) for n in (1, 2, 8, 16)] == [1, 3, 36, 136]
    assert bus_bandwidth(10**9, 1.0, 1) == (1.0, 0.0)  # one rank: nothing crosses a link
    with pytest.raises(ValueError):
        bus_bandwidth(10**9, 0.0, 2)


def _all_reduce_perf_rows(name: str):
    """(ranks, [(size, time text, algbw, busbw)]) of an all_reduce_perf output, both columns."""
    text = (FIXTURES / name).read_text()
    ranks = sum(1 for line in text.splitlines() if line.startswith("#  Rank"))
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 13 and fields[0].isdigit():
            rows += [(int(fields[0]), fields[5], float(fields[6]), float(fields[7])),
                     (int(fields[0]), fields[9], float(fields[10]), float(fields[11]))]
    return ranks, rows


@pytest.mark.parametrize(("name", "ranks"), [("all_reduce_perf-h100x8-1node.txt", 8),
                                             ("all_reduce_perf-h100-2node-16gpu-mpirun.txt", 16)])
def test_bus_bandwidth_is_nccl_tests_formula(name, ranks):
    """From the printed size and time, the printed algbw and busbw to their 2 decimals, allowing for
    the time's own rounding (half its last printed digit: 1119.8 us can be 1119.85)."""
    found, rows = _all_reduce_perf_rows(name)
    assert found == ranks and rows
    for size, time_us, algbw, busbw in rows:
        digits = len(time_us.partition(".")[2])
        half_digit = 0.5 * 10**-digits / float(time_us)  # relative
        computed = bus_bandwidth(size, float(time_us) * 1e-6, ranks)
        for printed, value in zip((algbw, busbw), computed):
            assert abs(value - printed) <= 0.005 + value * half_digit, (size, time_us, printed, value)
    size, time_us, algbw, busbw = rows[0]
    if name.endswith("1node.txt"):  # the first row, by hand: 268435456 B in 1119.8 us on 8 ranks
        assert (size, time_us) == (268435456, "1119.8")
        assert [round(v, 2) for v in bus_bandwidth(size, 1119.8e-6, 8)] == [239.72, 419.51]


def test_main_without_torch_prints_an_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert main(["--backend", "gloo", "--min-bytes", "64K", "--max-bytes", "1M"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "torch is not importable" in json.loads(lines[0])["error"]


@pytest.mark.parametrize(("argv", "problem"), [(["--min-bytes", "8MB"], "expected an integer"),
                                               (["--min-bytes", "2M", "--max-bytes", "1M"], "need 0 < min <= max"),
                                               (["--min-bytes", "6"], "multiple of 4"),
                                               (["--backend", "mpi"], "invalid choice")])
def test_bad_arguments_are_an_error_line(argv, problem, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # refused before torch would be needed
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert main(argv) == 2
    assert problem in json.loads(capsys.readouterr().out)["error"]


# --- real runs: torchrun, gloo on the CPU ------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(port: int, *launch: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, (str(NODE_ROOT), os.environ.get("PYTHONPATH"))))}
    argv = [sys.executable, "-m", "torch.distributed.run", *launch, "--master-addr", "127.0.0.1",
            "--master-port", str(port), "-m", "deepseek_node.replica_allreduce", "--backend", "gloo",
            "--min-bytes", "64K", "--max-bytes", "1M", "--iters", "3", "--warmup", "1", "--timeout-s", "60"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _document(process: subprocess.Popen) -> dict:
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    assert process.returncode == 0, f"rc {process.returncode}:\n{out}\n{err[-3000:]}"
    lines = out.splitlines()
    assert len(lines) == 1, out  # local rank 0 only
    return json.loads(lines[0])


def _check(document: dict, world: int) -> None:
    assert document["backend"] == "gloo" and document["device"] == "cpu" and document["world_size"] == world
    assert [row["size_bytes"] for row in document["rows"]] == [65536, 131072, 262144, 524288, 1048576]
    for row in document["rows"]:
        assert row["wrong"] == 0 and row["time_us"] > 0 and row["algbw_gbps"] > 0
        assert row["algbw_gbps"] == pytest.approx(row["size_bytes"] / row["time_us"] / 1e3)
        assert row["busbw_gbps"] == pytest.approx(row["algbw_gbps"] * 2 * (world - 1) / world)


def test_one_node_two_ranks():
    pytest.importorskip("torch")
    document = _document(_torchrun(_free_port(), "--nnodes", "1", "--nproc-per-node", "2"))
    _check(document, 2)
    assert (document["nodes"], document["node_rank"]) == (1, 0)


def test_two_nodes_report_the_same_rows():
    """Two torchrun agents (two "nodes" on 127.0.0.1): each node's line, the slowest rank's times."""
    pytest.importorskip("torch")
    port = _free_port()
    launches = [_torchrun(port, "--nnodes", "2", "--node-rank", str(rank), "--nproc-per-node", "1") for rank in (0, 1)]
    try:
        head, other = (_document(process) for process in launches)
    finally:
        for process in launches:  # one failed: the other waits for its peer until its timeout
            if process.poll() is None:
                process.kill()
                process.communicate()
    for document in (head, other):
        _check(document, 2)
        assert document["nodes"] == 2  # torchrun's GROUP_WORLD_SIZE
    assert (head["node_rank"], other["node_rank"]) == (0, 1)
    assert head["rows"] == other["rows"]


def test_module_imports_without_torch():
    """The hosts' python3 may have no torch: only the measurement imports it."""
    script = ("import sys; sys.modules['torch'] = None; import deepseek_node.replica_allreduce as m; "
              "print(m.parse_size('8M'))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(NODE_ROOT)})
    assert done.returncode == 0 and done.stdout == "8388608\n", done.stderr
