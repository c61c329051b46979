"""cuda: the CUDA toolkit, cuDNN and NCCL at exact, held versions, and CUDA on the paths.

Gated first: ``deepseek_infra.compat.check_stack`` must accept the toolkit, cuDNN and NCCL with
the driver the nvidia_driver role pins and with the driver dpkg shows installed (when it
differs); otherwise the run stops before any host changes, naming both versions. Then:
package source (roles/nvidia_repo), apt pins and holds, one apt transaction to the wanted
set (a version change unholds, installs the new toolkit, removes the old one, holds
again), ``/etc/profile.d/cuda.sh``, ``/etc/ld.so.conf.d/cuda.conf`` (ldconfig only when
it changed) and ``/etc/deepseek/cuda.json`` (what was pinned, for the verify suite).
"""

from __future__ import annotations

import json
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.facts.server import Arch
from pyinfra.operations import files, server

from deepseek_infra import cuda
from deepseek_node import paths
from deepseek_infra.compat import check_stack
from deepseek_infra.facts.nvidia import DpkgPackages
from deepseek_infra.nvidia_repo import preferences_path, render_preferences
from deepseek_infra.operations import nvidia, sync
from deepseek_infra.versions import DriverVersion, PackageVersion
from roles.nvidia_repo import tasks as nvidia_repo
from roles.cuda.defaults import CudaDefaults
from roles.nvidia_driver.defaults import NvidiaDriverDefaults
from roles.nvidia_repo.defaults import NvidiaRepoDefaults

RECORD_FILE = f"{paths.CONFIG_DIR}/cuda.json"
DRIVER_PACKAGES = ("nvidia-smi", "libcuda1")


def stack_problems(config: CudaDefaults, driver: NvidiaDriverDefaults, installed: dict) -> list[str]:
    """check_stack of the wanted CUDA stack against the pinned and the installed driver."""
    problems: list[str] = []
    for label, version in cuda.drivers_to_check(driver.nvidia_driver_version, cuda.installed_driver(installed)):
        problems += [f"{label} driver: {problem}" for problem in check_stack(
            driver=version, cuda=config.cuda_version, cudnn=config.cuda_cudnn_version,
            nccl=config.cuda_nccl_version, minor_version_compat=driver.nvidia_driver_minor_version_compat,
        )]
    return list(dict.fromkeys(problems))


def wanted_packages(config: CudaDefaults) -> dict[str, PackageVersion]:
    return cuda.target_packages(config.cuda_version, config.cuda_cudnn_version, config.cuda_nccl_version,
                                dev=config.cuda_dev_packages, revision=config.cuda_deb_revision)


def record(config: CudaDefaults, wanted: dict[str, PackageVersion], driver: DriverVersion) -> str:
    return json.dumps({"settings": config.model_dump(mode="json"),
                       "packages": {name: str(version) for name, version in wanted.items()},
                       "checked_with_driver": str(driver)}, indent=2, sort_keys=True) + "\n"


@deploy("cuda: install")
def install(config: CudaDefaults, driver: NvidiaDriverDefaults, repo: NvidiaRepoDefaults) -> None:
    installed = host.get_fact(DpkgPackages, patterns=cuda.DPKG_PATTERNS + DRIVER_PACKAGES)
    problems = stack_problems(config, driver, installed)
    if problems:
        raise DeployError(f"{host.name}: cuda: refused before any change: " + " ".join(problems))
    wanted = wanted_packages(config)
    machine = host.get_fact(Arch)
    release = config.cuda_version
    if release is not None and machine not in cuda.TARGET_DIRS:
        raise DeployError(f"{host.name}: cuda_version: no CUDA target directory for architecture {machine!r}")

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
        packages=wanted, managed=cuda.MANAGED.pattern, patterns=cuda.DPKG_PATTERNS, what="CUDA",
    )
    if release is None:
        files.file(name=f"Ensure no {cuda.PROFILE_FILE} is left over", path=cuda.PROFILE_FILE, present=False)
        ld_conf = files.file(name=f"Ensure no {cuda.LDCONFIG_FILE} is left over", path=cuda.LDCONFIG_FILE,
                             present=False)
    else:
        sync.file_synced(name=f"Ensure {cuda.PROFILE_FILE} puts CUDA {release} on PATH",
                         src=StringIO(cuda.render_profile(release)), dest=cuda.PROFILE_FILE,
                         user="root", group="root", mode="0644")
        ld_conf = sync.file_synced(name=f"Ensure {cuda.LDCONFIG_FILE} lists CUDA {release}'s libraries",
                                   src=StringIO(cuda.render_ldconfig(release, machine)), dest=cuda.LDCONFIG_FILE,
                                   user="root", group="root", mode="0644")
    server.shell(name="Refresh the dynamic linker cache after the CUDA library path changed",
                 commands=["ldconfig"], _if=ld_conf.did_change)
    sync.file_synced(name=f"Ensure {RECORD_FILE} records the CUDA stack's pins",
                     src=StringIO(record(config, wanted, driver.nvidia_driver_version)), dest=RECORD_FILE,
                     user="root", group="root", mode="0644")