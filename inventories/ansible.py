"""An existing Ansible inventory as the pyinfra inventory (INI or YAML, group_vars/,
host_vars/, vault-encrypted variables):

    DEEPSEEK_ANSIBLE_INVENTORY=/etc/ansible/gpu/hosts.yml \\
    ANSIBLE_VAULT_PASSWORD_FILE=~/.vault-pass \\
    pyinfra inventories/ansible.py deploy/full.py

Groups are Ansible's (``all``/``ungrouped`` excepted, ``-`` spelled ``_``); connection
variables become pyinfra's (ansible_host -> ssh_hostname, ansible_user -> ssh_user,
ansible_port -> ssh_port, ansible_ssh_private_key_file -> ssh_key, ansible_become ->
_sudo, ansible_connection=docker -> @docker/<ansible_host>); other ansible_* keys are
dropped and every other variable is host data, validated like any inventory's (README,
"Variables"). group_data/ applies by group name, Ansible's values win over it.
See deepseek_infra/ansible_inventory.py.
"""

import os

from deepseek_infra.ansible_inventory import AnsibleInventoryError, build_groups, load_ansible_inventory

_path = os.environ.get("DEEPSEEK_ANSIBLE_INVENTORY")
if not _path:
    raise SystemExit("inventories/ansible.py: set DEEPSEEK_ANSIBLE_INVENTORY to an Ansible inventory file or directory")
try:
    _groups = build_groups(load_ansible_inventory(_path, os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE") or None))
except AnsibleInventoryError as _error:
    raise SystemExit(f"inventories/ansible.py: {_path}: {_error}") from None
globals().update(_groups)
