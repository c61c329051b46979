"""cuda: the CUDA toolkit, cuDNN and NCCL at exact, held versions, and CUDA on the paths.

Gated first: ``deepseek_infra.compat.check_stack`` must accept the toolkit, cuDNN and NCCL with
the driver the nvidia_driver role pins and with the driver dpkg shows installed (when it
differs); otherwise the run stops before any host changes, naming both versions. Then:
package source (roles/nvidia_repo), apt pins and holds, one apt transaction to the wanted
set (a version change unholds, installs the new toolkit, removes the old one, holds
again; every exact version is first looked up in the host's repositories, so a package
the distribution's repository lacks, such as libnccl2 on Debian, stops the host naming
package, version and distribution), ``/etc/profile.d/cuda.sh`` and
``/etc/deepseek/cuda.json`` (what was pinned, for the verify suite). The dynamic linker
path comes from the toolkit's own packages (``000_cuda.conf``, ``988_cuda-<major>.conf``);
a ``/etc/ld.so.conf.d/cuda.conf`` an earlier version of this role wrote is removed.

Forward compatibility (``cuda_forward_compat``): a CUDA newer than the pinned driver's is
accepted on data-center GPUs and driver branches NVIDIA documents it for, and
``cuda-compat-<major>-<minor>`` is installed while the pinned driver is older than the
toolkit's own (removed again once it is not).
"""

from __future__ import annotations

import json
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.server import Arch
from pyinfra.operations import files, server

from deepseek_infra import cuda
from deepseek_node import paths
from deepseek_infra.compat import check_driver_cuda, check_stack, needs_forward_compat
from deepseek_infra.facts import host as host_facts
from deepseek_infra.gpus import gpu_keys
from deepseek_infra.facts.nvidia import DpkgPackages
from deepseek_infra.nvidia_repo import UnsupportedPlatformError, distro_dir, preferences_path, render_preferences
from deepseek_infra.operations import nvidia, sync
from deepseek_infra.versions import DriverVersion, PackageVersion
from roles.nvidia_repo import tasks as nvidia_repo
from roles.cuda.defaults import CudaDefaults
from roles.nvidia_driver.defaults import NvidiaDriverDefaults
from roles.nvidia_repo.defaults import NvidiaRepoDefaults

RECORD_FILE = f"{paths.CONFIG_DIR}/cuda.json"


def stack_problems(config: CudaDefaults, driver: NvidiaDriverDefaults, installed: dict,
                   gpus: tuple[str | None, ...] | None = None) -> list[str]:
    """check_stack of the wanted CUDA stack against the pinned and the installed driver; each
    problem ends with the settings that fix it (deepseek_infra.compat).

    + gpus: the host's GPUs as deepseek_infra.gpus keys (None for an unknown model), read
      only with ``cuda_forward_compat`` (forward compatibility is for data-center GPUs)
    """
    pinned = driver.nvidia_driver_version
    problems: list[str] = []
    if config.cuda_version is not None:
        for label, version in cuda.drivers_to_check(pinned, cuda.installed_driver(installed)):
            # An installed driver other than the pin is replaced only by the nvidia_driver role.
            replaced = "" if version == pinned else f" (deploy/nvidia_driver.py replaces it with {pinned})"
            where = f"{label} driver{replaced}"
            problems += [f"{where}: {problem}" for problem in check_driver_cuda(
                version, config.cuda_version, minor_version_compat=driver.nvidia_driver_minor_version_compat,
                forward_compat=config.cuda_forward_compat, gpus=gpus)]
    # cuDNN and NCCL against the toolkit: the driver plays no part, so once.
    return problems + check_stack(cuda=config.cuda_version, cudnn=config.cuda_cudnn_version,
                                  nccl=config.cuda_nccl_version)


def wanted_packages(config: CudaDefaults, driver: NvidiaDriverDefaults | None = None) -> dict[str, PackageVersion]:
    """The packages to pin; with ``cuda_forward_compat`` also cuda-compat-X-Y while the pinned
    driver (``driver``) is older than the toolkit needs."""
    compat = bool(config.cuda_forward_compat and driver is not None and config.cuda_version is not None
                  and needs_forward_compat(driver.nvidia_driver_version, config.cuda_version,
                                           minor_version_compat=driver.nvidia_driver_minor_version_compat))
    return cuda.target_packages(config.cuda_version, config.cuda_cudnn_version, config.cuda_nccl_version,
                                dev=config.cuda_dev_packages, revision=config.cuda_deb_revision,
                                forward_compat=compat)


def record(config: CudaDefaults, wanted: dict[str, PackageVersion], driver: DriverVersion) -> str:
    return json.dumps({"settings": config.model_dump(mode="json"),
                       "packages": {name: str(version) for name, version in wanted.items()},
                       "checked_with_driver": str(driver)}, indent=2, sort_keys=True) + "\n"


@deploy("cuda: install")
def install(config: CudaDefaults, driver: NvidiaDriverDefaults, repo: NvidiaRepoDefaults) -> None:
    installed = host.get_fact(DpkgPackages, patterns=cuda.DPKG_PATTERNS + cuda.DRIVER_PACKAGE_PATTERNS)
    hardware = host_facts.hardware(host)
    gpus = gpu_keys(hardware.pci_gpus) if config.cuda_forward_compat else None
    problems = stack_problems(config, driver, installed, gpus)
    if problems:
        raise DeployError(f"{host.name}: cuda: refused before any change: " + " ".join(problems))
    wanted = wanted_packages(config, driver)
    machine = host.get_fact(Arch)
    release = config.cuda_version
    if release is not None and machine not in cuda.TARGET_DIRS:
        raise DeployError(f"{host.name}: cuda_version: no CUDA target directory for architecture {machine!r}")
    try:
        distro = distro_dir(hardware.os_release.id, hardware.os_release.version_id)
    except UnsupportedPlatformError as error:
        raise DeployError(f"{host.name}: cuda: refused before any change: {error}") from None
    if config.cuda_nccl_version is not None and (why := cuda.nccl_unconfirmed(distro)):
        logger.warning(f"{host.name}: cuda_nccl_version: libnccl2={config.cuda_nccl_version} on {distro}: {why}; "
                       "the exact version is looked up in the repository before the install")

    nvidia_repo.configure(repo)
    pins = preferences_path("cuda")
    if wanted:
        sync.file_synced(name=f"Ensure apt pins the CUDA stack ({', '.join(f'{n}={v}' for n, v in sorted(wanted.items()))})",
                         src=StringIO(render_preferences(wanted, owner="cuda")), dest=pins,
                         user="root", group="root", mode="0644")
    else:
        files.file(name="Ensure no CUDA pins are left over (no CUDA stack wanted)", path=pins, present=False)
    nvidia.pinned_packages(
        name=f"Ensure the CUDA stack is installed at its pins and held ({len(wanted)} packages)",
        packages=wanted, managed=cuda.MANAGED.pattern, patterns=cuda.DPKG_PATTERNS, what="CUDA", where=distro,
    )
    if release is None:
        files.file(name=f"Ensure no {cuda.PROFILE_FILE} is left over", path=cuda.PROFILE_FILE, present=False)
    else:
        sync.file_synced(name=f"Ensure {cuda.PROFILE_FILE} puts CUDA {release} on PATH",
                         src=StringIO(cuda.render_profile(release)), dest=cuda.PROFILE_FILE,
                         user="root", group="root", mode="0644")
    # The toolkit's packages ship 000_cuda.conf and 988_cuda-<major>.conf: a cuda.conf of
    # an earlier run of this role only duplicated them.
    ld_conf = files.file(name=f"Ensure no {cuda.LEGACY_LDCONFIG_FILE} duplicates the toolkit packages' "
                              "ld.so.conf.d files", path=cuda.LEGACY_LDCONFIG_FILE, present=False)
    server.shell(name="Refresh the dynamic linker cache after the CUDA library path changed",
                 commands=["ldconfig"], _if=ld_conf.did_change)
    sync.file_synced(name=f"Ensure {RECORD_FILE} records the CUDA stack's pins",
                     src=StringIO(record(config, wanted, driver.nvidia_driver_version)), dest=RECORD_FILE,
                     user="root", group="root", mode="0644")