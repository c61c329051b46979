"""Kernel facts: boot command line and running release."""

from __future__ import annotations

import re
from typing import TypedDict

from pyinfra.api import FactBase
from typing_extensions import override

CMDLINE_COMMAND = "cat /proc/cmdline"
KERNEL_RELEASE_COMMAND = "uname -r"

# A parameter is a run of non-space text in which double-quoted stretches may hold spaces
# (``dyndbg="file foo.c +p"``), as the kernel's own next_arg() splits it.
_CMDLINE_TOKEN = re.compile(r'(?:[^\s"]+|"[^"]*"?)+')


class KernelCmdlineInfo(TypedDict):
    raw: str
    params: list[tuple[str, str | None]]
    init_args: list[str]


def empty_cmdline() -> KernelCmdlineInfo:
    return {"raw": "", "params": [], "init_args": []}


def _strip_quotes(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text.strip('"')


def parse_cmdline(lines: list[str]) -> KernelCmdlineInfo:
    """Split ``/proc/cmdline`` into ordered ``(key, value)`` pairs; flags get ``None``.

    Order and repeats are kept: ``hugepagesz=1G hugepages=16 hugepagesz=2M hugepages=512``
    only makes sense read in sequence. Words after ``--`` belong to init, not the kernel,
    and go to ``init_args``.

    >>> parse_cmdline(["BOOT_IMAGE=/vmlinuz-5.15.0-101-generic ro iommu=pt -- single"])
    {'raw': 'BOOT_IMAGE=/vmlinuz-5.15.0-101-generic ro iommu=pt -- single', 'params': [('BOOT_IMAGE', '/vmlinuz-5.15.0-101-generic'), ('ro', None), ('iommu', 'pt')], 'init_args': ['single']}
    """
    raw = " ".join(line.strip() for line in lines if line.strip())
    tokens = _CMDLINE_TOKEN.findall(raw)
    split_at = tokens.index("--") if "--" in tokens else len(tokens)
    params: list[tuple[str, str | None]] = []
    for token in tokens[:split_at]:
        key, sep, value = token.partition("=")
        params.append((_strip_quotes(key), _strip_quotes(value) if sep else None))
    return {"raw": raw, "params": params, "init_args": tokens[split_at + 1 :]}


def _param_name(key: str) -> str:
    # The kernel treats "-" and "_" in parameter names as the same character (parameq()).
    return key.replace("-", "_")


def cmdline_values(cmdline: KernelCmdlineInfo, key: str) -> list[str | None]:
    """Every value given for ``key``, in boot order (``None`` for a bare flag).

    >>> cmdline_values(parse_cmdline(["intel-iommu=on iommu=pt intel_iommu=off"]), "intel_iommu")
    ['on', 'off']
    """
    wanted = _param_name(key)
    return [value for name, value in cmdline["params"] if _param_name(name) == wanted]


def cmdline_get(cmdline: KernelCmdlineInfo, key: str, default: str | None = None) -> str | None:
    """The value that takes effect for ``key`` (the last one given), else ``default``.

    A bare flag (``nosoftlockup``) returns ``""`` so that it is distinguishable from absence.

    >>> cmdline = parse_cmdline(["ro isolcpus=2-21 nosoftlockup"])
    >>> cmdline_get(cmdline, "isolcpus"), cmdline_get(cmdline, "nosoftlockup"), cmdline_get(cmdline, "quiet")
    ('2-21', '', None)
    """
    values = cmdline_values(cmdline, key)
    if not values:
        return default
    return values[-1] if values[-1] is not None else ""


class KernelCmdline(FactBase[KernelCmdlineInfo]):
    """The boot command line, raw and as ordered parameters.

    .. code:: python

        {"raw": "BOOT_IMAGE=/vmlinuz-5.15.0-101-generic root=/dev/mapper/vg-lv ro iommu=pt",
         "params": [("BOOT_IMAGE", "/vmlinuz-5.15.0-101-generic"),
                    ("root", "/dev/mapper/vg-lv"), ("ro", None), ("iommu", "pt")],
         "init_args": []}
    """

    default = staticmethod(empty_cmdline)

    @override
    def command(self) -> str:
        return CMDLINE_COMMAND

    @override
    def process(self, output: list[str]) -> KernelCmdlineInfo:
        return parse_cmdline(output)


def parse_kernel_release(lines: list[str]) -> str | None:
    """First non-empty line of ``uname -r``.

    >>> parse_kernel_release(["6.1.0-28-amd64"])
    '6.1.0-28-amd64'
    """
    return next((line.strip() for line in lines if line.strip()), None)


class KernelRelease(FactBase[str | None]):
    """The running kernel release, e.g. ``"5.15.0-101-generic"``."""

    @override
    def command(self) -> str:
        return KERNEL_RELEASE_COMMAND

    @override
    def process(self, output: list[str]) -> str | None:
        return parse_kernel_release(output)
