"""The preflight role (roles/preflight/tasks.py): which preconditions it asks for, the message
a failing host stops with ("...; change: <fix>; <fix>"), and the role run on @local through
pyinfra, so the fact's arguments and the message are the real ones."""

from __future__ import annotations

import socket

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.api.operations import run_ops

from deepseek_infra.preflight import Check, GpuSummary, PreflightReport
from deepseek_infra.runcache import run_cache
from roles.deployment import DeploymentDefaults
from roles.preflight import tasks
from roles.preflight.defaults import PreflightDefaults
from roles.serve.defaults import ServeDefaults
from roles.tuning.defaults import TuningDefaults
from roles.weights.defaults import WeightsDefaults

MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
SLUG = "deepseek-ai--DeepSeek-R1-Distill-Qwen-1.5B"
HTTP = dict(weights_source="http", weights_revision="v1", weights_mirror_url="http://mirror.dc1:8080/m",
            weights_manifest="/srv/manifest.json")
HF = dict(weights_source="hf", weights_revision="v1", weights_hf_endpoint="https://hf.internal",
          weights_manifest="/srv/manifest.json")
DEPLOYMENT = DeploymentDefaults(deepseek_model=MODEL)


def report(*checks: Check, replica: str | None = None) -> PreflightReport:
    gpus = GpuSummary(count=0, name=None, memory_mib=None, compute_capability=None, source="pci", driver_version=None)
    return PreflightReport(host="gpu-1", model=MODEL, engine="vllm", gpus=gpus, checks=list(checks), replica=replica)


PLAN = Check("serving plan", "DeepSeek-V3 on 1 node(s)", "does not fit", "fail", "", "deepseek_nodes = 2")
CORES = Check("cpu cores", ">= 32", "24", "fail", "", "a host with >= 32 physical cores, or lower preflight_min_cpu_cores to 24")


def test_the_message_ends_with_what_to_change():
    failed = report(PLAN, Check("memory", ">= 64 GiB", "2,000 GiB", "pass"), CORES)
    assert tasks.failure_message(failed, whole_run=False) == (
        "serving plan: needed DeepSeek-V3 on 1 node(s), found does not fit; cpu cores: needed >= 32, found 24; "
        "change: deepseek_nodes = 2; a host with >= 32 physical cores, or lower preflight_min_cpu_cores to 24")
    assert tasks.failure_message(failed, whole_run=True) == (
        "gpu-1: preflight failed (serving plan: needed DeepSeek-V3 on 1 node(s), found does not fit; "
        "cpu cores: needed >= 32, found 24); no host was changed; "
        "change: deepseek_nodes = 2; a host with >= 32 physical cores, or lower preflight_min_cpu_cores to 24")


def test_the_replica_comes_before_the_change_and_no_fix_means_no_change_part():
    of_replica = report(PLAN, replica="replica 'r1' (gpu-1 head, gpu-2)")
    assert tasks.failure_message(of_replica, whole_run=False) == (
        "serving plan: needed DeepSeek-V3 on 1 node(s), found does not fit; "
        "replica 'r1' (gpu-1 head, gpu-2) cannot serve without it; change: deepseek_nodes = 2")
    bare = report(Check("serving plan", "x", "invalid", "fail", "odd"))
    assert "change:" not in tasks.failure_message(bare, whole_run=True)


def test_an_explicit_model_path_is_checked_only_when_serving_and_not_placed_in_this_run():
    check = tasks.model_path_to_check
    assert check(ServeDefaults(), WeightsDefaults(), DEPLOYMENT) is None
    assert check(ServeDefaults(serve_model_path="/srv/m"), WeightsDefaults(), DEPLOYMENT) == "/srv/m"
    assert check(ServeDefaults(serve_model_path="/srv/m", serve_enabled=False), WeightsDefaults(), DEPLOYMENT) is None
    weights = WeightsDefaults.from_data(HTTP)
    for placed in (f"/var/lib/deepseek/models/{SLUG}/current", f"/var/lib/deepseek/models/{SLUG}/v1/"):
        assert check(ServeDefaults(serve_model_path=placed), weights, DEPLOYMENT) is None, placed
    other = f"/var/lib/deepseek/models/{SLUG}/v0"  # an older revision: the weights role does not place it
    assert check(ServeDefaults(serve_model_path=other), weights, DEPLOYMENT) == other
    placed = f"/var/lib/deepseek/models/{SLUG}/current"
    assert check(ServeDefaults(serve_model_path=placed), WeightsDefaults(), DEPLOYMENT) == placed  # source none


def test_the_weights_endpoint_is_checked_only_when_the_role_downloads():
    assert tasks.weights_endpoint_of(WeightsDefaults()) is None
    assert tasks.weights_endpoint_of(WeightsDefaults.from_data(HTTP)) == ("weights_mirror_url", "http://mirror.dc1:8080/m")
    assert tasks.weights_endpoint_of(WeightsDefaults.from_data(HF)) == ("weights_hf_endpoint", "https://hf.internal")
    assert tasks.weights_endpoint_of(WeightsDefaults.from_data({**HTTP, "weights_action": "rollback"})) is None
    requirements = tasks.requirements_from(PreflightDefaults(), DEPLOYMENT, ServeDefaults(serve_model_path="/srv/m"),
                                           WeightsDefaults.from_data(HF))
    assert (requirements.model_path, requirements.weights_endpoint) == ("/srv/m", ("weights_hf_endpoint", "https://hf.internal"))
    assert tasks.requirements_from(PreflightDefaults(), DEPLOYMENT).model_path is None


# --- the role on @local: the real fact, the real message -------------------------------------

def closed_port() -> int:
    with socket.socket() as bound:  # bound then released: nothing listens there
        bound.bind(("127.0.0.1", 0))
        return bound.getsockname()[1]


def run_check(tmp_path, on_failure: str, serve: ServeDefaults, weights: WeightsDefaults, data=None) -> State:
    state = State(Inventory(([("@local", data or {})], {})), Config())
    connect_all(state)
    # Thresholds any machine passes: only the preconditions under test may fail the last checks.
    config = PreflightDefaults(preflight_min_cpu_cores=1, preflight_min_memory_gib=0.1, preflight_min_network_gbps=0.001,
                               preflight_weights_path=str(tmp_path), preflight_on_failure=on_failure)
    deployment = DeploymentDefaults(deepseek_model=MODEL, deepseek_engine="transformers")
    add_deploy(state, tasks.check, config, deployment, TuningDefaults(), serve, weights)
    return state


def test_a_missing_checkpoint_and_a_closed_mirror_stop_the_run_saying_what_to_change(tmp_path):
    port = closed_port()
    weights = WeightsDefaults.from_data({**HTTP, "weights_mirror_url": f"http://127.0.0.1:{port}/m"})
    missing = tmp_path / "checkpoint"
    with pytest.raises(DeployError) as stopped:
        run_check(tmp_path, "run", ServeDefaults(serve_model_path=str(missing)), weights)
    message = str(stopped.value)
    assert f"model path: needed checkpoint at {missing} (serve_model_path), found nothing there" in message
    assert f"weights source: needed TCP to 127.0.0.1:{port} (weights_mirror_url), found Connection refused" in message
    # Other checks this machine fails (if any) come first; these two fixes end the message.
    assert message.split("; no host was changed; change: ", 1)[1].endswith(
        f"place the checkpoint at {missing} or unset serve_model_path (the weights role's release is used); "
        f"weights_mirror_url = a URL this node reaches, or open 127.0.0.1:{port} to it (route, firewall, DNS)"), message


def test_a_failing_host_alone_is_stopped_by_its_gate_with_the_change(tmp_path):
    missing = tmp_path / "checkpoint"
    state = run_check(tmp_path, "host", ServeDefaults(serve_model_path=str(missing)), WeightsDefaults())
    try:
        run_ops(state)
    except Exception:  # noqa: BLE001  pyinfra: "No hosts remaining!"
        pass
    local = state.inventory.get_host("@local")
    assert local in state.failed_hosts
    stderr = [line for meta in state.ops[local].values() for line in meta.operation_meta.stderr_lines]
    assert any(line.startswith("preflight failed: ") and line.endswith(
        f"change: place the checkpoint at {missing} or unset serve_model_path (the weights role's release is used)")
        for line in stderr), stderr


def test_a_present_checkpoint_passes_the_gate(tmp_path):
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    state = run_check(tmp_path, "host", ServeDefaults(serve_model_path=str(checkpoint)), WeightsDefaults())
    (report,) = run_cache(state, "preflight.reports").values()
    assert [c.verdict for c in report.checks if c.name == "model path"] == ["pass"]


def test_settings_naming_hardware_this_machine_lacks_fail_preflight_naming_them(tmp_path):
    """Any role's settings count (here the kernel role's), read against this machine's real sysfs."""
    with pytest.raises(DeployError) as stopped:
        run_check(tmp_path, "run", ServeDefaults(), WeightsDefaults(),
                  data={"kernel_isolated_cpus": "1-4095", "kernel_cmdline_extra": {"nohz_full": "1-4095"}})
    message = str(stopped.value)
    assert "hardware references: needed settings name hardware this host has, found 2 not on this host " \
           "(kernel_isolated_cpus, kernel_cmdline_extra)" in message, message
    cpus = open("/sys/devices/system/cpu/online").read().strip()
    assert f"kernel_isolated_cpus: '1-4095' names CPU(s) " in message and f"(online CPUs: {cpus})" in message
    assert "kernel_cmdline_extra: nohz_full=1-4095 names CPU(s)" in message
    assert message.endswith("; change: set kernel_isolated_cpus, kernel_cmdline_extra to what this host has")


# --- host memory: the settings the terms take, and the message ---------------------------------

def test_requirements_take_the_memory_terms_settings_from_the_serve_weights_and_kernel_roles():
    from roles.kernel.defaults import KernelDefaults

    encrypted = WeightsDefaults.from_data({**HTTP, "weights_encrypt": True, "weights_key": "env:K"})
    requirements = tasks.requirements_from(
        PreflightDefaults(), DEPLOYMENT, ServeDefaults(serve_target_concurrency=4, serve_vllm_device="cpu",
                                                       serve_environment={"VLLM_CPU_KVCACHE_SPACE": "2"}),
        encrypted, KernelDefaults(kernel_hugepages_count=512, kernel_hugepages_size="2M"), tmpfs_bytes=123)
    memory = requirements.host_memory
    assert requirements.target_concurrency == 4
    assert (memory.weights_encrypted, memory.tmpfs_bytes) == (True, 123)
    assert (memory.hugepages_count, memory.hugepages_size, memory.hugepages_share) == (512, "2M", None)
    assert (memory.use_gpus, memory.cpu_kv_cache_gib) == (False, 2.0)
    # An explicit serve_model_path is loaded as is: nothing is decrypted for it.
    explicit = tasks.requirements_from(PreflightDefaults(), DEPLOYMENT, ServeDefaults(serve_model_path="/srv/m"), encrypted)
    assert not explicit.host_memory.weights_encrypted
    assert not tasks.requirements_from(PreflightDefaults(), DEPLOYMENT).host_memory.weights_encrypted


def test_a_memory_failure_names_each_term_in_the_message():
    memory = Check("memory", ">= 685 GiB (serving plan), site bar 64 GiB", "512 GiB", "fail",
                   "decrypted weights (tmpfs) 641.3 GiB (weights_encrypt: ...) + engine processes 35.0 GiB (...) + "
                   "OS reserve 8.0 GiB (...) = 684.3 GiB",
                   "a host with >= 685 GiB of RAM, or weights_encrypt = false (no 641.3 GiB tmpfs of decrypted weights)",
                   itemised=True)  # as evaluate() builds it
    message = tasks.failure_message(report(memory), whole_run=True)
    assert message == (
        "gpu-1: preflight failed (memory: needed >= 685 GiB (serving plan), site bar 64 GiB, found 512 GiB "
        "[decrypted weights (tmpfs) 641.3 GiB (weights_encrypt: ...) + engine processes 35.0 GiB (...) + "
        "OS reserve 8.0 GiB (...) = 684.3 GiB]); no host was changed; change: a host with >= 685 GiB of RAM, "
        "or weights_encrypt = false (no 641.3 GiB tmpfs of decrypted weights)")
