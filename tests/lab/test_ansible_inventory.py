"""An existing Ansible inventory with vaulted variables drives a deploy (inventories/ansible.py).

A YAML inventory written like a site's own (a group, group_vars/ with a file encrypted by
ansible-vault, ansible_connection: docker) points at a lab fleet of its own; the base role
deployed through it must apply the vaulted NTP servers, and a second run changes nothing.
"""

from __future__ import annotations

import json
import os
import sys
from functools import partial
from pathlib import Path

import pytest

from lab.testing import fleet_run

pytestmark = pytest.mark.lab
pytest.importorskip("ansible", reason="ansible-core is not installed (dev/test extra)")

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FLEET = os.environ.get("DEEPSEEK_ANSIBLE_FLEET", "ansinv")
NTP_SERVERS = ["ntp1.vault.example.internal", "ntp2.vault.example.internal"]


run = partial(fleet_run, FLEET, timeout=600)


@pytest.fixture(scope="module")
def node():
    up = run(str(BIN / "python"), "-m", "lab", "up", "1", "--recreate")
    names = [line.split("\t")[0] for line in up.stdout.splitlines() if "\t" in line]
    assert len(names) == 1, up.stdout
    yield names[0]
    run(str(BIN / "python"), "-m", "lab", "down")


@pytest.fixture(scope="module")
def ansible_env(node, tmp_path_factory) -> dict:
    site = tmp_path_factory.mktemp("ansible-site")
    (site / "hosts.yml").write_text(
        "all:\n  children:\n    gpu_nodes:\n      hosts:\n"
        f"        rack1-gpu1:\n          ansible_connection: docker\n          ansible_host: {node}\n"
        "    lab:\n      hosts:\n        rack1-gpu1:\n"
    )
    (site / "group_vars" / "gpu_nodes").mkdir(parents=True)
    (site / "group_vars" / "gpu_nodes" / "vars.yml").write_text("ansible_user: root\nansible_become: false\n")
    vault = site / "group_vars" / "gpu_nodes" / "vault.yml"
    vault.write_text("base_ntp_servers:\n" + "".join(f"  - {server}\n" for server in NTP_SERVERS))
    password = site / "vault-password"
    password.write_text("lab-test-password\n")
    run(str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password), str(vault))
    assert vault.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256"), "ansible-vault did not encrypt the vars file"
    return {"DEEPSEEK_ANSIBLE_INVENTORY": str(site / "hosts.yml"), "ANSIBLE_VAULT_PASSWORD_FILE": str(password)}


def changed(report_text: str) -> list[str]:
    report = json.loads(report_text[report_text.index("{"):])
    assert report["results"]["totals"]["error"] == 0, json.dumps(report["results"], indent=1)[-3000:]
    return [op["name"] for op in report["results"]["operations"] if op["success"]]


def test_vaulted_variable_drives_the_base_role(node, ansible_env):
    first = run(str(BIN / "pyinfra"), "-y", "--json", "inventories/ansible.py", "deploy/base.py", env=ansible_env)
    assert "base: install | Ensure chrony uses the site's NTP servers" in changed(first.stdout)

    sources = run("docker", "exec", node, "cat", "/etc/chrony/sources.d/deepseek.sources").stdout
    servers = [line.split()[1] for line in sources.splitlines() if line.startswith("server ")]
    assert servers == NTP_SERVERS, f"{node}: chrony sources: expected {NTP_SERVERS}, found {servers}"
    pools = run("docker", "exec", node, "grep", "-E", "^pool ", "/etc/chrony/chrony.conf", check=False)
    assert pools.returncode == 1, f"{node}: chrony.conf: expected the pool off, found {pools.stdout!r}"

    second = run(str(BIN / "pyinfra"), "-y", "--json", "inventories/ansible.py", "deploy/base.py", env=ansible_env)
    assert changed(second.stdout) == [], f"{node}: second run through the Ansible inventory changed something"


def test_wrong_vault_password_is_refused_before_any_change(node, ansible_env, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-it\n")
    result = run(str(BIN / "pyinfra"), "-y", "inventories/ansible.py", "deploy/base.py",
                 env={**ansible_env, "ANSIBLE_VAULT_PASSWORD_FILE": str(wrong)}, check=False)
    assert result.returncode != 0
    assert "rack1-gpu1: variables cannot be read: Decryption failed" in result.stdout + result.stderr
