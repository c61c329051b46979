"""Virtualization and os-release parsing, and both commands run on this machine."""

import platform
import subprocess
from pathlib import Path

import pytest

from deepseek_infra.facts.system import (
    OS_RELEASE_COMMAND,
    VIRTUALIZATION_COMMAND,
    OsRelease,
    Virtualization,
    parse_os_release,
    parse_virtualization,
)


@pytest.mark.parametrize(
    ("probes", "expected"),
    [
        # bare metal: systemd-detect-virt prints "none" for both questions
        (["vm=none", "container=none", "cgroup="], {"container": None, "vm": None}),
        # Docker inside a KVM guest (this CI runner)
        (["vm=kvm", "container=docker", "dockerenv=1", "cgroup="], {"container": "docker", "vm": "kvm"}),
        # no systemd-detect-virt in the image: the marker file decides
        (["vm=", "container=", "dockerenv=1", "cgroup="], {"container": "docker", "vm": None}),
        (["vm=", "container=", "containerenv=1", "cgroup="], {"container": "podman", "vm": None}),
        # cgroup v1 path of PID 1 in a Kubernetes pod
        (["vm=", "container=", "cgroup=kubepods"], {"container": "container-other", "vm": None}),
        # no systemd-detect-virt in a KVM guest (the H200 VM of tests/fixtures/hw/gpu-host)
        (["vm=", "container=", "cgroup=", "hypervisor=KVM"], {"container": None, "vm": "kvm"}),
        (["vm=", "container=", "cgroup=", "hypervisor="], {"container": None, "vm": "vm-other"}),
        # systemd-detect-virt's "none" is an answer: the CPU flag does not overrule it
        (["vm=none", "container=none", "cgroup=", "hypervisor=KVM"], {"container": None, "vm": None}),
        # systemd-detect-virt wins over weaker hints
        (["vm=amazon", "container=lxc", "cgroup=docker"], {"container": "lxc", "vm": "amazon"}),
    ],
)
def test_parse_virtualization(probes, expected):
    assert parse_virtualization(probes) == expected


def test_virtualization_on_this_machine():
    output = subprocess.run(["sh", "-c", VIRTUALIZATION_COMMAND], capture_output=True, text=True, check=True)
    info = Virtualization().process(output.stdout.splitlines())
    if not Path("/.dockerenv").exists():
        pytest.skip("not running in Docker: no container value to compare against")
    assert info["container"] == "docker", output.stdout
    assert Virtualization().default() == {"container": None, "vm": None}


DEBIAN_12 = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
""".splitlines()

UBUNTU_2204 = """\
PRETTY_NAME="Ubuntu 22.04.5 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.5 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=jammy
""".splitlines()

ROCKY_9 = """\
NAME="Rocky Linux"
VERSION="9.4 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"
""".splitlines()

# Debian 9 predates VERSION_CODENAME; the codename only appears inside VERSION.
DEBIAN_9 = ['PRETTY_NAME="Debian GNU/Linux 9 (stretch)"', 'VERSION_ID="9"', 'VERSION="9 (stretch)"', "ID=debian"]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (DEBIAN_12, {"id": "debian", "id_like": [], "version_id": "12", "codename": "bookworm",
                     "pretty_name": "Debian GNU/Linux 12 (bookworm)"}),
        (UBUNTU_2204, {"id": "ubuntu", "id_like": ["debian"], "version_id": "22.04", "codename": "jammy",
                       "pretty_name": "Ubuntu 22.04.5 LTS"}),
        (ROCKY_9, {"id": "rocky", "id_like": ["rhel", "centos", "fedora"], "version_id": "9.4",
                   "codename": None, "pretty_name": "Rocky Linux 9.4 (Blue Onyx)"}),
        (DEBIAN_9, {"id": "debian", "id_like": [], "version_id": "9", "codename": "stretch",
                    "pretty_name": "Debian GNU/Linux 9 (stretch)"}),
        ([], {"id": None, "id_like": [], "version_id": None, "codename": None, "pretty_name": None}),
    ],
    ids=["debian12", "ubuntu2204", "rocky9", "debian9", "empty"],
)
def test_parse_os_release(lines, expected):
    assert parse_os_release(lines) == expected


def test_parse_os_release_quoting_and_comments():
    parsed = parse_os_release(["# comment", "ID='opensuse-leap'", 'PRETTY_NAME="Say \\"hi\\""', 'VERSION_ID="15.5'])
    assert parsed["id"] == "opensuse-leap"
    assert parsed["pretty_name"] == 'Say "hi"'
    assert parsed["version_id"] == "15.5"  # unbalanced quote: best effort, no exception


def test_os_release_on_this_machine():
    output = subprocess.run(["sh", "-c", OS_RELEASE_COMMAND], capture_output=True, text=True, check=True)
    release = OsRelease().process(output.stdout.splitlines())
    reference = platform.freedesktop_os_release()
    assert release["id"] == reference["ID"]
    assert release["version_id"] == reference.get("VERSION_ID")
    assert release["pretty_name"] == reference["PRETTY_NAME"]
