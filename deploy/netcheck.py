"""Bandwidth between node pairs: `pyinfra inventories/prod.py deploy/netcheck.py`.

Measures every pair of the hosts in the run (`--limit` narrows it) with iperf3, and with
ib_write_bw where both ends have InfiniBand; writes the textfile metric the
NetworkBandwidthLow alert reads. `--data netcheck_report=net.json` writes every pair's result.
"""

from pyinfra import host

from deepseek_infra.monitoring import host_label
from roles.netcheck import tasks as netcheck
from roles.settings import settings_for

settings = settings_for(host)
members = {
    host_label(member.name): (member, netcheck._address(member, settings_for(member).exporters))
    for member in host.state.inventory.iter_activated_hosts()
}
netcheck.check(settings.netcheck, settings.monitoring, settings.exporters, members)
