"""nvidia_driver: the NVIDIA driver at an exact, held version, and what it needs.

Gated first: ``deepseek_infra.compat.check_stack`` must accept the driver with the fabric
manager (NVSwitch hosts), the CUDA/cuDNN/NCCL versions configured for the cuda role and
any toolkit already installed, and nvidia-peermem's InfiniBand stack; otherwise the run
stops before any host changes. Then: package source (roles/nvidia_repo), apt pins and
holds, one apt transaction to the wanted set (a branch or flavour switch unholds,
removes what conflicts, installs, holds again), kernel headers for DKMS (not on a
container: reported, never faked), nvidia-persistenced, fabric manager exactly at the
driver's version when lspci shows NVSwitches, nvidia-peermem when InfiniBand is present,
and the reboot-required state when the loaded kernel module no longer matches.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
