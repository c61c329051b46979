"""/health and the acceptance record: a node that failed its gate answers 503 (the LB keeps it out)."""

from __future__ import annotations

from deepseek_node.acceptance import AcceptanceRecord, Verdict
from deepseek_node.gateway.config import GatewayConfig

FAILED = Verdict(name="allreduce_busbw", passed=False, measured=290.0, threshold=360.0, unit="GB/s", detail="NV18")
PASSED = Verdict(name="dcgm_diag_r2", passed=True, measured=0.0, threshold=0, unit="failed tests")


def write(path, *verdicts):
    path.write_text(AcceptanceRecord(host="n1", checked_at="2025-01-01T00:00:00Z", verdicts=verdicts).to_json())


def test_defaults_read_the_record_path():
    assert GatewayConfig().acceptance_record == "/etc/deepseek/acceptance.json"
    assert GatewayConfig.from_mapping({"acceptance_record": None, "acceptance_required": True}).acceptance_record is None


def test_failed_record_answers_503_with_the_failed_check(make_gateway, tmp_path):
    record = tmp_path / "acceptance.json"
    gw = make_gateway(acceptance_record=str(record))
    assert gw.client.get("/health").status_code == 200  # no record: acceptance not run, not gated
    write(record, PASSED, FAILED)
    health = gw.client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "not_accepted"
    assert health.json()["acceptance"] == ("acceptance failed: allreduce_busbw: measured 290.00 GB/s, "
                                           "threshold 360.00 GB/s (NV18)")
    write(record, PASSED)  # a later passing run admits the node again, without a restart
    assert gw.client.get("/health").json() == {**gw.client.get("/health").json(), "status": "ok"}


def test_required_record_missing_answers_503(make_gateway, tmp_path):
    gw = make_gateway(acceptance_record=str(tmp_path / "none.json"), acceptance_required=True)
    health = gw.client.get("/health")
    assert health.status_code == 503 and "no acceptance record" in health.json()["acceptance"]
