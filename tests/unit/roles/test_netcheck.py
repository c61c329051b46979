"""roles/netcheck: the timer's node config and unit files, from the run's pairs and settings."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from deepseek_node.netcheck import Config
from roles.exporters.defaults import ExportersDefaults
from roles.monitoring.defaults import MonitoringDefaults
from roles.netcheck import tasks as netcheck
from roles.netcheck.defaults import NetcheckDefaults

PEERS = [("gpu-a02", object(), "10.0.0.12")]


def _node(config: NetcheckDefaults, ib_device: str | None = None) -> Config:
    return netcheck.node_config(config, MonitoringDefaults(monitoring_network_min_bytes_per_s=6e9),
                                ExportersDefaults(exporters_textfile_dir="/var/lib/node-exporter"), "gpu-a01", PEERS,
                                ib_device=ib_device)


def test_node_config_carries_the_runs_pairs_the_tool_settings_and_the_alerts_floor():
    node = _node(NetcheckDefaults(netcheck_duration_s=7, netcheck_streams=8, netcheck_busy_retries=2), "mlx5_0")
    assert (node.client, [(p.name, p.address) for p in node.peers]) == ("gpu-a01", [("gpu-a02", "10.0.0.12")])
    assert (node.duration_s, node.streams, node.busy_retries, node.rdma_device) == (7, 8, 2, "mlx5_0")
    assert node.textfile == f"/var/lib/node-exporter/{netcheck.TEXTFILE}"  # the file the controller's run writes
    assert node.threshold_bytes_per_second == 6e9
    assert _node(NetcheckDefaults(netcheck_ib=False), "mlx5_0").rdma_device is None
    assert Config.from_json(node.to_json()) == node


def test_units_run_the_node_tool_on_the_calendar_with_the_rdma_server_only_where_there_is_a_device():
    config = NetcheckDefaults(netcheck_timer="*-*-* 02:00", netcheck_timer_spread_s=120, netcheck_port=5301)
    units = {name: text.decode() for name, text in netcheck.unit_files(config, _node(config)).items()}
    assert set(units) == {netcheck.PERSISTENT_SERVER, netcheck.TIMER_SERVICE, netcheck.TIMER}
    assert "ExecStart=/usr/bin/iperf3 --server --port 5301" in units[netcheck.PERSISTENT_SERVER]
    assert f"ExecStart={netcheck.TOOL} --config {netcheck.CONFIG_FILE}" in units[netcheck.TIMER_SERVICE]
    assert "OnCalendar=*-*-* 02:00" in units[netcheck.TIMER] and "RandomizedDelaySec=120" in units[netcheck.TIMER]
    with_ib = netcheck.unit_files(config, _node(config, "mlx5_1"))
    assert "ExecStart=/usr/bin/ib_write_bw -d mlx5_1 --report_gbits -D 5" in with_ib[netcheck.RDMA_SERVER].decode()


def test_the_service_timeout_covers_every_retry_of_every_peer():
    config = NetcheckDefaults(netcheck_duration_s=10, netcheck_busy_retries=6)
    node = _node(config)
    unit = netcheck.unit_files(config, node)[netcheck.TIMER_SERVICE].decode()
    timeout = int(unit.split("TimeoutStartSec=")[1].split()[0])
    assert timeout > len(node.peers) * node.duration_s * (node.busy_retries + 1) * 2  # TCP and RDMA, every retry


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_calendar_values_systemd_reads():
    for value in ("hourly", "*-*-* 02:00", "Mon..Fri 03:30"):
        assert subprocess.run(["systemd-analyze", "calendar", NetcheckDefaults(netcheck_timer=value).netcheck_timer],
                              capture_output=True, check=False).returncode == 0


@pytest.mark.parametrize("bad", ["", "hourly; rm -rf /", "daily\nExecStart=/bin/sh"])
def test_a_calendar_that_would_break_the_unit_is_refused(bad):
    with pytest.raises(ValueError, match="netcheck_timer"):
        NetcheckDefaults(netcheck_timer=bad)


def test_the_rdma_device_is_the_configured_one_if_present_else_the_first():
    assert netcheck.pick_ib_device("mlx5_0\nmlx5_1\n", None) == "mlx5_0"
    assert netcheck.pick_ib_device("mlx5_0 mlx5_1", "mlx5_1") == "mlx5_1"
    assert netcheck.pick_ib_device("mlx5_0", "mlx5_9") is None
    assert netcheck.pick_ib_device("", None) is None
