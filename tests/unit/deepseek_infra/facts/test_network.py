"""/sys/class/net parsing on a realistic GPU node listing and on this machine."""

import subprocess

from deepseek_infra.facts.network import NET_SYSFS_COMMAND, NetworkInterfaces, parse_net_sysfs

# `grep -H .` over an HGX node: ConnectX-7 in IB mode, RoCE port, a down port whose speed
# read failed (no line), loopback, and a tun device with an empty address (no line).
NET_SYSFS = """\
/sys/class/net/enp25s0np0/operstate:up
/sys/class/net/ib0/operstate:up
/sys/class/net/enp83s0f1np1/operstate:down
/sys/class/net/lo/operstate:unknown
/sys/class/net/tailscale0/operstate:unknown
/sys/class/net/enp25s0np0/speed:400000
/sys/class/net/ib0/speed:400000
/sys/class/net/tailscale0/speed:-1
/sys/class/net/enp25s0np0/mtu:9000
/sys/class/net/ib0/mtu:4092
/sys/class/net/enp83s0f1np1/mtu:1500
/sys/class/net/lo/mtu:65536
/sys/class/net/tailscale0/mtu:1280
/sys/class/net/enp25s0np0/address:b8:3f:d2:a1:b2:c3
/sys/class/net/ib0/address:00:00:10:29:fe:80:00:00:00:00:00:00:b8:3f:d2:03:00:aa:bb:cc
/sys/class/net/enp83s0f1np1/address:b8:3f:d2:a1:b2:c4
/sys/class/net/lo/address:00:00:00:00:00:00
/sys/class/net/enp25s0np0/type:1
/sys/class/net/ib0/type:32
/sys/class/net/enp83s0f1np1/type:1
/sys/class/net/lo/type:772
/sys/class/net/tailscale0/type:65534
""".splitlines()


def test_parse_net_sysfs_gpu_node():
    interfaces = parse_net_sysfs(NET_SYSFS)
    assert sorted(interfaces) == ["enp25s0np0", "enp83s0f1np1", "ib0", "lo", "tailscale0"]
    assert interfaces["enp25s0np0"] == {
        "state": "up", "speed_mbps": 400000, "mtu": 9000, "mac": "b8:3f:d2:a1:b2:c3", "type": "ether",
    }
    assert interfaces["ib0"]["type"] == "infiniband"
    assert interfaces["ib0"]["mac"] == "00:00:10:29:fe:80:00:00:00:00:00:00:b8:3f:d2:03:00:aa:bb:cc"
    assert interfaces["enp83s0f1np1"]["speed_mbps"] is None  # unreadable while down
    assert interfaces["tailscale0"] == {
        "state": "unknown", "speed_mbps": None, "mtu": 1280, "mac": None, "type": "none",
    }
    assert interfaces["lo"]["type"] == "loopback"


def test_parse_net_sysfs_unknown_speed_and_type():
    interfaces = parse_net_sysfs([
        "/sys/class/net/eth0/speed:4294967295",
        "/sys/class/net/eth0/type:280",
    ])
    assert interfaces == {"eth0": {"state": None, "speed_mbps": None, "mtu": None, "mac": None, "type": "280"}}


def test_parse_net_sysfs_ignores_stray_lines():
    assert parse_net_sysfs(["grep: /sys/class/net/lo/speed: Invalid argument",
                            "/sys/class/net/bonding_masters:bond0"]) == {}


def test_command_is_one_read_of_all_attributes_and_never_fails():
    for attribute in ("operstate", "speed", "mtu", "address", "type"):
        assert f"/sys/class/net/*/{attribute}" in NET_SYSFS_COMMAND
    assert "{" not in NET_SYSFS_COMMAND  # dash has no brace expansion
    assert NetworkInterfaces().command() == NET_SYSFS_COMMAND


def test_network_interfaces_on_this_machine():
    output = subprocess.run(["sh", "-c", NET_SYSFS_COMMAND], capture_output=True, text=True, check=True)
    interfaces = NetworkInterfaces().process(output.stdout.splitlines())
    assert interfaces["lo"]["type"] == "loopback" and interfaces["lo"]["mtu"] == 65536
    assert all(set(values) == {"state", "speed_mbps", "mtu", "mac", "type"} for values in interfaces.values())
