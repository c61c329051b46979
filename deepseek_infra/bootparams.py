"""Kernel command line management through a GRUB drop-in (pure logic).

Parameters are ``(key, value)`` pairs as ``deepseek_infra.facts.kernel.parse_cmdline`` returns
them (``value`` None for a bare flag). Keys compare the way the kernel compares them:
``-`` and ``_`` are the same character (``intel-iommu`` is ``intel_iommu``).

``wanted`` maps a key to what it should be:

- ``"value"`` (or a number): exactly one ``key=value``; ``None``: the bare flag ``key``.
- a list: an **ordered group**, for parameters that legitimately repeat and only mean
  something in sequence (``hugepagesz=1G hugepages=16 hugepagesz=2M hugepages=512``).
  Plain items are values of the dict key (``"console": ["tty0", "ttyS0,115200"]``);
  ``(key, value)`` items name their own key, so a group can hold several keys, e.g.
  ``{"hugepages": plan.cmdline}`` from ``deepseek_infra.hugepages``. Every key in the group, and
  the dict key, is managed by it; ``[]`` removes the key.

``merge_params`` keeps unrelated parameters and their order, writes a managed key (or
group) once, where its first occurrence was, drops its other occurrences, and appends
keys that were absent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

Param = tuple[str, str | None]
WantedValue = str | int | None | list

GRUB_DROPIN_PATH: Final = "/etc/default/grub.d/deepseek.cfg"
# Characters that survive sh double quotes, grub-mkconfig and the kernel parser unchanged.
_SAFE = re.compile(r"^[A-Za-z0-9_.,:/+=@%~^-]*$")


def _name(key: str) -> str:
    return key.replace("-", "_")


def format_param(key: str, value: str | None) -> str:
    return key if value is None else f"{key}={value}"


def _entries(wanted: Mapping[str, WantedValue]) -> list[tuple[str, set[str], list[Param]]]:
    """Each wanted entry as (key, managed key names, params to write), overlaps rejected."""
    entries: list[tuple[str, set[str], list[Param]]] = []
    owner: dict[str, str] = {}
    for key, value in wanted.items():
        items = value if isinstance(value, list) else [value]
        params = [
            (item[0], None if item[1] is None else str(item[1])) if isinstance(item, tuple)
            else (key, None if item is None else str(item))
            for item in items
        ]
        names = {_name(key)} | {_name(k) for k, _ in params}
        for name in names:
            if name in owner and owner[name] != key:
                raise ValueError(f"wanted: {name!r} is managed by both {owner[name]!r} and {key!r}")
            owner[name] = key
        entries.append((key, names, params))
    return entries


def merge_params(
    current: Iterable[Param],
    wanted: Mapping[str, WantedValue],
    remove: Iterable[str] = (),
) -> list[Param]:
    """``current`` with ``wanted`` applied in place and ``remove``'d keys dropped.

    >>> merge_params([("ro", None), ("iommu", "off"), ("quiet", None)], {"iommu": "pt"})
    [('ro', None), ('iommu', 'pt'), ('quiet', None)]
    """
    entries = _entries(wanted)
    removed = {_name(key) for key in remove}
    if clash := removed & {name for _, names, _ in entries for name in names}:
        raise ValueError(f"keys both wanted and removed: {sorted(clash)}")
    owner = {name: index for index, (_, names, _) in enumerate(entries) for name in names}
    merged: list[Param] = []
    written: set[int] = set()
    for key, value in current:
        name = _name(key)
        if name in removed:
            continue
        if name not in owner:
            merged.append((key, value))
        elif owner[name] not in written:
            written.add(owner[name])
            merged.extend(entries[owner[name]][2])
    for index, (_, _, params) in enumerate(entries):
        if index not in written:
            merged.extend(params)
    return merged


def render_grub_dropin(params: Iterable[Param]) -> str:
    """The text of ``GRUB_DROPIN_PATH`` that adds ``params`` to the kernel command line.

    grub-mkconfig (Debian/Ubuntu) sources ``/etc/default/grub`` and then
    ``/etc/default/grub.d/*.cfg`` in name order. Appending to the variable keeps what the
    distribution, the cloud image (``50-cloudimg-settings.cfg`` sets the serial console) and
    the admin put there; assigning it would silently drop those. ``_DEFAULT`` is used, not
    ``GRUB_CMDLINE_LINUX``, because it is left out of recovery entries, so a host that will
    not boot with our parameters still boots in recovery mode. Appending cannot undo a
    conflicting value set earlier (``iommu=off`` in ``/etc/default/grub``); that shows up in
    ``missing_from_running`` after the reboot. Values are limited to characters that need
    no quoting anywhere on the way; anything else raises ValueError.
    """
    words = []
    for key, value in params:
        text = format_param(key, value)
        if not key or not _SAFE.match(text):
            raise ValueError(f"kernel parameter {text!r}: only [A-Za-z0-9_.,:/+=@%~^-] are allowed")
        words.append(text)
    line = " ".join(["$GRUB_CMDLINE_LINUX_DEFAULT", *words])
    return (
        "# Managed by deepseek-infra: kernel parameters for GPU serving.\n"
        "# Delete this file and run update-grub to undo.\n"
        f'GRUB_CMDLINE_LINUX_DEFAULT="{line}"\n'
    )


def missing_from_running(
    running_cmdline_params: Iterable[Param],
    wanted: Mapping[str, WantedValue],
    remove: Iterable[str] = (),
) -> list[str]:
    """What the running kernel was not booted with; empty means no reboot is needed.

    A key counts as applied only when every occurrence has the wanted value: with
    ``iommu=off iommu=pt`` the earlier ``off`` still disabled the IOMMU. A group counts
    only when its keys appear in exactly the wanted sequence, and is reported as one
    string. Identical repeats count as applied (``iommu=pt`` both in ``/etc/default/grub``
    and in the drop-in); otherwise that host would ask for a reboot forever. A ``remove``'d
    key (or ``[]`` group) still present is reported as ``"without <key>"``.
    """
    running = list(running_cmdline_params)
    missing = []
    for key, names, params in _entries(wanted):
        seen = [(_name(k), v) for k, v in running if _name(k) in names]
        expected = [(_name(k), v) for k, v in params]
        repeats = len(seen) // len(expected) if expected else 0
        if seen != expected * max(repeats, 1):
            missing.append(" ".join(format_param(k, v) for k, v in params) or f"without {key}")
    for key in remove:
        if any(_name(k) == _name(key) for k, _ in running):
            missing.append(f"without {key}")
    return missing


def iommu_params(cpu_vendor: str) -> dict[str, str]:
    """IOMMU on, in passthrough mode, for ``cpu_vendor`` (lscpu/cpuinfo "Vendor ID").

    ``iommu=pt`` keeps host DMA (GPU, NIC) untranslated, avoiding the IOTLB cost, while
    VFIO passthrough still gets its isolation. Intel needs ``intel_iommu=on`` on kernels
    built without ``CONFIG_INTEL_IOMMU_DEFAULT_ON``. The AMD IOMMU is on by default and its
    parser ignores ``on`` (it only acts on ``off``, ``force_enable``...); ``amd_iommu=on``
    is kept because, merged, it replaces a stale ``amd_iommu=off`` in place.
    """
    if cpu_vendor == "GenuineIntel":
        return {"intel_iommu": "on", "iommu": "pt"}
    if cpu_vendor == "AuthenticAMD":
        return {"amd_iommu": "on", "iommu": "pt"}
    raise ValueError(f"cpu_vendor: expected 'GenuineIntel' or 'AuthenticAMD', got {cpu_vendor!r}")
