"""Ansible inventories as pyinfra hosts: the mapping (pure) and real inventory layouts
under tests/fixtures/ansible/ (INI and YAML, group_vars/, host_vars/, vaulted variables)."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from deepseek_infra.ansible_inventory import AnsibleHost, AnsibleInventoryError, build_groups, map_host, to_native

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "ansible"
VAULT_PASSWORD = FIXTURES / "vault-password.txt"


def host(name: str = "gpu-a01", groups=("gpu_nodes", "all"), **variables) -> AnsibleHost:
    return AnsibleHost(name, tuple(groups), variables)


# --- mapping -----------------------------------------------------------------------------

def test_ssh_connection_variables_become_pyinfra_ones():
    mapped = map_host(host(
        ansible_host="10.0.0.1", ansible_user="deploy", ansible_port="2222",
        ansible_ssh_private_key_file="~/.ssh/id", ansible_become="yes", ansible_become_user="ops",
        ansible_python_interpreter="/usr/bin/python3", base_apt_cache_valid_s=60,
    ))
    assert mapped.name == "gpu-a01"
    assert mapped.data == {
        "ssh_hostname": "10.0.0.1", "ssh_user": "deploy", "ssh_port": 2222, "ssh_key": "~/.ssh/id",
        "_sudo": True, "_sudo_user": "ops", "base_apt_cache_valid_s": 60,
    }
    assert mapped.dropped == ("ansible_python_interpreter",)
    assert mapped.groups == ("gpu_nodes",)


def test_docker_and_local_connections_pick_the_connector():
    docker = map_host(host("lab-1", ansible_connection="community.docker.docker", ansible_host="ds-node-1",
                           ansible_user="root"))
    assert (docker.name, docker.data, docker.dropped) == ("@docker/ds-node-1", {}, ("ansible_user",))
    assert map_host(host("lab-2", ansible_connection="docker")).name == "@docker/lab-2"
    assert map_host(host("ctl", ansible_connection="local")).name == "@local"


def test_become_off_or_to_root_adds_no_sudo_user():
    assert "_sudo" not in map_host(host(ansible_become="no", ansible_become_user="x")).data
    assert map_host(host(ansible_become=True, ansible_become_user="root")).data == {"_sudo": True}


def test_magic_variables_are_not_host_data():
    mapped = map_host(host(inventory_hostname="gpu-a01", group_names=["gpu_nodes"], groups={},
                           playbook_dir="/x", ansible_version={}, base_ntp_servers=["ntp1"]))
    assert mapped.data == {"base_ntp_servers": ["ntp1"]}
    assert mapped.dropped == ()


@pytest.mark.parametrize(("variables", "message"), [
    ({"ansible_connection": "winrm"}, "gpu-a01: ansible_connection: expected one of ssh, docker, local, found 'winrm'"),
    ({"ansible_become": "maybe"}, "gpu-a01: ansible_become: expected a boolean (yes/no/true/false), found 'maybe'"),
    ({"ansible_become": True, "ansible_become_method": "su"}, "gpu-a01: ansible_become_method: expected sudo, found 'su'"),
    ({"ansible_port": "ssh"}, "gpu-a01: ansible_port: expected a port number, found 'ssh'"),
    ({"ansible_port": 70000}, "gpu-a01: ansible_port: expected a port number 1-65535, found 70000"),
])
def test_what_pyinfra_cannot_honour_is_refused_naming_host_and_field(variables, message):
    with pytest.raises(AnsibleInventoryError) as error:
        map_host(host(**variables))
    assert str(error.value) == message


def test_groups_keep_hosts_and_spell_dashes_as_underscores():
    groups = build_groups([
        host("a", ("gpu-h200", "gpu_nodes", "all"), base_ntp_servers=["n"]),
        host("b", ("gpu_nodes", "all")),
        host("c", ("ungrouped", "all")),
    ])
    assert groups == {
        "gpu_h200": [("a", {"base_ntp_servers": ["n"]})],
        "gpu_nodes": [("a", {"base_ntp_servers": ["n"]}), ("b", {})],
        "ungrouped_hosts": [("c", {})],
    }


def test_two_hosts_on_one_container_are_refused():
    with pytest.raises(AnsibleInventoryError, match="b: ansible_host: maps to pyinfra host '@docker/n1', already used by a"):
        build_groups([host("a", ansible_connection="docker", ansible_host="n1"),
                      host("b", ansible_connection="docker", ansible_host="n1")])


def test_to_native_unwraps_containers():
    assert to_native({"a": (1, 2.5, True, None), "b": {"c": frozenset(["x"])}}) == {
        "a": [1, 2.5, True, None], "b": {"c": ["x"]}}


# --- real inventories through ansible-core -----------------------------------------------

if importlib.util.find_spec("ansible") is None:  # found, not imported (see _LOAD_IN_CHILD)
    pytest.skip("ansible-core is not installed (dev/test extra)", allow_module_level=True)


# ansible-core replaces sys.intern process-wide on import, and torch._dynamo (the engine
# server tests) then refuses to load in that process: each load runs in its own process,
# as it does under pyinfra.
_LOAD_IN_CHILD = """
import pickle, sys
from deepseek_infra.ansible_inventory import AnsibleInventoryError, load_ansible_inventory
try:
    result = load_ansible_inventory(sys.argv[1], sys.argv[2] or None)
except AnsibleInventoryError as error:
    result = error
sys.stdout.buffer.write(pickle.dumps(result))
"""


def load(layout: str, password: Path | None = VAULT_PASSWORD):
    child = subprocess.run([sys.executable, "-c", _LOAD_IN_CHILD, str(FIXTURES / layout), str(password or "")],
                           capture_output=True, check=True, cwd=REPO)
    # Unpickling a tagged Ansible value would import ansible here: the loader returns plain values.
    assert b"ansible._internal" not in child.stdout and b"ansible.module_utils" not in child.stdout
    result = pickle.loads(child.stdout)
    if isinstance(result, AnsibleInventoryError):
        raise result
    return {h.name: h for h in result}


def test_ini_inventory_with_group_and_host_vars():
    hosts = load("ini/hosts.ini", password=None)
    assert set(hosts) == {"gpu-a01", "gpu-a02", "build-01"}
    a01, a02 = map_host(hosts["gpu-a01"]), map_host(hosts["gpu-a02"])
    assert a01.data == {"ssh_hostname": "10.20.0.11", "ssh_user": "deploy", "ssh_key": "~/.ssh/gpu_deploy",
                        "_sudo": True, "base_apt_cache_valid_s": 900}
    assert set(a01.groups) == {"gpu_nodes", "ib_fabric", "dc1"}
    assert a01.dropped == ("ansible_python_interpreter",)
    assert a02.data["ssh_port"] == 2222 and a02.data["_sudo_user"] == "deepseek-admin"
    assert a02.data["base_extra_packages"] == ["ipmitool"]
    assert map_host(hosts["build-01"]).name == "@local"


def test_yaml_inventory_with_vaulted_file_and_vaulted_string():
    hosts = load("yaml/hosts.yml")
    b01, b02 = map_host(hosts["gpu-b01"]), map_host(hosts["gpu-b02"])
    # group_vars/gpu_nodes/vault.yml (encrypted file) via a Jinja reference
    assert b02.data["base_ntp_servers"] == ["ntp1.dc2.example.internal", "ntp2.dc2.example.internal"]
    # host_vars/gpu-b01.yml: an inline !vault string overrides for one host
    assert b01.data["base_ntp_servers"] == ["ntp-b01.dc2.example.internal"]
    assert (b01.data["ssh_port"], b01.data["ssh_user"], b01.data["_sudo"]) == (2201, "ops", True)
    assert set(b01.groups) == {"gpu-h200", "gpu_nodes"}
    assert map_host(hosts["lab-1"]).name == "@docker/ds-node-1"


def test_vaulted_inventory_without_the_password_is_refused_naming_the_host(tmp_path):
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    with pytest.raises(AnsibleInventoryError, match=r"gpu-b0\d: variables cannot be read: Decryption failed"):
        load("yaml/hosts.yml", password=wrong)


def test_missing_inventory_is_refused(tmp_path):
    with pytest.raises(AnsibleInventoryError, match="no hosts found"):
        load(str(tmp_path / "nothing.yml"), password=None)


def test_inventory_file_feeds_pyinfra():
    """inventories/ansible.py through pyinfra's own loader: hosts, groups and data."""
    env = {**os.environ, "DEEPSEEK_ANSIBLE_INVENTORY": str(FIXTURES / "yaml" / "hosts.yml"),
           "ANSIBLE_VAULT_PASSWORD_FILE": str(VAULT_PASSWORD)}
    result = subprocess.run([str(Path(sys.executable).parent / "pyinfra"), "--json", "inventories/ansible.py", "debug-inventory"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    hosts = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert set(hosts) == {"gpu-b01", "gpu-b02", "@docker/ds-node-1"}
    b01 = hosts["gpu-b01"]
    assert {"gpu_nodes", "gpu_h200", "ansible"} <= set(b01["groups"])
    assert b01["data"]["base_ntp_servers"] == ["ntp-b01.dc2.example.internal"]
    assert b01["data"]["ssh_hostname"] == "gpu-b01.dc2.example.internal"
    # group_data/all.py applies underneath the Ansible values
    assert b01["data"]["deepseek_model"]
    assert hosts["@docker/ds-node-1"]["data"]["docker_identifier"] == "ds-node-1"


def test_inventory_file_without_path_says_what_to_set():
    env = {key: value for key, value in os.environ.items() if key != "DEEPSEEK_ANSIBLE_INVENTORY"}
    result = subprocess.run([str(Path(sys.executable).parent / "pyinfra"), "inventories/ansible.py", "debug-inventory"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "set DEEPSEEK_ANSIBLE_INVENTORY" in result.stdout + result.stderr
