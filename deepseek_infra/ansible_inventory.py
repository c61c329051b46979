"""Existing Ansible inventories as pyinfra hosts, groups and host data.

``load_ansible_inventory(path, vault_password_file)`` reads an inventory the way Ansible
does (ansible-core's InventoryManager/VariableManager: INI or YAML, group_vars/,
host_vars/, vault-encrypted files and ``!vault`` strings, Jinja references between
variables); ``map_host()`` turns one host's variables into a pyinfra host:

    ansible_host                   -> ssh_hostname
    ansible_user                   -> ssh_user
    ansible_port                   -> ssh_port
    ansible_ssh_private_key_file   -> ssh_key
    ansible_become / become_user   -> _sudo / _sudo_user
    ansible_connection=docker      -> @docker/<ansible_host or name>
    ansible_connection=local       -> @local

Other ``ansible_*`` keys and Ansible's magic variables are dropped; every other variable
is passed through as host data, so the collection's validation names a bad key or value
(host and field) before any host is changed. A connection or become method pyinfra cannot
honour is refused here, naming host and field.

The mapping is pure (no pyinfra import); ansible-core is imported only to load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Ansible's own groups: every host is in them; pyinfra has no use for them.
IMPLICIT_GROUPS = frozenset({"all", "ungrouped"})
# Variables Ansible adds to every host itself (magic variables); not inventory data.
MAGIC_VARIABLES = frozenset({
    "group_names", "groups", "hostvars", "inventory_dir", "inventory_file", "inventory_hostname",
    "inventory_hostname_short", "omit", "playbook_dir", "play_hosts", "role_name", "role_names",
    "role_path", "role_uuid", "environment",
    "ansible_config_file", "ansible_facts", "ansible_playbook_python", "ansible_version",
})
SSH_CONNECTIONS = frozenset({"ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh",
                             "ansible.builtin.paramiko_ssh"})
DOCKER_CONNECTIONS = frozenset({"docker", "community.docker.docker"})
LOCAL_CONNECTIONS = frozenset({"local", "ansible.builtin.local"})
# ansible variable -> pyinfra host data key, for SSH hosts.
SSH_KEYS = {
    "ansible_host": "ssh_hostname",
    "ansible_ssh_host": "ssh_hostname",
    "ansible_user": "ssh_user",
    "ansible_ssh_user": "ssh_user",
    "ansible_port": "ssh_port",
    "ansible_ssh_port": "ssh_port",
    "ansible_ssh_private_key_file": "ssh_key",
    "ansible_private_key_file": "ssh_key",
}
_TRUE = {"yes", "on", "1", "true", "y", "t"}
_FALSE = {"no", "off", "0", "false", "n", "f", ""}


class AnsibleInventoryError(ValueError):
    """An inventory entry pyinfra cannot honour; the message names host and field."""


@dataclass(frozen=True, slots=True)
class AnsibleHost:
    """One host as Ansible sees it: name, groups (implicit ones excluded), variables."""

    name: str
    groups: tuple[str, ...]
    variables: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PyinfraHost:
    name: str  # "gpu-a01" (SSH), "@docker/<container>", "@local"
    data: dict[str, Any]
    groups: tuple[str, ...]
    dropped: tuple[str, ...] = field(default=())  # ansible_* keys that have no pyinfra meaning


def to_native(value: Any) -> Any:
    """Plain Python values from Ansible's tagged/lazy containers (str, int, list, dict...).

    >>> to_native({"a": (1, "x")})
    {'a': [1, 'x']}
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): to_native(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_native(item) for item in value]
    return str(value)  # vault strings and other str-like values


def as_bool(host: str, key: str, value: Any) -> bool:
    """Ansible's boolean spelling (yes/no/true/1...) or an error naming host and field."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise AnsibleInventoryError(f"{host}: {key}: expected a boolean (yes/no/true/false), found {value!r}")


def _as_port(host: str, key: str, value: Any) -> int:
    try:
        port = int(str(value))
    except ValueError:
        raise AnsibleInventoryError(f"{host}: {key}: expected a port number, found {value!r}") from None
    if not 0 < port < 65536:
        raise AnsibleInventoryError(f"{host}: {key}: expected a port number 1-65535, found {value!r}")
    return port


def map_host(host: AnsibleHost) -> PyinfraHost:
    """Translate one Ansible host into a pyinfra host name and host data."""
    variables = {key: value for key, value in host.variables.items() if key not in MAGIC_VARIABLES}
    connection = str(variables.get("ansible_connection") or "ssh")
    data: dict[str, Any] = {key: value for key, value in variables.items() if not key.startswith("ansible_")}
    used = {"ansible_connection"}

    if connection in DOCKER_CONNECTIONS:
        target = variables.get("ansible_host") or host.name
        name = f"@docker/{target}"
        used.add("ansible_host")
    elif connection in LOCAL_CONNECTIONS:
        name = "@local"
    elif connection in SSH_CONNECTIONS:
        name = host.name
        for ansible_key, pyinfra_key in SSH_KEYS.items():
            if variables.get(ansible_key) is None:
                continue
            value = variables[ansible_key]
            data[pyinfra_key] = _as_port(host.name, ansible_key, value) if pyinfra_key == "ssh_port" else str(value)
            used.add(ansible_key)
    else:
        raise AnsibleInventoryError(
            f"{host.name}: ansible_connection: expected one of ssh, docker, local, found {connection!r}"
        )

    become = variables.get("ansible_become")
    if become is not None:
        used.add("ansible_become")
        if as_bool(host.name, "ansible_become", become):
            method = str(variables.get("ansible_become_method") or "sudo")
            if method not in ("sudo", "ansible.builtin.sudo"):
                raise AnsibleInventoryError(
                    f"{host.name}: ansible_become_method: expected sudo, found {method!r}"
                )
            data["_sudo"] = True
            if variables.get("ansible_become_user") not in (None, "", "root"):
                data["_sudo_user"] = str(variables["ansible_become_user"])
        used.update({"ansible_become_method", "ansible_become_user"})

    dropped = tuple(sorted(key for key in variables if key.startswith("ansible_") and key not in used))
    groups = tuple(group for group in host.groups if group not in IMPLICIT_GROUPS)
    return PyinfraHost(name, data, groups, dropped)


def build_groups(hosts: list[AnsibleHost]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """pyinfra inventory groups: group name -> [(host name, host data)], inventory order.

    Every host appears in every group Ansible puts it in (parents included); hosts in no
    group of their own are in ``ungrouped_hosts`` so that the inventory lists them.
    """
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    seen: dict[str, str] = {}
    for ansible_host in hosts:
        mapped = map_host(ansible_host)
        if mapped.name in seen:
            raise AnsibleInventoryError(
                f"{ansible_host.name}: ansible_host: maps to pyinfra host {mapped.name!r}, "
                f"already used by {seen[mapped.name]}"
            )
        seen[mapped.name] = ansible_host.name
        for group in mapped.groups or ("ungrouped_hosts",):
            groups.setdefault(_group_name(group), []).append((mapped.name, mapped.data))
    return groups


def _group_name(group: str) -> str:
    return group.replace("-", "_")


def load_ansible_inventory(path: str, vault_password_file: str | None = None) -> list[AnsibleHost]:
    """Read an Ansible inventory (file or directory) with ansible-core; variables rendered.

    Vault-encrypted variables (files and ``!vault`` strings) need ``vault_password_file``
    (a file holding the password, or an executable that prints it, as with Ansible).
    """
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultSecretsContext, get_file_vault_secret
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    secrets = []
    if vault_password_file:
        secret = get_file_vault_secret(filename=vault_password_file, loader=loader)
        secret.load()
        secrets = [("default", secret)]
    loader.set_vault_secrets(secrets)
    # ansible-core 2.19 decrypts ``!vault`` strings through a process-wide context.
    context = VaultSecretsContext.current(optional=True)
    if context is None:
        VaultSecretsContext.initialize(VaultSecretsContext(secrets))
    else:
        context.secrets[:] = secrets
    try:
        inventory = InventoryManager(loader=loader, sources=[path])
    except AnsibleError as error:
        raise AnsibleInventoryError(f"{path}: {error.message}") from None
    if not inventory.get_hosts():
        raise AnsibleInventoryError(f"{path}: no hosts found (not an Ansible inventory, or an empty one)")
    variable_manager = VariableManager(loader=loader, inventory=inventory)
    hosts = []
    for host in inventory.get_hosts():
        try:
            raw = variable_manager.get_vars(host=host, include_hostvars=False)
        except AnsibleError as error:  # a vaulted vars file that cannot be decrypted, bad YAML
            raise AnsibleInventoryError(f"{host.name}: variables cannot be read: {error.message}") from None
        templar = Templar(loader=loader, variables=raw)
        variables = {}
        for key, value in raw.items():
            if key in MAGIC_VARIABLES:
                continue
            try:
                variables[str(key)] = to_native(templar.template(value))
            except AnsibleError as error:
                raise AnsibleInventoryError(f"{host.name}: {key}: cannot be read: {error.message}") from None
        groups = tuple(str(group.name) for group in host.get_groups())
        # Plain str throughout: Ansible's tagged strings must not leak into host data.
        hosts.append(AnsibleHost(str(host.name), groups, variables))
    return hosts
