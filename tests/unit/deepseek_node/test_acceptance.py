"""The node's acceptance record: round trip, verdict, and the gateway's admission rule."""

from __future__ import annotations

import pytest

from deepseek_node.acceptance import AcceptanceRecord, RecordError, Verdict, admission, read_record

PASS = Verdict(name="dcgm_diag_r2", passed=True, measured=0.0, threshold=0, unit="failed tests")
FAIL = Verdict(name="allreduce_busbw", passed=False, measured=310.5, threshold=360.0, unit="GB/s", detail="NV18")


def record(*verdicts):
    return AcceptanceRecord(host="gpu-1", checked_at="2025-01-01T00:00:00Z", verdicts=verdicts,
                            basis={"fabric": "nvswitch"})


def test_round_trip_and_verdict():
    failed = record(PASS, FAIL)
    again = AcceptanceRecord.from_json(failed.to_json())
    assert again == failed and not again.passed and again.failures == (FAIL,)
    assert again.failure_message() == "allreduce_busbw: measured 310.50 GB/s, threshold 360.00 GB/s (NV18)"
    assert record(PASS).passed and not record().passed


@pytest.mark.parametrize(("text", "problem"), [
    ("{", "not JSON"), ('{"schema": 2}', "schema: expected 1, found 2"),
    ('{"schema": 1, "verdicts": [{"name": "x"}]}', "verdicts[0]: missing or bad field"),
])
def test_bad_records_name_the_problem(text, problem):
    with pytest.raises(RecordError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        AcceptanceRecord.from_json(text)


def test_admission(tmp_path):
    path = tmp_path / "acceptance.json"
    assert admission(None) == (True, "acceptance not gated")
    assert admission(path) == (True, "acceptance not run") and read_record(path) is None
    assert admission(path, required=True)[0] is False
    path.write_text(record(PASS, FAIL).to_json())
    admitted, reason = admission(path)
    assert not admitted and reason == "acceptance failed: allreduce_busbw: measured 310.50 GB/s, threshold 360.00 GB/s (NV18)"
    path.write_text(record(PASS).to_json())
    assert admission(path) == (True, "accepted at 2025-01-01T00:00:00Z")
    path.write_text("garbage")
    assert admission(path)[0] is False
