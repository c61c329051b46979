"""The burn-in module (deepseek_node.burnin): its arithmetic, and a real run on the CPU build of PyTorch.

The pure helpers run on every node interpreter (no torch there); the measurements run where
torch imports (the controller's venv has the CPU build): on a GPU node the same code runs on
``cuda`` devices, timed with CUDA events.
"""

from __future__ import annotations

import json
import math
import sys

import pytest

from deepseek_node import burnin


def test_matmul_flops_count_two_per_multiply_add():
    assert burnin.matmul_flops(8192) == 2 * 8192**3
    assert burnin.matmul_flops(10, count=3) == 6000
    # 8192^3 x 2 x 1000 products in 1 s: 1099.5 TFLOPS
    assert burnin.tflops(burnin.matmul_flops(8192, 1000), 1.0) == pytest.approx(1099.51, abs=0.01)
    assert burnin.tflops(1e12, 0) == 0.0


def test_copy_bandwidth_counts_the_read_and_the_write_like_bandwidth_test():
    # 1 GiB copied 20 times in 16 ms: 2 x 2^30 x 20 / 0.016 / 1e9 GB/s
    assert burnin.copy_bandwidth_gbps(2**30, 20, 0.016) == pytest.approx(2 * 2**30 * 20 / 0.016 / 1e9)
    assert burnin.copy_bandwidth_gbps(2**30, 20, 0) == 0.0


def test_slice_mismatches_tolerates_bf16_rounding_and_catches_wrong_math():
    n = 4096
    reference = [[10.0, -20.0], [30.0, 0.5]]
    rounded = [[10.04, -20.08], [30.1, 0.5]]  # bf16 keeps 8 bits: 0.4 % off
    assert burnin.slice_mismatches(rounded, reference, n) == 0
    tolerance = 0.05 * math.sqrt(n)  # 3.2
    wrong = [[10.0 + tolerance + 0.1, -20.0], [math.nan, math.inf]]
    assert burnin.slice_mismatches(wrong, reference, n) == 3


def test_documents_carry_an_error_only_when_there_is_one():
    entry = burnin.device_entry(0, "NVIDIA H100 80GB HBM3", 2861.234, 702.456, 0)
    assert entry == {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_bandwidth_gbps": 2861.2,
                     "matmul_tflops": 702.46, "matmul_errors": 0}
    failed = burnin.device_entry(1, "x", None, None, None, "RuntimeError: CUDA error: ECC")
    assert failed["error"].startswith("RuntimeError") and failed["matmul_tflops"] is None
    assert "error" not in burnin.document([entry], "2.5.1", "cuda")
    assert burnin.document([], None, "cuda", "no torch")["error"] == "no torch"


def test_without_torch_the_module_says_so_and_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    assert burnin.main(["--device", "cpu", "--seconds", "0.1"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["error"].startswith(burnin.NO_TORCH) and sys.executable in document["error"]


# --- a real run, where torch imports ---------------------------------------------------------


def test_a_cpu_run_measures_bandwidth_and_matmul_with_no_errors(capsys):
    pytest.importorskip("torch")
    assert burnin.main(["--device", "cpu", "--seconds", "0.5", "--size-mib", "16", "--matrix", "256"]) == 0
    document = json.loads(capsys.readouterr().out)
    (device,) = document["devices"]
    assert document["device"] == "cpu" and document["torch"]
    assert device["matmul_errors"] == 0 and "error" not in device, device
    assert device["memory_bandwidth_gbps"] > 0.1 and device["matmul_tflops"] > 0.0001, device


def test_a_gpu_run_without_a_gpu_is_an_error_not_a_figure(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert burnin.main(["--device", "cuda", "--seconds", "0.1"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["error"].startswith(burnin.NO_DEVICE) and document["devices"] == []


def test_a_wrong_product_is_counted(monkeypatch):
    """A device whose product drifts once (a flaky GPU) is caught: every product is compared with the first."""
    torch = pytest.importorskip("torch")
    real_matmul = torch.matmul
    calls = {"n": 0}

    def flaky(a, b, out=None):
        calls["n"] += 1
        result = real_matmul(a, b, out=out)
        if calls["n"] == 5:  # one product of the first batch, one element off
            result[3, 7] += 1.0
        return result

    monkeypatch.setattr(torch, "matmul", flaky)
    _, errors = burnin.burn_matmul(torch, torch.device("cpu"), 0.01, 64)
    assert errors == 1
    monkeypatch.setattr(torch, "matmul", real_matmul)
    assert burnin.burn_matmul(torch, torch.device("cpu"), 0.01, 64)[1] == 0
