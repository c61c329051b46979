"""daemon.json merging and the CDI spec check (deepseek_infra/docker_config.py)."""

import json

import pytest

from deepseek_infra.docker_config import (
    DaemonConfigError,
    cdi_spec_current,
    is_merged,
    managed_settings,
    merge_daemon_config,
    parse_daemon_config,
    render_apt_source,
    render_daemon_config,
)

MANAGED = managed_settings(log_opts={"max-size": "100m", "max-file": "3"}, data_root="/var/lib/deepseek/docker/")


def test_unrelated_keys_and_other_runtimes_are_kept():
    existing = {"debug": True, "registry-mirrors": ["http://mirror:5000"],
                "runtimes": {"crun": {"path": "/usr/bin/crun"}}, "log-opts": {"labels": "team"}}
    merged = merge_daemon_config(existing, MANAGED)
    assert merged["debug"] is True and merged["registry-mirrors"] == ["http://mirror:5000"]
    assert merged["runtimes"] == {"crun": {"path": "/usr/bin/crun"},
                                  "nvidia": {"path": "nvidia-container-runtime", "args": []}}
    assert merged["log-opts"] == {"labels": "team", "max-size": "100m", "max-file": "3"}
    assert merged["data-root"] == "/var/lib/deepseek/docker"
    assert existing == {"debug": True, "registry-mirrors": ["http://mirror:5000"],
                        "runtimes": {"crun": {"path": "/usr/bin/crun"}}, "log-opts": {"labels": "team"}}


def test_managed_values_win_and_a_second_merge_changes_nothing():
    existing = {"runtimes": {"nvidia": {"path": "/old/runtime", "args": ["-x"]}}, "data-root": "/var/lib/docker"}
    once = merge_daemon_config(existing, MANAGED)
    assert once["runtimes"]["nvidia"] == {"path": "nvidia-container-runtime", "args": []}
    assert once["data-root"] == "/var/lib/deepseek/docker"
    twice = merge_daemon_config(parse_daemon_config(render_daemon_config(once)), MANAGED)
    assert render_daemon_config(twice) == render_daemon_config(once)
    assert is_merged(once, MANAGED) and not is_merged(existing, MANAGED)


def test_log_opts_of_another_driver_are_dropped_when_the_driver_changes():
    existing = {"log-driver": "journald", "log-opts": {"tag": "{{.Name}}"}}
    merged = merge_daemon_config(existing, MANAGED)
    assert merged["log-driver"] == "json-file" and merged["log-opts"] == {"max-size": "100m", "max-file": "3"}
    no_opts = merge_daemon_config(existing, managed_settings())
    assert "log-opts" not in no_opts


def test_default_runtime_is_left_alone_unless_set():
    assert "default-runtime" not in managed_settings()
    assert merge_daemon_config({"default-runtime": "runc"}, managed_settings())["default-runtime"] == "runc"
    assert merge_daemon_config({}, managed_settings(default_runtime="nvidia"))["default-runtime"] == "nvidia"


def test_extra_keys_merge_and_cannot_shadow_dedicated_settings():
    managed = managed_settings(extra={"bridge": "none", "runtimes": {"crun": {"path": "crun"}}})
    assert managed["bridge"] == "none" and set(managed["runtimes"]) == {"nvidia", "crun"}
    with pytest.raises(ValueError, match="log-driver"):
        managed_settings(extra={"log-driver": "local"})
    with pytest.raises(ValueError, match="absolute"):
        managed_settings(data_root="docker")


@pytest.mark.parametrize(("text", "expected"), [(None, {}), ("", {}), ("  \n", {}), ('{"debug": true}', {"debug": True})])
def test_parse_existing(text, expected):
    assert parse_daemon_config(text) == expected


@pytest.mark.parametrize("text", ['{"debug": true,}', "[1, 2]"])
def test_unreadable_existing_file_is_refused(text):
    with pytest.raises(DaemonConfigError, match="/etc/docker/daemon.json"):
        parse_daemon_config(text)


def test_render_is_sorted_and_stable():
    text = render_daemon_config({"b": 1, "a": {"d": 2, "c": 3}})
    assert text == json.dumps({"a": {"c": 3, "d": 2}, "b": 1}, indent=2) + "\n"


def test_cdi_spec_current_names_the_driver():
    spec = "containerEdits:\n  mounts:\n  - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.90.12\n"
    assert cdi_spec_current(spec, "550.90.12")
    assert not cdi_spec_current(spec, "565.57.01")
    assert not cdi_spec_current(None, "550.90.12") and not cdi_spec_current(spec, None)


def test_docker_ce_source():
    text = render_apt_source("https://mirror.example.internal/docker/debian/", "bookworm", "/usr/share/keyrings/d.asc")
    assert "URIs: https://mirror.example.internal/docker/debian\nSuites: bookworm\nComponents: stable\n" in text
    with pytest.raises(ValueError):
        render_apt_source("ftp://x", "bookworm", "/k")
