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

# The deploys live in tasks.py: importing this package (for its defaults) loads no pyinfra operation.
