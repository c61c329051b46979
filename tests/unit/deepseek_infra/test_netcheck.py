"""deepseek_infra/netcheck.py: pairing, iperf3 / ib_write_bw parsing, the textfile the alert reads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deepseek_infra.netcheck import (
    Measurement,
    pairs,
    parse_ib_write_bw,
    parse_iperf3,
    render_table,
    textfile,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "netcheck"

# perftest's ib_write_bw client summary (--report_gbits, duration mode), format as printed by perftest 4.5
IB_WRITE_BW_GBITS = """\
---------------------------------------------------------------------------------------
                    RDMA_Write BW Test
 Dual-port       : OFF          Device         : mlx5_0
 Number of qps   : 1            Transport type : IB
 Connection type : RC           Using SRQ      : OFF
---------------------------------------------------------------------------------------
 #bytes     #iterations    BW peak[Gb/sec]    BW average[Gb/sec]   MsgRate[Mpps]
 65536      1848300          0.00               387.45               0.739008
---------------------------------------------------------------------------------------
"""


def test_ring_pairs_every_node_measures_its_successor_once():
    assert pairs(["c", "a", "b"]) == [("a", "b"), ("b", "c"), ("c", "a")]
    assert pairs(["a", "b"]) == [("a", "b"), ("b", "a")]


def test_all_pairs_and_too_few_nodes():
    assert len(pairs(["a", "b", "c"], "all")) == 6
    assert pairs(["a"]) == []


def test_parse_iperf3_real_capture_uses_received_bytes_per_second():
    result = parse_iperf3("n1", "n2", (FIXTURES / "iperf3-loopback-2streams.json").read_text())
    assert result.error is None
    assert result.bytes_per_second == pytest.approx(12986506155.57998 / 8)
    assert result.transport == "tcp"


def test_parse_iperf3_error_is_reported_not_zero():
    result = parse_iperf3("n1", "n2", (FIXTURES / "iperf3-connection-refused.json").read_text())
    assert result.bytes_per_second is None
    assert "Connection refused" in result.error
    assert parse_iperf3("n1", "n2", "iperf3: command not found").error.startswith("iperf3 printed no JSON")


def test_parse_ib_write_bw_gbits():
    result = parse_ib_write_bw("n1", "n2", IB_WRITE_BW_GBITS)
    assert result.bytes_per_second == pytest.approx(387.45e9 / 8)
    assert result.transport == "rdma"
    assert parse_ib_write_bw("n1", "n2", "Couldn't connect to n2:18515").bytes_per_second is None


def test_verdicts_against_threshold():
    assert Measurement("a", "b", "tcp", 6e9).verdict(5e9) == "ok"
    assert Measurement("a", "b", "tcp", 1e9).verdict(5e9) == "below 5 GB/s"
    assert Measurement("a", "b", "tcp", None, "refused").verdict(5e9) == "error: refused"
    table = render_table([Measurement("a", "b", "tcp", 1e9)], 5e9)
    assert "below 5 GB/s" in table and "1.00" in table


def test_textfile_has_bandwidth_ok_and_timestamp_per_peer():
    text = textfile([Measurement("a", "b", "tcp", 1.5e9), Measurement("a", "c", "tcp", None, "refused")], 1700000000)
    assert 'deepseek_network_bandwidth_bytes_per_second{peer="b",transport="tcp"} 1.5e+09' in text
    assert 'peer="c",transport="tcp"} 1.5' not in text  # a failed measurement has no bandwidth sample
    assert 'deepseek_network_check_ok{peer="c",transport="tcp"} 0' in text
    assert 'deepseek_network_check_timestamp_seconds{peer="b",transport="tcp"} 1700000000' in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing (Debian package prometheus)")
def test_textfile_is_valid_exposition_format():
    text = textfile([Measurement("a", 'we"ird', "tcp", 2e9), Measurement("a", "b", "rdma", 4e10)], 1700000000)
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
