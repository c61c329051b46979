"""The infiniband role's variables: bad values refused naming host and key; where it applies."""

import pytest

from deepseek_infra.config import validate_host_data
from roles.infiniband.defaults import InfinibandDefaults
from roles.infiniband.tasks import applies


def problems(data):
    return validate_host_data("gpu-a01", data, (InfinibandDefaults,))[1]


def test_defaults_are_valid():
    assert problems({}) == []


@pytest.mark.parametrize(("data", "key", "text"), [
    ({"infiniband_ipoib_addresses": {"ib0": "10.10.0.0/16"}}, "infiniband_ipoib_addresses", "network address"),
    ({"infiniband_ipoib_addresses": {"ib0": "10.10.0.11"}}, "infiniband_ipoib_addresses", "prefix length"),
    ({"infiniband_ipoib_addresses": {"ib 0": "10.10.0.11/16"}}, "infiniband_ipoib_addresses", "interface name"),
    ({"infiniband_expected_rate_gbps": 0}, "infiniband_expected_rate_gbps", "greater than 0"),
    ({"infiniband_on_port_problem": "ignore"}, "infiniband_on_port_problem", "warn"),
    ({"infiniband_check_link_layers": ["RoCE"]}, "infiniband_check_link_layers", "InfiniBand"),
    ({"infiniband_kernel_modules": ["mlx5_ib", "x;y"]}, "infiniband_kernel_modules", "kernel module"),
])
def test_bad_values_are_refused_naming_host_and_key(data, key, text):
    found = problems(data)
    assert any(host == "gpu-a01" and k == key and text in message for host, k, message in found), found


def test_infiniband_applies_to_the_group_or_detected_devices():
    assert applies(["gpu_nodes", "ib_fabric"], [], [])
    assert applies(["gpu_nodes"], ["mlx5_0"], [])
    assert applies(["gpu_nodes"], [], [{"ca": "mlx5_0"}])
    assert not applies(["gpu_nodes"], [], [])
