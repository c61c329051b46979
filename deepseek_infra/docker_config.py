"""Docker's ``/etc/docker/daemon.json``: what the collection manages in it, merged into
whatever else the file holds (pure, no pyinfra).

The docker role never clobbers the file: ``merge_daemon_config(existing, managed)`` keeps
every key it does not manage, merges the mappings it shares (``runtimes``: other runtimes
stay; ``log-opts``: other options stay while the log driver is unchanged) and sets the
rest. The result is rendered with sorted keys, so merging an already merged file yields
the same bytes and a second deploy changes nothing.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from typing import Any, Final

DAEMON_JSON: Final = "/etc/docker/daemon.json"
CDI_SPEC: Final = "/etc/cdi/nvidia.yaml"
NVIDIA_RUNTIME: Final = "nvidia"
NVIDIA_RUNTIME_PATH: Final = "nvidia-container-runtime"  # what `nvidia-ctk runtime configure` writes


class DaemonConfigError(ValueError):
    """An existing daemon.json that is not a JSON object."""


def parse_daemon_config(text: str | None) -> dict[str, Any]:
    """The existing file's settings; empty for a missing or blank file.

    Raises DaemonConfigError for invalid JSON or a top level that is not an object, so the
    role refuses to rewrite a file it cannot read instead of dropping its content.
    """
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DaemonConfigError(f"{DAEMON_JSON}: not valid JSON ({error}); fix or remove it") from None
    if not isinstance(data, dict):
        raise DaemonConfigError(f"{DAEMON_JSON}: expected a JSON object, found {type(data).__name__}")
    return data


def managed_settings(*, default_runtime: str | None = None, log_driver: str = "json-file",
                     log_opts: Mapping[str, str] | None = None, data_root: str | None = None,
                     storage_driver: str | None = None, extra: Mapping[str, Any] | None = None,
                     runtime_path: str = NVIDIA_RUNTIME_PATH) -> dict[str, Any]:
    """The keys the docker role owns.

    + default_runtime: ``"nvidia"`` makes every container a GPU container; None leaves the key alone
    + log_driver / log_opts: container log driver and its rotation (``max-size``, ``max-file``)
    + data_root: where images and containers live (the NVMe data volume); None leaves it alone
    + storage_driver: ``overlay2``, ``fuse-overlayfs``, ``vfs``; None leaves Docker's choice
    + extra: more keys merged the same way (site settings)

    **Example:** ``managed_settings(log_opts={"max-size": "100m"})`` ->
    ``{"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}},
    "log-driver": "json-file", "log-opts": {"max-size": "100m"}}``
    """
    managed: dict[str, Any] = {"runtimes": {NVIDIA_RUNTIME: {"path": runtime_path, "args": []}}}
    if default_runtime is not None:
        managed["default-runtime"] = default_runtime
    managed["log-driver"] = log_driver
    if log_opts:
        managed["log-opts"] = {str(key): str(value) for key, value in log_opts.items()}
    if data_root is not None:
        if not posixpath.isabs(data_root):
            raise ValueError(f"data-root must be an absolute path, found {data_root!r}")
        managed["data-root"] = posixpath.normpath(data_root)
    if storage_driver is not None:
        managed["storage-driver"] = storage_driver
    for key, value in (extra or {}).items():
        if key in managed and not (isinstance(value, Mapping) and isinstance(managed[key], Mapping)):
            raise ValueError(f"{key!r} is set by a dedicated setting; do not repeat it in the extra keys")
        managed[key] = _merge(managed[key], value) if key in managed else value
    return managed


def _merge(base: Any, update: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(update, Mapping):
        merged = dict(base)
        for key, value in update.items():
            merged[key] = _merge(merged[key], value) if key in merged else value
        return merged
    return update


def merge_daemon_config(existing: Mapping[str, Any], managed: Mapping[str, Any]) -> dict[str, Any]:
    """``existing`` with ``managed`` merged in; keys only ``existing`` has are kept.

    Mappings merge recursively (managed values win), other values are replaced. ``log-opts``
    is replaced as a whole when the log driver changes: options of another driver would
    stop the daemon from starting.

    >>> merge_daemon_config({"debug": True, "runtimes": {"crun": {"path": "crun"}}},
    ...                     {"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}})
    {'debug': True, 'runtimes': {'crun': {'path': 'crun'}, 'nvidia': {'path': 'nvidia-container-runtime'}}}
    """
    merged = dict(existing)
    driver_changes = "log-driver" in managed and existing.get("log-driver", "json-file") != managed["log-driver"]
    for key, value in managed.items():
        if key == "log-opts" and driver_changes:
            merged[key] = dict(value)
        else:
            merged[key] = _merge(merged[key], value) if key in merged else value
    if driver_changes and "log-opts" not in managed:
        merged.pop("log-opts", None)
    return merged


def render_daemon_config(config: Mapping[str, Any]) -> str:
    """Stable text for daemon.json (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def is_merged(existing: Mapping[str, Any], managed: Mapping[str, Any]) -> bool:
    """True when every managed value is already in ``existing`` (what the verify suite asks)."""
    return merge_daemon_config(existing, managed) == dict(existing)


def cdi_spec_current(spec: str | None, driver: str | None) -> bool:
    """A CDI spec is current when it exists and names the loaded driver's libraries
    (``nvidia-ctk cdi generate`` lists ``libcuda.so.<driver version>``)."""
    return bool(spec) and driver is not None and f".so.{driver}" in (spec or "")


def render_apt_source(url: str, suite: str, keyring: str, components: str = "stable") -> str:
    """A deb822 source for Docker's own repository layout (``<url> <suite> stable``)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"expected an http(s) URL, found {url!r}")
    return (
        "# Managed by deepseek-infra (docker role): Docker CE packages.\n"
        f"Types: deb\nURIs: {url.rstrip('/')}\nSuites: {suite}\nComponents: {components}\nSigned-By: {keyring}\n"
    )
