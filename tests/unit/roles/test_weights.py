"""The weights role's variables: cross-field rules refuse bad input naming the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from roles.weights.defaults import WeightsDefaults

HTTP = {"weights_source": "http", "weights_revision": "v1", "weights_mirror_url": "http://mirror:8080",
        "weights_manifest": "/srv/m.json"}


def errors(data: dict) -> dict[str, str]:
    with pytest.raises(ValidationError) as error:
        WeightsDefaults.from_data(data)
    return {str(e["loc"][0]): e["msg"] for e in error.value.errors()}


def test_defaults_place_nothing_and_are_valid():
    config = WeightsDefaults()
    assert config.weights_source == "none" and config.weights_keep_releases == 2
    assert all("==" in r for r in config.weights_pip_requirements)


def test_a_complete_http_source_is_accepted():
    config = WeightsDefaults.from_data(HTTP)
    assert config.weights_mirror_url == "http://mirror:8080" and config.verify_rate_bytes() == 200 * 1024**2


@pytest.mark.parametrize(("source", "field"), [
    ("http", "weights_mirror_url"), ("hf", "weights_hf_endpoint"), ("directory", "weights_source_dir"),
])
def test_each_source_needs_its_location(source, field):
    found = errors({"weights_source": source, "weights_revision": "v1", "weights_manifest": "/m.json"})
    assert field in found and "required when weights_source" in found[field]


def test_a_source_needs_a_pinned_revision_and_http_a_manifest():
    found = errors({"weights_source": "http", "weights_mirror_url": "http://m"})
    assert set(found) == {"weights_revision", "weights_manifest"}


@pytest.mark.parametrize(("key", "value", "message"), [
    ("weights_revision", "refs/pr/1", "revision"),
    ("weights_mirror_url", "ftp://mirror", "http:// or https://"),
    ("weights_manifest_sha384", "ABC", "96 lowercase hex"),
    ("weights_models_dir", "relative/dir", "absolute"),
    ("weights_models_dir", "/var", "system directory"),
    ("weights_key", "vault:secret", "file:/path, env:NAME or cmd:command"),
    ("weights_verify_rate_limit", "fast", "not a size"),
    ("weights_pip_requirements", ("cryptography>=46",), "pinned"),
    ("weights_keep_releases", 0, "greater than or equal to 1"),
])
def test_bad_values_are_refused_naming_the_field(key, value, message):
    found = errors({**HTTP, key: value})
    assert key in found and message in found[key], found


def test_encryption_needs_a_key_source():
    found = errors({**HTTP, "weights_encrypt": True})
    assert "required when weights_encrypt is true" in found["weights_key"]
    assert WeightsDefaults.from_data({**HTTP, "weights_encrypt": True, "weights_key": "env:DS_KEY"}).weights_encrypt


# --- the decrypt unit: noswap where the kernel has it ------------------------------------------

DECRYPT_UNIT = "/etc/systemd/system/deepseek-weights-decrypt@.service"


def decrypt_unit(monkeypatch, kernel_release: str | None, **data) -> tuple[dict[str, list[str]], list[str]]:
    """The decrypt unit as the role renders it for a host running ``kernel_release`` (its
    settings, and its comment lines under "#"), and the warnings."""
    import types

    from roles.weights import tasks

    warnings: list[str] = []
    monkeypatch.setattr(tasks, "host", types.SimpleNamespace(name="gpu-1"))
    monkeypatch.setattr(tasks, "logger", types.SimpleNamespace(warning=warnings.append))
    config = WeightsDefaults.from_data({**HTTP, **data})
    text = tasks._render(DECRYPT_UNIT, **tasks.unit_values(config, tasks.decrypt_swap(config, kernel_release))).decode()
    entries: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = ("#", "", line[1:].strip()) if line.startswith("#") else line.partition("=")
        entries.setdefault(key, []).append(value)
    return entries, warnings


def test_a_6_8_kernel_mounts_the_decrypt_tmpfs_noswap(monkeypatch):
    unit, warnings = decrypt_unit(monkeypatch, "6.8.0-48-generic", weights_encrypt=True, weights_key="env:K")
    (start,) = unit["ExecStart"]
    assert start.endswith(" --group deepseek --noswap") and " decrypt-current " in start
    assert "Swap: Linux 6.8.0-48-generic >= 6.4: mounted noswap" in unit["#"]
    assert not warnings


def test_a_6_1_kernel_mounts_it_without_noswap_and_says_so(monkeypatch):
    unit, warnings = decrypt_unit(monkeypatch, "6.1.0-28-amd64", weights_encrypt=True, weights_key="env:K")
    (start,) = unit["ExecStart"]
    assert start.endswith(" --group deepseek") and "noswap" not in start
    assert warnings == ["gpu-1: weights_encrypt: decrypt tmpfs: Linux 6.1.0-28-amd64 < 6.4 has no tmpfs noswap: "
                        "mounted without it, decrypted weights may be swapped out (disable swap on this host, or "
                        "run Linux >= 6.4)"]
    assert any(line.startswith("Swap: Linux 6.1.0-28-amd64 < 6.4 has no tmpfs noswap") for line in unit["#"])


def test_without_encryption_an_old_kernel_is_not_warned_about(monkeypatch):
    _, warnings = decrypt_unit(monkeypatch, "6.1.0-28-amd64")
    assert warnings == []
