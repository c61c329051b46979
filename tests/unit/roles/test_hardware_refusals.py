"""Roles refuse, while preparing, settings that name hardware the host does not have, or that
contradict what the host will run (planned engine flags, grants for models it does not route).

Each role is prepared for real (pyinfra's add_deploy on @local) with the host's reading
replaced by a real capture (tests/fixtures/hw/gpu-host: an H200 VM with 1 GPU, 16 CPUs,
eth0); the refusal names the host and the setting, and no operation was prepared.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import DeployError

from deepseek_infra.facts.host import HostHardware
from deepseek_infra.hardware import PciDevice
from roles.settings import settings_for

CAPTURE = Path(__file__).resolve().parents[2] / "fixtures/hw/gpu-host/h200-vm.capture.json"


@pytest.fixture(scope="module")
def h200_vm():
    capture = json.loads(CAPTURE.read_text())
    return HostHardware().process(capture["commands"]["fact:HostHardware"]["stdout"].splitlines())


def prepared(monkeypatch, hardware, data: dict):
    """The @local host with ``data``, every hardware reading replaced by ``hardware``."""
    from roles.kernel import tasks as kernel
    from roles.kvm import tasks as kvm
    from roles.netcheck import tasks as netcheck
    from roles.tuning import tasks as tuning

    monkeypatch.setattr(kernel.host_facts, "hardware", lambda target: hardware)
    monkeypatch.setattr(tuning, "prepared_hardware", lambda target: hardware)
    monkeypatch.setattr(netcheck, "prepared_hardware", lambda target: hardware)
    state = State(Inventory(([("@local", data)], {})), Config())
    connect_all(state)
    host = state.inventory.get_host("@local")
    return state, host, settings_for(host), {"kernel": kernel, "kvm": kvm, "netcheck": netcheck, "tuning": tuning}


CASES = [
    ("tuning", {"tuning_gpu_indices": [0, 1, 2, 3]}, "tuning_gpu_indices: GPU index(es) 1, 2, 3 not on this host"),
    ("tuning", {"tuning_nccl_env": {"NCCL_SOCKET_IFNAME": "ib"}}, "tuning_nccl_env: NCCL_SOCKET_IFNAME=ib: no interface"),
    ("kernel", {"kernel_isolated_cpus": "8-63"}, "kernel_isolated_cpus: '8-63' names CPU(s) 16-63"),
    ("kernel", {"kernel_cmdline_extra": {"nohz_full": "2-31"}}, "kernel_cmdline_extra: nohz_full=2-31 names CPU(s) 16-31"),
    ("kvm", {"kvm_guests": [{"name": "g1", "vcpus": 2, "memory_mib": 1024, "gpus": ["0000:99:00.0"]}]},
     "kvm_guests: guest g1: no NVIDIA device at PCI 0000:99:00.0"),
]


@pytest.mark.parametrize(("role", "data", "words"), CASES, ids=[f"{c[0]}-{next(iter(c[1]))}" for c in CASES])
def test_a_role_refuses_hardware_the_host_lacks_before_any_operation(monkeypatch, h200_vm, role, data, words):
    from pyinfra.api.host import Host

    hardware = h200_vm
    if role == "kvm":  # the VM's capture has no lspci: give it its GPU's PCI function back
        hardware = replace(h200_vm, pci_devices=(PciDevice(slot="0000:00:1e.0", class_id="0302", vendor_id="10de"),),
                           unavailable={})
    state, host, settings, roles = prepared(monkeypatch, hardware, data)
    if role == "kvm":  # the guest plan reads more facts after the refusal point: none may be asked
        monkeypatch.setattr(Host, "get_fact", lambda *a, **k: pytest.fail("asked a fact after a bad reference"))
    deploys = {
        "tuning": (roles["tuning"].place, settings.tuning, settings.deployment),
        "kernel": (roles["kernel"].tune, settings.kernel),
        "kvm": (roles["kvm"].install, settings.kvm, settings.tuning),
    }
    if role == "kernel":  # the kernel role reads its own small state fact first
        monkeypatch.setattr(roles["kernel"].host, "get_fact", lambda *a, **k: {}, raising=False)
    function, *arguments = deploys[role]
    with pytest.raises(DeployError) as raised:
        add_deploy(state, function, *arguments)
    message = str(raised.value)
    assert f"@local: {words}" in message, message
    assert "no host was changed" in message
    assert state.get_op_order() == []


def test_the_same_settings_on_a_host_that_has_the_hardware_prepare(monkeypatch, h200_vm):
    state, host, settings, roles = prepared(monkeypatch, h200_vm, {"tuning_gpu_indices": [0],
                                                                   "tuning_nccl_env": {"NCCL_SOCKET_IFNAME": "eth0"}})
    add_deploy(state, roles["tuning"].place, settings.tuning, settings.deployment)
    assert len(state.get_op_order()) == 1


def test_the_serve_role_refuses_extra_args_restating_the_plan_with_the_planned_value(monkeypatch, h200_vm):
    """serve_extra_args against the plan for this host's GPUs (1 H200): refused while preparing."""
    from roles.serve import tasks as serve

    monkeypatch.setattr(serve, "hardware", lambda target: h200_vm)
    state, host, settings, _ = prepared(monkeypatch, h200_vm, {"serve_extra_args": ["--tensor-parallel-size", "8"]})
    with pytest.raises(DeployError) as raised:
        add_deploy(state, serve.install, settings.serve, settings.deployment, settings.weights)
    assert str(raised.value) == (
        "@local: serve_extra_args: --tensor-parallel-size 8 restates a flag the collection sets (planned: "
        "--tensor-parallel-size 1); remove it from serve_extra_args and change deepseek_nodes or tuning_gpu_indices "
        "(the plan spreads the model over the GPUs it is given) instead")
    assert state.get_op_order() == []


def test_the_gateway_role_refuses_a_grant_for_a_model_it_does_not_route(monkeypatch, h200_vm):
    from roles.gateway import tasks as gateway

    state, host, settings, _ = prepared(monkeypatch, h200_vm, {
        "gateway_users": {"alice": {"deepseek-ai/DeepSeek-V3": "read"}}})  # the default model is R1-Distill-Qwen-7B
    with pytest.raises(DeployError) as raised:
        add_deploy(state, gateway.install, settings.gateway, settings.deployment)
    message = str(raised.value)
    assert ("@local: gateway_users: alice: grant for 'deepseek-ai/DeepSeek-V3', which this host does not serve "
            "(it serves deepseek-ai/DeepSeek-R1-Distill-Qwen-7B)") in message
    assert "no host was changed" in message and state.get_op_order() == []
