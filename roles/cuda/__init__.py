"""cuda: the CUDA toolkit, cuDNN and NCCL at exact, held versions, and CUDA on the paths.

Gated first: ``deepseek_infra.compat.check_stack`` must accept the toolkit, cuDNN and NCCL with
the driver the nvidia_driver role pins and with the driver dpkg shows installed (when it
differs); otherwise the run stops before any host changes, naming both versions. Then:
package source (roles/nvidia_repo), apt pins and holds, one apt transaction to the wanted
set (a version change unholds, installs the new toolkit, removes the old one, holds
again), ``/etc/profile.d/cuda.sh`` and ``/etc/deepseek/cuda.json`` (what was pinned, for
the verify suite). The linker path is the toolkit packages' own ``000_cuda.conf`` and
``988_cuda-<major>.conf``; a ``cuda.conf`` of earlier runs is removed. With
``cuda_forward_compat``, ``cuda-compat-<major>-<minor>`` carries a newer CUDA on an older
data-center driver.
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
