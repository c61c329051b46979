"""InfiniBand port checks, IPoIB files and kernel modules (deepseek_infra/infiniband.py)."""

from pathlib import Path

import pytest

from deepseek_infra import infiniband
from deepseek_infra.facts.infiniband import parse_ibstat
from deepseek_infra.hardware import IbPort, IbPorts

CAPTURE = Path(__file__).resolve().parents[3] / "lab/profiles/hgx-h100-8x/captures/ib/gpud-h100-node-ibstat-12ca-some-down.txt"


def port(ca, state="Active", physical="LinkUp", rate=400, layer="InfiniBand"):
    return IbPort(ca=ca, port=1, state=state, physical_state=physical, rate_gbps=rate, link_layer=layer)


def captured_ports() -> IbPorts:
    return IbPorts.from_fact(parse_ibstat(CAPTURE.read_text().splitlines()))


def test_real_capture_ib_ports_pass_ethernet_down_ports_are_not_checked():
    report = infiniband.port_report(captured_ports(), 400)
    assert len(report.checked) == 8 and len(report.skipped) == 4 and report.problems == ()
    assert "8 port(s) Active/LinkUp" in report.summary()


def test_real_capture_with_ethernet_checked_reports_the_down_ports():
    report = infiniband.port_report(captured_ports(), None,
                                    link_layers=("InfiniBand", "Ethernet"))
    down = [p for p in report.problems if "expected Active/LinkUp, found Down/Disabled" in p]
    assert len(down) == 3 and any(p.startswith("mlx5_2 port 1 (Ethernet)") for p in down)


def test_lower_rate_and_down_port_are_named():
    report = infiniband.port_report([port("mlx5_0", rate=200), port("mlx5_1", state="Down", physical="Polling"),
                                     port("mlx5_2")], 400)
    assert report.problems == (
        "mlx5_0 port 1: expected a rate of at least 400 Gb/s, found 200 Gb/s",
        "mlx5_1 port 1 (InfiniBand): expected Active/LinkUp, found Down/Polling",
    )
    assert report.summary() == "; ".join(report.problems)


def test_no_ib_port_at_all_is_a_problem():
    assert infiniband.port_report([], 400).problems == ("expected InfiniBand ports, found none (ibstat lists no HCA)",)
    eth = infiniband.port_report([port("mlx5_0", layer="Ethernet")], 400).problems
    assert eth == ("expected InfiniBand ports, found none (1 other port(s): mlx5_0 port 1)",)


def test_named_cas_only_and_missing_ca():
    report = infiniband.port_report([port("mlx5_0"), port("mlx5_1", rate=100)], 400, cas=("mlx5_0", "mlx5_9"))
    assert report.checked == ("mlx5_0 port 1",)
    assert report.problems == ("mlx5_9: expected by infiniband_check_cas, not found by ibstat",)


def test_ipoib_networkd_and_ifupdown():
    text = infiniband.render_ipoib("networkd", "ibp25s0", "10.10.0.11/16", 2044)
    assert "[Match]\nName=ibp25s0\n" in text and "Address=10.10.0.11/16\n" in text and "MTUBytes=2044" in text
    assert infiniband.ipoib_path("networkd", "ib0") == "/etc/systemd/network/60-deepseek-ib0.network"
    text = infiniband.render_ipoib("ifupdown", "ib0", "fd00::5/64")
    assert "iface ib0 inet6 static\n    address fd00::5/64\n" in text
    assert infiniband.ipoib_path("ifupdown", "ib0") == "/etc/network/interfaces.d/deepseek-ib0"


@pytest.mark.parametrize(("cidr", "text"), [
    ("10.10.0.11", "prefix length"), ("10.10.0.0/16", "network address"), ("10.10.255.255/16", "broadcast"),
    ("10.10.0.300/16", "does not appear"), ("10.10.0.1/33", "10.10.0.1/33"),
])
def test_bad_cidrs_are_refused(cidr, text):
    with pytest.raises(ValueError, match=text):
        infiniband.check_cidr(cidr)


def test_point_to_point_prefixes_are_host_addresses():
    assert str(infiniband.check_cidr("10.0.0.0/31")) == "10.0.0.0/31"


def test_modules_load_and_interface_names():
    assert infiniband.render_modules_load(infiniband.KERNEL_MODULES).endswith("ib_umad\nib_uverbs\nrdma_ucm\nmlx5_ib\n")
    with pytest.raises(ValueError, match="kernel module"):
        infiniband.render_modules_load(["mlx5_ib; reboot"])
    with pytest.raises(ValueError, match="interface name"):
        infiniband.check_interface("ib0/../../x")
