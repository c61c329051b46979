"""infiniband: Debian's RDMA stack, IB kernel modules, IPoIB addresses, memlock, port checks.

Applies to hosts in the ``ib_fabric`` group or with RDMA devices detected (sysfs or
``ibstat``); other hosts get nothing. Packages (rdma-core, ibverbs-utils,
infiniband-diags, perftest) come from the distribution. The kernel modules are written to
``/etc/modules-load.d`` and loaded now on a real host (a container only writes and
reports). IPoIB addresses come from host data (systemd-networkd or ifupdown). memlock
reuses the kernel role's file and setting. Finally every InfiniBand port ``ibstat`` shows
is checked: Active / LinkUp at no less than ``infiniband_expected_rate_gbps``; a problem
warns or fails the host (``infiniband_on_port_problem``).
"""

from __future__ import annotations

import json
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import apt, server, systemd
from pyinfra.operations.util import any_changed

from deepseek_infra import infiniband
from deepseek_node import paths
from deepseek_infra.facts.host import hardware_part
from deepseek_infra.hardware import IbPorts, Virtualization
from deepseek_infra.facts.infiniband import RdmaDevices
from deepseek_infra.operations import infiniband as ib_operations
from deepseek_infra.operations import sync
from roles.infiniband.defaults import InfinibandDefaults
from roles.kernel.tasks import MEMLOCK_FILE
from roles.kernel.defaults import KernelDefaults
from roles.kernel.plan import render_memlock_conf

IB_GROUP = "ib_fabric"
RECORD_FILE = f"{paths.CONFIG_DIR}/infiniband.json"


def applies(groups, rdma_devices: list[str], ib_ports: IbPorts) -> bool:
    return IB_GROUP in groups or bool(rdma_devices) or bool(ib_ports)


@deploy("infiniband: install")
def install(config: InfinibandDefaults, kernel: KernelDefaults) -> bool:
    """True when this host gets the RDMA stack (the driver role then configures nvidia-peermem)."""
    if not applies(host.groups, host.get_fact(RdmaDevices), hardware_part(host, IbPorts)):
        host.noop(f"not in {IB_GROUP} and no RDMA device found: no InfiniBand")
        return False
    container = hardware_part(host, Virtualization).container
    apt.packages(name="Ensure the RDMA stack is installed (rdma-core, ibverbs-utils, infiniband-diags, perftest)",
                 packages=list(config.infiniband_packages), update=True, cache_time=3600)
    _kernel_modules(config, container)
    if config.infiniband_memlock:
        sync.file_synced(name=f"Ensure memlock limits allow RDMA ({MEMLOCK_FILE}, kernel_memlock={kernel.kernel_memlock})",
                         src=StringIO(render_memlock_conf(kernel.kernel_memlock)), dest=MEMLOCK_FILE, mode="0644")
    _ipoib(config, container)
    sync.file_synced(name=f"Ensure {RECORD_FILE} records the InfiniBand settings",
                     src=StringIO(json.dumps({"settings": config.model_dump(mode="json")}, indent=2, sort_keys=True) + "\n"),
                     dest=RECORD_FILE, user="root", group="root", mode="0644")
    ib_operations.ports_verified(
        name="Ensure every InfiniBand port is Active/LinkUp at the expected rate",
        expected_rate_gbps=config.infiniband_expected_rate_gbps,
        link_layers=tuple(config.infiniband_check_link_layers), cas=tuple(config.infiniband_check_cas),
        on_problem=config.infiniband_on_port_problem,
    )
    return True


def _kernel_modules(config: InfinibandDefaults, container: str | None) -> None:
    modules = config.infiniband_kernel_modules
    sync.file_synced(name=f"Ensure {infiniband.MODULES_LOAD_FILE} loads {', '.join(modules)} at boot",
                     src=StringIO(infiniband.render_modules_load(modules)), dest=infiniband.MODULES_LOAD_FILE, mode="0644")
    if container:
        logger.warning(f"{host.name}: {container} container: {', '.join(modules)} written to "
                       f"{infiniband.MODULES_LOAD_FILE}, not loaded (a container shares its host's kernel)")
        return
    for module in modules:
        server.modprobe(name=f"Ensure kernel module {module} is loaded", module=module)


def _ipoib(config: InfinibandDefaults, container: str | None) -> None:
    method = config.infiniband_ipoib_method
    written_all = []
    for interface, cidr in sorted(config.infiniband_ipoib_addresses.items()):
        path = infiniband.ipoib_path(method, interface)
        written = sync.file_synced(name=f"Ensure IPoIB {interface} has {cidr} ({path})",
                                   src=StringIO(infiniband.render_ipoib(method, interface, cidr, config.infiniband_ipoib_mtu)),
                                   dest=path, mode="0644")
        written_all.append(written)
        if container:
            logger.warning(f"{host.name}: {container} container: IPoIB {interface} {cidr} written to {path}, "
                           "not applied (no IPoIB interface in a container)")
        elif method == "ifupdown":
            server.shell(name=f"Bring IPoIB {interface} up with its address", commands=[f"ifup --force {interface}"],
                         _if=written.did_change)
    if config.infiniband_ipoib_addresses and not container and method == "networkd":
        systemd.service(name="Ensure systemd-networkd is enabled and running (it owns the IPoIB addresses)",
                        service="systemd-networkd", enabled=True, running=True)
        server.shell(name="Reload systemd-networkd's configuration after an IPoIB file changed",
                     commands=["networkctl reload"], _if=any_changed(*written_all))