"""Inventory validation: every bad input is refused with the host and the field named."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.exceptions import DeployError

from roles.settings import HostSettings, settings_for, validate_inventory


def make_state(hosts: list, **groups) -> State:
    inventory = Inventory((hosts, {}), **groups)
    return State(inventory, Config())


# (case id, host data, field the message must name, words the message must contain)
BAD_INPUTS = [
    ("unknown-key", {"base_ntp_server": ["a"]}, "base_ntp_server", "did you mean base_ntp_servers"),
    ("unknown-unrelated-key", {"gpu_count": 8}, "gpu_count", "unknown host data key"),
    ("typo-model-key", {"deepseek_modle": "x"}, "deepseek_modle", "did you mean deepseek_model"),
    ("packages-not-list", {"base_packages": 5}, "base_packages", "tuple"),
    ("package-bad-name", {"base_packages": ["curl; rm -rf /"]}, "base_packages", "not a Debian package name"),
    ("package-empty-name", {"base_extra_packages": [""]}, "base_extra_packages", "not a Debian package name"),
    ("cache-not-int", {"base_apt_cache_valid_s": "an hour"}, "base_apt_cache_valid_s", "integer"),
    ("cache-negative", {"base_apt_cache_valid_s": -1}, "base_apt_cache_valid_s", "greater than or equal to 0"),
    ("cache-float", {"base_apt_cache_valid_s": 1.5}, "base_apt_cache_valid_s", "integer"),
    ("ntp-not-list", {"base_ntp_servers": 123}, "base_ntp_servers", "tuple"),
    ("ntp-item-not-str", {"base_ntp_servers": [1, 2]}, "base_ntp_servers", "string"),
    ("uid-too-low", {"base_service_uid": 5}, "base_service_uid", "greater than or equal to 100"),
    ("uid-too-high", {"base_service_uid": 70000}, "base_service_uid", "less than or equal to 65533"),
    ("uid-not-int", {"base_service_uid": "deepseek"}, "base_service_uid", "integer"),
    ("engine-unknown", {"deepseek_engine": "tgi"}, "deepseek_engine", "'vllm', 'sglang' or 'transformers'"),
    ("engine-wrong-type", {"deepseek_engine": 3}, "deepseek_engine", "vllm"),
    ("model-unknown", {"deepseek_model": "deepseek-v4-ultra"}, "deepseek_model", "deepseek"),
    ("model-wrong-type", {"deepseek_model": ["deepseek-v3"]}, "deepseek_model", "string"),
    ("model-empty", {"deepseek_model": ""}, "deepseek_model", "model"),
    ("model-typo", {"deepseek_model": "deepseek-ai/DeepSeek-V3.3"}, "deepseek_model", "DeepSeek-V3"),
    ("uid-bool", {"base_service_uid": [100]}, "base_service_uid", "integer"),
    # the observability roles (exporters, monitoring, netcheck, filebeat)
    ("cidr", {"exporters_monitoring_networks": ["10.0.0.0/33"]}, "exporters_monitoring_networks", "not a CIDR"),
    ("port", {"exporters_node_exporter_port": 70000}, "exporters_node_exporter_port", "less than or equal to 65535"),
    ("unit", {"exporters_dcgm_service": "dcgm; reboot"}, "exporters_dcgm_service", "not a systemd unit name"),
    ("engine-url", {"exporters_engine_metrics_url": "ftp://x"}, "exporters_engine_metrics_url", "http://"),
    ("duration", {"monitoring_gpu_memory_for": "5 minutes"}, "monitoring_gpu_memory_for", "Prometheus duration"),
    ("percent", {"monitoring_gpu_util_percent": 150}, "monitoring_gpu_util_percent", "less than or equal to 100"),
    ("bandwidth", {"monitoring_network_min_bytes_per_s": 0}, "monitoring_network_min_bytes_per_s", "greater than 0"),
    ("mode", {"netcheck_mode": "mesh"}, "netcheck_mode", "'ring' or 'all'"),
    ("logstash", {"filebeat_logstash_hosts": ["logstash"]}, "filebeat_logstash_hosts", "host:port"),
    ("repo", {"filebeat_apt_repo_url": "mirror/elastic"}, "filebeat_apt_repo_url", "URL"),
    # issue 23: pyinfra global arguments misspelt, and two services on one port
    ("global-arg-typo", {"_sudo_usr": "root"}, "_sudo_usr", "unknown pyinfra global argument; did you mean _sudo_user"),
    ("global-arg-unknown", {"_become": True}, "_become", "unknown pyinfra global argument"),
    ("port-engine-gateway", {"gateway_port": 8000}, "gateway_port", "port 8000 is already serve_port's"),
    ("port-exporter-gateway", {"exporters_node_exporter_port": 8443}, "exporters_node_exporter_port",
     "port 8443 is already gateway_port's"),
    ("node-path-relative", {"monitoring_gateway_ca_file": "certs/ca.pem"}, "monitoring_gateway_ca_file",
     "expected an absolute path on the node, found 'certs/ca.pem'"),
]


@pytest.mark.parametrize(("data", "field", "words"), [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_naming_host_and_field(data, field, words):
    state = make_state([("good-node", {}), ("bad-node", data)])
    with pytest.raises(DeployError) as raised:
        validate_inventory(state)
    message = str(raised.value)
    problem_lines = [line.strip() for line in message.splitlines()[1:]]
    assert any(line.startswith(f"bad-node: {field}:") for line in problem_lines), message
    assert not any(line.startswith("good-node") for line in problem_lines), message
    assert words.lower() in message.lower(), message
    assert "no host was changed" in message


def test_bad_input_corpus_is_large_enough():
    assert len(BAD_INPUTS) >= 20


def test_all_problems_of_all_hosts_reported_together():
    state = make_state([("a", {"base_ntp_server": []}), ("b", {"deepseek_engine": "x", "base_service_uid": 1})])
    with pytest.raises(DeployError) as raised:
        validate_inventory(state)
    lines = str(raised.value).splitlines()[1:]
    assert len(lines) == 3, lines


def test_pyinfra_keys_pass_through():
    state = make_state([("node", {"ssh_user": "deploy", "ssh_port": 2222, "_sudo": True, "docker_identifier": "x"})])
    settings = validate_inventory(state)["node"]
    assert isinstance(settings, HostSettings)


def test_group_data_is_validated_and_merged():
    state = make_state(
        [("node-1", {}), ("node-2", {"base_ntp_servers": ["ntp.b"]})],
        gpu_nodes=(["node-1", "node-2"], {"base_ntp_servers": ["ntp.group"]}),
    )
    settings = validate_inventory(state)
    assert settings["node-1"].base.base_ntp_servers == ("ntp.group",)
    assert settings["node-2"].base.base_ntp_servers == ("ntp.b",)


def test_defaults_and_alias_resolution():
    state = make_state([("node", {"deepseek_model": "r1-distill-qwen-1.5b"})])
    settings = validate_inventory(state)["node"]
    assert settings.deployment.deepseek_model == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert settings.deployment.deepseek_engine == "vllm"
    assert "chrony" in settings.base.base_packages


def test_settings_for_validates_once_per_state():
    state = make_state([("node", {})])
    host = state.inventory.get_host("node")
    first = settings_for(host)
    assert settings_for(host) is first


def test_replicas_come_from_deepseek_replica_and_a_wrong_size_is_refused_naming_the_hosts():
    from roles.settings import replica_plan

    hosts = [(f"n{i}", {"deepseek_nodes": 2, "deepseek_replica": f"r{(i + 1) // 2}"}) for i in range(1, 5)]
    state = make_state(hosts + [("mon", {})], gpu_nodes=([name for name, _ in hosts], {}))
    plan = replica_plan(state, validate_inventory(state))
    assert {host: (replica.name, replica.rank(host)) for host, replica in plan.items()} == {
        "n1": ("r1", 0), "n2": ("r1", 1), "n3": ("r2", 0), "n4": ("r2", 1)}  # mon serves nothing
    short = make_state(hosts[:3], gpu_nodes=([name for name, _ in hosts[:3]], {}))
    with pytest.raises(DeployError, match=r"inventory: deepseek_replica: replica 'r2' has 1 host\(s\) \(n3\)"):
        validate_inventory(short)


def test_a_bad_replica_name_is_refused_naming_host_and_field():
    with pytest.raises(DeployError) as raised:
        validate_inventory(make_state([("n1", {"deepseek_replica": "r 1; rm"})]))
    assert "n1" in str(raised.value) and "deepseek_replica" in str(raised.value)


def test_the_readme_two_node_replica_inventory_validates_into_two_replicas():
    """README "Multi-node replicas": its inventory lines, as written, make r1 and r2."""
    import re
    from pathlib import Path

    from roles.settings import replica_plan

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("### Multi-node replicas", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    names: dict = {"_ssh": {"ssh_user": "deploy"}}
    exec(block, names)  # noqa: S102  the README's own lines
    hosts = [(name, {**data, "deepseek_nodes": names["deepseek_nodes"]}) for name, data in names["gpu_nodes"]]
    state = make_state(hosts, gpu_nodes=([name for name, _ in hosts], {}))
    plan = replica_plan(state, validate_inventory(state))
    assert sorted({(r.name, r.hosts) for r in plan.values()}) == [
        ("r1", ("gpu-a01.dc1.example.internal", "gpu-a02.dc1.example.internal")),
        ("r2", ("gpu-a03.dc1.example.internal", "gpu-a04.dc1.example.internal"))]


def test_port_collisions_and_misspelt_global_arguments_are_reported_with_other_problems():
    state = make_state([("a", {"base_ntp_server": [], "_sudo_usr": "root"}),
                        ("b", {"base_apt_cache_valid_s": "an hour", "gateway_port": 8000})])
    with pytest.raises(DeployError) as raised:
        validate_inventory(state)
    message = str(raised.value)
    assert "a: _sudo_usr: unknown pyinfra global argument; did you mean _sudo_user" in message
    assert "b: gateway_port: port 8000 is already serve_port's on this host" in message
    assert "a: base_ntp_server:" in message and "b: base_apt_cache_valid_s:" in message


def test_known_global_arguments_and_distinct_ports_pass():
    state = make_state([("a", {"_sudo": True, "_sudo_user": "root", "_env": {"A": "1"}, "gateway_port": 9443})])
    assert validate_inventory(state)["a"].gateway.gateway_port == 9443


# --- issue 23: grants for models the host serves, node paths, groups that disagree -------------

def test_a_grant_for_a_model_the_host_does_not_serve_is_named_with_a_did_you_mean():
    from roles.settings import served_grant_problems

    settings = validate_inventory(make_state([("a", {
        "deepseek_model": "deepseek-ai/DeepSeek-V3",
        "gateway_users": {"alice": {"deepseek-ai/DeepSeek-V3.0": "write"}, "bob": {"deepseek-ai/DeepSeek-V3": "read"}},
    })]))["a"]  # valid data: a what-if run (deploy/preflight.py) is not refused for it
    (problem,) = served_grant_problems(settings.deployment, settings.gateway)
    assert problem == ("gateway_users", "alice: grant for 'deepseek-ai/DeepSeek-V3.0', which this host does not serve "
                       "(it serves deepseek-ai/DeepSeek-V3); did you mean deepseek-ai/DeepSeek-V3? Grant a served "
                       "model, route 'deepseek-ai/DeepSeek-V3.0' in gateway_upstreams, or change deepseek_model")


def test_grants_for_the_served_model_and_the_extra_routes_pass():
    from roles.settings import served_grant_problems

    settings = validate_inventory(make_state([("a", {
        "deepseek_model": "deepseek-ai/DeepSeek-V3",
        "gateway_upstreams": {"deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": "http://127.0.0.1:8001"},
        "gateway_users": {"alice": {"deepseek-ai/DeepSeek-V3": "write", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": "read"}},
    })]))["a"]
    assert served_grant_problems(settings.deployment, settings.gateway) == []


# Paths read on the controller: relative to where pyinfra runs, as a shell user expects.
CONTROLLER_PATHS = {
    "preflight_report", "weights_source_dir", "weights_manifest", "weights_wheelhouse", "weights_key",
    "nvidia_repo_mirror_key", "nvidia_repo_bundle_dir", "docker_ce_repo_key", "monitoring_output_dir",
    "netcheck_report", "filebeat_apt_keyring", "serve_wheelhouse", "serve_container_image_tarball",
    "gateway_tls_cert_file", "gateway_tls_key_file", "gateway_keys_file", "gateway_input_hash_key_file",
    "gateway_wheelhouse", "report_output_dir",
}


def _path_settings():
    from roles.settings import ROLE_DEFAULTS
    for role in ROLE_DEFAULTS:
        for name, field in role.model_fields.items():
            text = f"{name} {field.description}".lower()
            if any(word in text for word in ("_path", "_dir", "_file", "_binary", "_root", "_log", "path ", "directory", " file")):
                if "str" in str(field.annotation):
                    yield role, name


def test_every_node_path_setting_refuses_a_relative_path():
    from pydantic import ValidationError

    checked = []
    for role, name in _path_settings():
        if name in CONTROLLER_PATHS:
            continue
        try:
            role.model_validate({name: "relative/dir"})
        except ValidationError:
            checked.append(name)
            continue
        # Not a path at all (a package name, a URL path of an HTTP endpoint...) must say so here.
        assert name in {"filebeat_package", "exporters_node_exporter_package", "exporters_dcgm_exporter_package",
                        "gateway_log_max_size", "docker_log_driver"}, f"{name}: accepts a relative path on the node"
    assert {"monitoring_gateway_ca_file", "serve_model_path", "weights_models_dir", "filebeat_request_log",
            "exporters_textfile_dir", "docker_data_root", "preflight_weights_path"} <= set(checked)


# pyinfra_cli patches the standard library (gevent) on import: its loader runs in a process of its own.
_LOAD_AND_VALIDATE = """
import sys
from pyinfra import context
from pyinfra.api import Config, Inventory, State
from pyinfra.api.exceptions import DeployError
from pyinfra_cli.inventory import make_inventory
from roles.settings import validate_inventory
with context.ctx_state.use(State(Inventory.empty(), Config())):
    inventory = make_inventory(sys.argv[1], cwd=sys.argv[2])
try:
    settings = validate_inventory(State(inventory, Config()))
except DeployError as error:
    print(error)
    sys.exit(3)
for name, host in settings.items():
    print(name, host.deployment.deepseek_max_model_len, len(host.gateway.gateway_users))
"""


def _validate_as_the_cli_loads(inventory: Path, cwd: Path) -> tuple[int, str]:
    """Load ``inventory`` the way pyinfra's CLI does (group_data/ beside it) and validate it."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", _LOAD_AND_VALIDATE, str(inventory), str(cwd)], cwd=repo,
                            capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "PYTHONPATH": f"{repo}:{repo / 'node'}"})
    assert result.returncode in (0, 3), result.stderr[-3000:]
    return result.returncode, result.stdout


def _site(tmp_path: Path, inventory: str, group_data: dict[str, str]) -> Path:
    (tmp_path / "group_data").mkdir()
    for group, text in group_data.items():
        (tmp_path / "group_data" / f"{group}.py").write_text(text)
    (tmp_path / "site.py").write_text(inventory)
    return tmp_path / "site.py"


def test_groups_that_disagree_on_a_setting_are_refused_naming_both_and_the_winner(tmp_path):
    site = _site(tmp_path, "gpu_nodes = ['n1', 'n2']\nh200 = ['n1']\n", {
        "all": "serve_port = 8000\n",
        "gpu_nodes": "deepseek_max_model_len = 32768\ngateway_port = 8443\n",
        "h200": "deepseek_max_model_len = 65536\ngateway_port = 8443\n",
    })
    code, message = _validate_as_the_cli_loads(site, tmp_path)
    assert code == 3, message
    assert ("n1: deepseek_max_model_len: the host's groups disagree (gpu_nodes sets 32768, h200 sets 65536); "
            "pyinfra would take 65536 from h200, the group listed last. Set it in one group only, or on the host "
            "itself (host data wins over every group)") in message
    assert "n2:" not in message and "gateway_port" not in message and "serve_port" not in message
    assert "(1 problem)" in message


def test_a_value_on_the_host_itself_settles_a_group_disagreement(tmp_path):
    site = _site(tmp_path, "gpu_nodes = [('n1', {'deepseek_max_model_len': 65536})]\nh200 = ['n1']\n", {
        "gpu_nodes": "deepseek_max_model_len = 32768\n", "h200": "deepseek_max_model_len = 16384\n"})
    assert _validate_as_the_cli_loads(site, tmp_path) == (0, "n1 65536 0\n")


def test_the_shipped_production_inventory_validates_as_the_cli_loads_it():
    repo = Path(__file__).resolve().parents[3]
    code, output = _validate_as_the_cli_loads(repo / "inventories/prod.py", repo)
    assert code == 0, output
    assert len(output.splitlines()) == 3


def test_groups_agreeing_in_substance_are_not_a_conflict():
    from roles.settings import group_conflicts

    assert group_conflicts({"a": {"base_ntp_servers": ["ntp1"], "kernel_sysctls_extra": {"x.y": (1, 2)}},
                            "b": {"base_ntp_servers": ("ntp1",), "kernel_sysctls_extra": {"x.y": [1, 2]}}}, set()) == []
    (problem,) = group_conflicts({"a": {"base_ntp_servers": ["ntp1"]}, "b": {"base_ntp_servers": ["ntp2"]}}, set())
    assert problem[0] == "base_ntp_servers" and "pyinfra would take ['ntp2'] from b" in problem[1]
    assert group_conflicts({"a": {"k": 1}, "b": {"k": 2}}, {"k"}) == []  # set on the host: explicit
