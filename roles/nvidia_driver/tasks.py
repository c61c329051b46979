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

from __future__ import annotations

from io import StringIO

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, files, server, systemd

from deepseek_infra.compat import check_stack
from deepseek_infra.facts import host as host_facts
from deepseek_infra.gpus import gpu_keys
from deepseek_infra.hardware import PciDevice
from deepseek_infra.facts.nvidia import PEERMEM_CONF, NvidiaDriverState
from deepseek_infra.nvidia_driver import plan_packages, reboot_reasons
from deepseek_infra.nvidia_packages import DriverSet, UnknownDistroError, driver_set, source_pin
from deepseek_infra.nvidia_repo import UnsupportedPlatformError, distro_dir, preferences_path, render_preferences
from deepseek_infra.operations import nvidia, reboot, sync
from roles.nvidia_repo import tasks as nvidia_repo
from roles.cuda.defaults import CudaDefaults
from roles.nvidia_driver.defaults import NvidiaDriverDefaults
from roles.nvidia_repo.defaults import NvidiaRepoDefaults

ROLE = "nvidia-driver"  # name of its reboot-required state
NVSWITCH_PCI_CLASS = PciDevice.NVSWITCH_CLASS  # "Bridge" class of NVSwitch functions in lspci
IB_GROUP = "ib_fabric"
MOK_KEY = "/var/lib/dkms/mok.pub"  # DKMS's module-signing key (dkms >= 3 makes it on first build)


def is_nvlink5(config: NvidiaDriverDefaults, state: dict) -> bool:
    """``nvidia_driver_nvlink5``, or when unset whether an HCA's VPD names SW_MNG (the fact)."""
    return bool(state.get("nvlink5_devices")) if config.nvidia_driver_nvlink5 is None else config.nvidia_driver_nvlink5


def has_switches(nvswitch_on_pci: bool, nvlink5: bool) -> bool:
    """Whether the host needs the fabric manager: NVSwitch functions on PCI, or an NVLink5
    system, whose switch trays are managed through the HCAs (NVIDIA's driver container
    starts the fabric manager with nvlsm there)."""
    return nvswitch_on_pci or nvlink5


def wanted_set(config: NvidiaDriverDefaults, distro: str, nvswitch: bool, nvlink5: bool = False) -> DriverSet:
    """The driver's package set for this host (``deepseek_infra.nvidia_packages.driver_set``).

    + nvlink5: the host is an NVLink5 system (``is_nvlink5``)
    """
    fm = (config.nvidia_driver_fabricmanager_version or config.nvidia_driver_version) if nvswitch else None
    return driver_set(distro, config.nvidia_driver_version, config.nvidia_driver_kernel_modules,
                      desktop=config.nvidia_driver_desktop, fabricmanager=fm,
                      nvlink5=nvlink5, revision_override=config.nvidia_driver_deb_revision)


def preferences(wanted: DriverSet) -> str:
    """The driver's apt preferences: every named package at its exact version, and every
    package of NVIDIA's driver sources (the dependencies nobody names) at the release."""
    return (render_preferences(dict(wanted.packages), owner="nvidia_driver") + "\n"
            + source_pin(wanted.driver, owner="nvidia_driver"))


def headers_packages(release: str | None, family: str) -> list[str]:
    """Kernel headers for DKMS: the running kernel's, and the flavour's metapackage, so the
    headers of the next kernel arrive with it and DKMS rebuilds the module at its install.

    >>> headers_packages("6.1.0-28-amd64", "debian"), headers_packages("5.15.0-91-generic", "ubuntu")
    (['linux-headers-6.1.0-28-amd64', 'linux-headers-amd64', 'dkms'], ['linux-headers-5.15.0-91-generic', 'linux-headers-generic', 'dkms'])
    """
    if not release:
        return ["dkms"]
    # Debian: 6.1.0-28-cloud-amd64 -> cloud-amd64; Ubuntu: 5.15.0-91-generic -> generic.
    parts = release.split("-")
    flavour = "-".join(parts[2:]) or ("generic" if family == "ubuntu" else "")
    meta = [f"linux-headers-{flavour}"] if flavour and not flavour[0].isdigit() else []
    return [f"linux-headers-{release}", *meta, "dkms"]


def secure_boot_reasons(state: dict, in_container: bool) -> list[str]:
    """What a Secure Boot host needs before a DKMS-built module can load (empty: nothing)."""
    if in_container or not state["secure_boot"] or state["dkms_key_enrolled"]:
        return []
    key = (f"DKMS's signing key {MOK_KEY} is not enrolled" if state["dkms_key"]
           else f"DKMS has no signing key yet ({MOK_KEY} is made by the first module build)")
    return [f"Secure Boot is on and {key}: the kernel refuses the unsigned NVIDIA modules. "
            f"Run `mokutil --import {MOK_KEY}` (it asks for a one-time password), reboot, and "
            "confirm 'Enroll MOK' at the console with that password"]


def stack_problems(config: NvidiaDriverDefaults, cuda: CudaDefaults, nvswitch: bool, peermem: bool,
                   state: dict, gpus: tuple[str | None, ...] | None = None) -> list[str]:
    """check_stack for the wanted driver with everything it must work with on this host; each
    problem ends with the settings that fix it (deepseek_infra.compat).

    + gpus: the host's GPUs (deepseek_infra.gpus keys), read with ``cuda_forward_compat``: the
      driver is then refused only where the cuda role would refuse it too
    """
    fm = (config.nvidia_driver_fabricmanager_version or config.nvidia_driver_version) if nvswitch else None
    problems = check_stack(
        driver=config.nvidia_driver_version, cuda=cuda.cuda_version, cudnn=cuda.cuda_cudnn_version,
        nccl=cuda.cuda_nccl_version, fabricmanager=fm, nvswitch=nvswitch,
        infiniband=state["ib_stack"], peermem=peermem,
        minor_version_compat=config.nvidia_driver_minor_version_compat,
        peer_memory=state["peer_memory"] or state["ib_stack"] in ("mlnx_ofed", "doca_ofed"),
        forward_compat=cuda.cuda_forward_compat, gpus=gpus,
    )
    # A toolkit other than cuda_version stays until the cuda role replaces it: say so.
    replaced = (f"deploy/cuda.py replaces it with cuda_version {cuda.cuda_version}" if cuda.cuda_version
                else "deploy/cuda.py removes it: cuda_version is None")
    for toolkit in state["toolkits"]:
        if toolkit == cuda.cuda_version:  # checked above already
            continue
        problems += [f"installed toolkit ({replaced}): {p}" for p in check_stack(
            driver=config.nvidia_driver_version, cuda=toolkit,
            minor_version_compat=config.nvidia_driver_minor_version_compat,
            forward_compat=cuda.cuda_forward_compat, gpus=gpus)]
    return problems


@deploy("nvidia_driver: install")
def install(config: NvidiaDriverDefaults, repo: NvidiaRepoDefaults, cuda: CudaDefaults,
            ib_stack_in_this_run: bool = False) -> None:
    """``ib_stack_in_this_run``: the infiniband role installs rdma-core earlier in this
    deploy (deploy/full.py), so nvidia-peermem is configured on the first run already."""
    hardware = host_facts.hardware(host)
    state = host.get_fact(NvidiaDriverState)
    if ib_stack_in_this_run and state["ib_stack"] is None:
        state = {**state, "ib_stack": "rdma-core"}
    in_container = bool(hardware.virtualization.container)
    nvlink5 = is_nvlink5(config, state)
    nvswitch = has_switches(hardware.has_nvswitch, nvlink5)
    ib_present = IB_GROUP in host.groups or bool(hardware.rdma_ports)
    peermem = config.nvidia_driver_peermem
    peer_memory = state["peer_memory"] or state["ib_stack"] in ("mlnx_ofed", "doca_ofed")
    if peermem is None:
        peermem = ib_present and state["ib_stack"] is not None and peer_memory
        if ib_present and state["ib_stack"] is None:
            logger.warning(f"{host.name}: InfiniBand present but no IB stack (MLNX_OFED, DOCA-OFED, rdma-core) "
                           "installed: nvidia-peermem not configured; rerun after the InfiniBand role")
        elif ib_present and not peermem:
            logger.warning(f"{host.name}: InfiniBand with inbox rdma-core and no peer-memory API in this kernel: "
                           "nvidia-peermem would not load, so it is not configured; GPUDirect RDMA goes through "
                           "DMA-BUF (open kernel modules, kernel >= 5.12), which NCCL uses without peermem")
    os_release = host_facts.hardware(host).os_release
    try:
        distro = distro_dir(os_release.id, os_release.version_id)
        wanted_packages = wanted_set(config, distro, nvswitch, nvlink5)
    except (UnsupportedPlatformError, UnknownDistroError) as error:
        raise DeployError(f"{host.name}: nvidia_driver: refused before any change: {error}") from None

    gpus = gpu_keys(hardware.pci_gpus) if cuda.cuda_forward_compat else None
    problems = stack_problems(config, cuda, nvswitch, peermem, state, gpus)
    if problems:
        raise DeployError(f"{host.name}: nvidia_driver: refused before any change: " + " ".join(problems))

    driver = config.nvidia_driver_version
    fm = (config.nvidia_driver_fabricmanager_version or driver) if nvswitch else None
    wanted = dict(wanted_packages.packages)
    for name, why in sorted(wanted_packages.unconfirmed.items()):
        logger.warning(f"{host.name}: {name}={wanted[name]} on {distro}: {why}; checked in the repository "
                       "before the install")
    plan = plan_packages(wanted, state["packages"])
    loaded = state["loaded_module"] or (state["smi"]["version"] if state["smi"]["state"] == "ok" else None)
    reasons = reboot_reasons(plan, loaded, state["smi"], driver) + secure_boot_reasons(state, in_container)

    _nouveau(state)
    _headers(state, in_container, "ubuntu" if distro.startswith("ubuntu") else "debian")
    nvidia_repo.configure(repo)
    sync.file_synced(
        name=f"Ensure apt pins the NVIDIA driver packages and their sources at {driver}",
        src=StringIO(preferences(wanted_packages)),
        dest=preferences_path("nvidia_driver"), user="root", group="root", mode="0644",
    )
    nvidia.pinned_packages(name=f"Ensure the NVIDIA driver {driver} ({config.nvidia_driver_kernel_modules} "
                                f"kernel modules) is installed and held", packages=wanted, where=distro)
    if wanted_packages.unpinned:
        apt.packages(name="Ensure the NVLink5 subnet manager and diagnostics are installed",
                     packages=list(wanted_packages.unpinned))
    if plan.driver_from:
        logger.warning(f"{host.name}: NVIDIA driver {plan.driver_from} -> {plan.driver_to}"
                       + (": reboot required" if reasons else ""))
    for reason in reasons:
        logger.warning(f"{host.name}: reboot required: {reason}")
    reboot.reboot_required(name="Ensure the reboot-required state says whether the NVIDIA driver needs a reboot",
                           role=ROLE, reasons=reasons)
    # With the old module loaded the new daemons cannot start: enable them for the reboot.
    start = None if reasons else True
    if config.nvidia_driver_persistenced:
        systemd.service(name="Ensure nvidia-persistenced is enabled" + (" and running" if start else ""),
                        service="nvidia-persistenced", enabled=True, running=start, daemon_reload=plan.changes_packages)
    if nvswitch:
        systemd.service(name=f"Ensure nvidia-fabricmanager {fm} is enabled" + (" and running" if start else ""),
                        service="nvidia-fabricmanager", enabled=True, running=start,
                        daemon_reload=plan.changes_packages)
    _peermem(peermem, state, in_container)


def _nouveau(state: dict) -> None:
    # The kernel role blacklists nouveau; this role only checks and says so.
    if not state["nouveau_blacklisted_by"]:
        logger.warning(f"{host.name}: nouveau is not blacklisted in modprobe.d (the kernel role does it: "
                       "kernel_blacklist_nouveau); the NVIDIA driver cannot bind GPUs nouveau holds")
    if state["nouveau_loaded"]:
        logger.warning(f"{host.name}: nouveau is loaded; the NVIDIA driver loads after a reboot")


def _headers(state: dict, in_container: bool, family: str) -> None:
    release = state["kernel_release"]
    if in_container:
        logger.warning(f"{host.name}: in a container: headers for the host kernel {release} are not installable "
                       "here; skipped (DKMS builds the module only on a real host)")
        return
    apt.packages(name=f"Ensure kernel headers for {release} and its flavour are installed (DKMS)",
                 packages=headers_packages(release, family))


def _peermem(peermem: bool, state: dict, in_container: bool) -> None:
    if not peermem:
        files.file(name="Ensure no nvidia-peermem configuration is left over", path=PEERMEM_CONF, present=False)
        return
    sync.file_synced(
        name="Ensure nvidia-peermem is loaded at boot",
        src=StringIO("# Managed by deepseek-infra (nvidia_driver): GPUDirect RDMA over InfiniBand.\nnvidia-peermem\n"),
        dest=PEERMEM_CONF, user="root", group="root", mode="0644",
    )
    if in_container:
        logger.warning(f"{host.name}: in a container: nvidia-peermem written to {PEERMEM_CONF}, "
                       "loads on the real host's next boot")
    elif not state["peermem_loaded"]:
        server.modprobe(name="Ensure nvidia-peermem is loaded", module="nvidia-peermem")