"""InfiniBand where the infiniband role ran: packages, boot modules, memlock, IPoIB files,
and every checked port Active/LinkUp at the expected rate (ibstat).

Expected values come from the settings the role recorded (/etc/deepseek/infiniband.json,
validated again as InfinibandDefaults) and the role's own renderers.
"""

from __future__ import annotations

import json

import pytest

from deepseek_infra import infiniband
from deepseek_infra.facts.infiniband import parse_ibstat
from deepseek_infra.hardware import IbPorts
from roles.infiniband.tasks import RECORD_FILE
from roles.infiniband.defaults import InfinibandDefaults
from roles.kernel.tasks import MEMLOCK_FILE


def _name(host) -> str:
    return host.backend.hostname


@pytest.fixture(scope="module")
def settings(host) -> InfinibandDefaults:
    record = host.file(RECORD_FILE)
    if not record.exists:
        pytest.skip(f"{_name(host)}: {RECORD_FILE}: the infiniband role did not apply here (no IB)")
    return InfinibandDefaults(**json.loads(record.content_string)["settings"])


def test_packages_installed(host, settings):
    for name in settings.infiniband_packages:
        assert host.package(name).is_installed, f"{_name(host)}: package {name}: expected installed, found not"


def test_modules_load_at_boot(host, settings, in_container):
    expected = infiniband.render_modules_load(settings.infiniband_kernel_modules)
    conf = host.file(infiniband.MODULES_LOAD_FILE)
    found = conf.content_string if conf.exists else None
    assert found == expected, f"{_name(host)}: {infiniband.MODULES_LOAD_FILE}: expected\n{expected}\nfound\n{found}"
    if in_container:
        pytest.skip(f"{_name(host)}: a container cannot load kernel modules (written for boot)")
    loaded = host.check_output("cut -d' ' -f1 /proc/modules").split()
    missing = [m for m in settings.infiniband_kernel_modules if m not in loaded]
    assert not missing, f"{_name(host)}: /proc/modules: expected {list(settings.infiniband_kernel_modules)}, missing {missing}"


def test_memlock_unlimited_for_rdma(host, settings):
    if not settings.infiniband_memlock:
        pytest.skip("infiniband_memlock is off")
    limits = host.file(MEMLOCK_FILE)
    assert limits.exists, f"{_name(host)}: {MEMLOCK_FILE}: expected memlock limits, found none"
    assert "memlock" in limits.content_string, f"{_name(host)}: {MEMLOCK_FILE}: expected memlock lines, found none"


def test_ipoib_files(host, settings):
    if not settings.infiniband_ipoib_addresses:
        pytest.skip(f"{_name(host)}: no IPoIB addresses in infiniband_ipoib_addresses")
    for interface, cidr in settings.infiniband_ipoib_addresses.items():
        path = infiniband.ipoib_path(settings.infiniband_ipoib_method, interface)
        expected = infiniband.render_ipoib(settings.infiniband_ipoib_method, interface, cidr,
                                           settings.infiniband_ipoib_mtu)
        found = host.file(path).content_string if host.file(path).exists else None
        assert found == expected, f"{_name(host)}: {path}: expected\n{expected}\nfound\n{found}"


def test_ports_active_at_the_expected_rate(host, settings):
    ibstat = host.run("ibstat")
    assert ibstat.rc == 0, f"{_name(host)}: ibstat: expected exit 0, found {ibstat.rc}: {ibstat.stderr.strip()}"
    ports = IbPorts.from_fact(parse_ibstat(ibstat.stdout.splitlines()))
    layers = settings.infiniband_check_link_layers
    if not settings.infiniband_check_cas and not any(p.link_layer in layers for p in ports):
        pytest.skip(f"{_name(host)}: no {'/'.join(layers)} port in ibstat ({len(ports)} other port(s))")
    report = infiniband.port_report(ports, settings.infiniband_expected_rate_gbps, link_layers=layers,
                                    cas=settings.infiniband_check_cas)
    assert not report.problems, f"{_name(host)}: ibstat: " + "; ".join(report.problems)
