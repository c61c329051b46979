"""The base role's packages are installed."""

import pytest

from roles.base.defaults import BaseDefaults

PACKAGES = BaseDefaults().base_packages


@pytest.mark.parametrize("package", PACKAGES)
def test_package_installed(host, package):
    assert host.package(package).is_installed, (
        f"{host.backend.hostname}: package {package}: expected installed, found absent"
    )
