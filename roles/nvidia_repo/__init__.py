"""nvidia_repo: the package source every NVIDIA role installs from.

One setting for the stack (``nvidia_repo_source``): NVIDIA's CUDA repository for the node's
distribution (key fetched and checked against its fingerprint), an internal mirror with
its key (air-gapped sites, the lab), or an offline bundle of .debs indexed on the node.
Each writes one deb822 source, ``/etc/apt/sources.list.d/deepseek-nvidia.sources``.
Pinning and holds belong to the roles that install packages (deepseek_infra.nvidia_repo).
"""

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
