"""kvm (optional): libvirt, and GPU guests pinned to the host's NUMA layout.

For hosts in group ``kvm_hosts`` or with ``kvm_guests`` set. Each guest is defined from
data (vCPUs, memory, GPUs passed through by PCI address, hugepage backing) and placed with
``deepseek_infra.pinning.plan_vcpu_pinning``: vCPUs 1:1 on one NUMA node (its GPUs' node when it
fits), emulator threads on that node's reserved CPUs, memory bound to the node. The
placement is applied with virsh (``--config``, ``--live`` when running), changing only
what the domain does not have already.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
