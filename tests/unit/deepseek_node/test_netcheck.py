"""deepseek_node/netcheck.py: what the netcheck timer runs on a node (its config, the retries
while a peer's server is busy, the RDMA leg only toward peers that serve it, the textfile)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from deepseek_node import netcheck
from deepseek_node.netcheck import Config, Peer, main, measure

RECEIVED = 9.6e9 * 8  # bits/s iperf3 reports for a 9.6 GB/s link
IPERF3_OK = json.dumps({"end": {"sum_received": {"bits_per_second": RECEIVED}}})
IPERF3_BUSY = json.dumps({"error": "error - the server is busy running a test. try again later"})
IB_OUTPUT = """ #bytes     #iterations    BW peak[Gb/sec]    BW average[Gb/sec]   MsgRate[Mpps]
 65536      1851244          0.00               388.20             0.740454
"""


def _config(**overrides) -> Config:
    values = dict(client="gpu-a01", peers=(Peer("gpu-a02", "10.0.0.12"), Peer("gpu-a03", "10.0.0.13")),
                  textfile="/nonexistent/deepseek-netcheck.prom", duration_s=3, busy_retries=2)
    return Config(**{**values, **overrides})


class Script:
    """Answers each command with the next reply queued for its tool and peer address."""

    def __init__(self, replies: dict[tuple[str, str], list[str]]):
        self.replies, self.calls = replies, []

    def __call__(self, argv):
        self.calls.append(list(argv))
        key = (argv[0], argv[2] if argv[0] == "iperf3" else argv[-1])
        return self.replies[key].pop(0)


def test_config_round_trips_through_its_json_and_names_a_bad_field():
    config = _config(rdma_device="mlx5_0", threshold_bytes_per_second=5e9)
    assert Config.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="netcheck config: .*colour"):
        Config.from_json(json.dumps({**json.loads(config.to_json()), "colour": "red"}))
    with pytest.raises(ValueError, match="peers"):
        Config.from_json(json.dumps({"client": "a", "textfile": "/x"}))


def test_each_peer_is_measured_with_iperf3_and_a_busy_server_is_tried_again():
    script = Script({("iperf3", "10.0.0.12"): [IPERF3_BUSY, IPERF3_OK], ("iperf3", "10.0.0.13"): [IPERF3_OK]})
    waits = []
    results = measure(_config(), run=script, sleep=waits.append, rdma_peer=lambda address: False)
    assert [(m.peer, m.transport, m.bytes_per_second, m.error) for m in results] == [
        ("gpu-a02", "tcp", RECEIVED / 8, None), ("gpu-a03", "tcp", RECEIVED / 8, None)]
    assert len(waits) == 1 and 1 <= waits[0] <= 1 + 3
    assert script.calls[0] == ["iperf3", "-c", "10.0.0.12", "-p", "5201", "-t", "3", "-P", "4", "-J"]


def test_a_server_busy_through_every_retry_is_an_error_not_a_figure():
    script = Script({("iperf3", "10.0.0.12"): [IPERF3_BUSY] * 3, ("iperf3", "10.0.0.13"): ["iperf3: error - unable to connect"]})
    results = measure(_config(), run=script, sleep=lambda s: None, rdma_peer=lambda address: False)
    assert [m.bytes_per_second for m in results] == [None, None]
    assert "busy" in results[0].error and "no JSON" in results[1].error
    assert len(script.calls) == 4  # 1 + 2 retries, then the other peer once: only busy is retried


def test_rdma_runs_toward_peers_whose_rdma_server_answers_and_only_with_a_device():
    replies = {("iperf3", "10.0.0.12"): [IPERF3_OK], ("iperf3", "10.0.0.13"): [IPERF3_OK],
               ("ib_write_bw", "10.0.0.12"): [IB_OUTPUT]}
    script = Script(replies)
    results = measure(_config(rdma_device="mlx5_0"), run=script, sleep=lambda s: None,
                      rdma_peer=lambda address: address == "10.0.0.12")
    assert [(m.peer, m.transport) for m in results] == [("gpu-a02", "tcp"), ("gpu-a02", "rdma"), ("gpu-a03", "tcp")]
    assert results[1].bytes_per_second == pytest.approx(388.20e9 / 8)
    assert ["ib_write_bw", "-d", "mlx5_0", "--report_gbits", "-D", "5", "10.0.0.12"] in script.calls
    probed = []
    measure(_config(), run=Script({("iperf3", "10.0.0.12"): [IPERF3_OK], ("iperf3", "10.0.0.13"): [IPERF3_OK]}),
            sleep=lambda s: None, rdma_peer=probed.append)
    assert probed == []  # no device here: the peers are not even probed


def test_main_writes_the_textfile_node_exporter_reads_and_fails_when_a_peer_could_not_be_measured(tmp_path, monkeypatch, capsys):
    path = tmp_path / "deepseek-netcheck.prom"
    config = tmp_path / "netcheck.json"
    config.write_text(_config(textfile=str(path), threshold_bytes_per_second=5e9).to_json())
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "iperf3").write_text(f"#!/bin/sh\ncase \"$2\" in 10.0.0.12) echo '{IPERF3_OK}';; "
                                 "*) echo 'iperf3: error - unable to connect to server' >&2; exit 1;; esac\n")
    (fake / "iperf3").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    assert main(["--config", str(config)]) == 1
    text = path.read_text()
    assert f'{netcheck.METRIC_BANDWIDTH}{{peer="gpu-a02",transport="tcp"}} 9.6e+09' in text
    assert f'{netcheck.METRIC_OK}{{peer="gpu-a03",transport="tcp"}} 0' in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and not (tmp_path / "deepseek-netcheck.prom.tmp").exists()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["peer"], line["verdict"]) for line in lines] == [
        ("gpu-a02", "ok"), ("gpu-a03", "error: iperf3 printed no JSON: 'iperf3: error - unable to connect to server'")]


def test_main_refuses_a_missing_config(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "absent.json")]) == 2
    assert "absent.json" in capsys.readouterr().err
