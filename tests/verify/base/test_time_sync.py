"""chrony keeps time: enabled everywhere, running where the host may set the clock."""

import pytest


def test_chrony_enabled(host):
    assert host.service("chrony").is_enabled, f"{host.backend.hostname}: chrony: expected enabled, found disabled"


def test_chrony_running(host, in_container):
    if in_container:
        pytest.skip(f"{host.backend.hostname}: a container lacks CAP_SYS_TIME, so chrony's unit condition skips it")
    assert host.service("chrony").is_running, f"{host.backend.hostname}: chrony: expected running, found stopped"
    tracking = host.run("chronyc -n tracking")
    assert tracking.rc == 0, f"{host.backend.hostname}: chronyc tracking failed: {tracking.stderr}"
