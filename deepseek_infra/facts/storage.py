"""Storage facts: block devices (lsblk) and free space under a path (df)."""

from __future__ import annotations

import json
import re
from typing import Any, TypedDict

from pyinfra.api import FactBase, QuoteString, StringCommand
from typing_extensions import override

LSBLK_COMMAND = "lsblk -J -b -o NAME,TYPE,SIZE,MODEL,ROTA,TRAN,MOUNTPOINT"

# POSIX df row; the device and mount point may contain spaces, the four numbers cannot.
_DF_ROW = re.compile(r"^(?P<device>.+?)\s+(?P<size>\d+)\s+(?P<used>\d+)\s+(?P<free>\d+)\s+\S+\s+(?P<mount>/.*)$")


class BlockDevice(TypedDict):
    name: str
    type: str | None
    size_bytes: int | None
    model: str | None
    rotational: bool | None
    transport: str | None
    mountpoint: str | None
    parent: str | None


def _to_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _to_text(value: Any) -> str | None:
    # lsblk pads MODEL with spaces and older versions print "" where newer print null.
    text = str(value).strip() if value is not None else ""
    return text or None


def _to_bool(value: Any) -> bool | None:
    # util-linux >= 2.33 emits JSON booleans; older releases emit "0"/"1" strings.
    if isinstance(value, bool):
        return value
    if str(value).strip() in {"0", "1"}:
        return str(value).strip() == "1"
    return None


def parse_lsblk_json(lines: list[str]) -> list[BlockDevice]:
    """Flatten ``lsblk -J -b`` output, parents before children, each naming its parent.

    >>> parse_lsblk_json(['{"blockdevices": [{"name": "nvme0n1", "type": "disk", "size": 3840755982336,',
    ...     '"model": "SAMSUNG MZQL23T8HCLS-00A07 ", "rota": false, "tran": "nvme", "mountpoint": null,',
    ...     '"children": [{"name": "nvme0n1p1", "type": "part", "size": 3840754933760, "model": null,',
    ...     '"rota": false, "tran": "nvme", "mountpoint": "/data"}]}]}'])[1]
    {'name': 'nvme0n1p1', 'type': 'part', 'size_bytes': 3840754933760, 'model': None, 'rotational': False, 'transport': 'nvme', 'mountpoint': '/data', 'parent': 'nvme0n1'}
    """
    text = "\n".join(lines).strip()
    if not text:
        return []
    devices: list[BlockDevice] = []

    def walk(entries: list[dict[str, Any]], parent: str | None) -> None:
        for entry in entries:
            name = str(entry.get("name", ""))
            devices.append(
                {
                    "name": name,
                    "type": _to_text(entry.get("type")),
                    "size_bytes": _to_int(entry.get("size")),
                    "model": _to_text(entry.get("model")),
                    "rotational": _to_bool(entry.get("rota")),
                    "transport": _to_text(entry.get("tran")),
                    "mountpoint": _to_text(entry.get("mountpoint")),
                    "parent": parent,
                }
            )
            walk(entry.get("children", []), name)

    walk(json.loads(text).get("blockdevices", []), None)
    return devices


class BlockDevices(FactBase[list[BlockDevice]]):
    """Block devices from ``lsblk``, children flattened after their parent.

    .. code:: python

        [{"name": "nvme0n1", "type": "disk", "size_bytes": 3840755982336,
          "model": "SAMSUNG MZQL23T8HCLS-00A07", "rotational": False, "transport": "nvme",
          "mountpoint": None, "parent": None},
         {"name": "nvme0n1p1", "type": "part", ..., "mountpoint": "/data", "parent": "nvme0n1"}]
    """

    default = list

    @override
    def requires_command(self) -> str:
        return "lsblk"

    @override
    def command(self) -> str:
        return LSBLK_COMMAND

    @override
    def process(self, output: list[str]) -> list[BlockDevice]:
        return parse_lsblk_json(output)


class DfRow(TypedDict):
    device: str
    size_bytes: int
    used_bytes: int
    free_bytes: int
    mountpoint: str


def parse_df(lines: list[str]) -> list[DfRow]:
    """Rows of ``df -P -B1`` output (header skipped), sizes in bytes.

    >>> parse_df(["Filesystem 1-blocks Used Available Capacity Mounted on",
    ...           "/dev/md0 7681501126656 1048576 7291190214656 1% /data"])
    [{'device': '/dev/md0', 'size_bytes': 7681501126656, 'used_bytes': 1048576, 'free_bytes': 7291190214656, 'mountpoint': '/data'}]
    """
    rows: list[DfRow] = []
    for line in lines:
        match = _DF_ROW.match(line.rstrip())
        if match:
            rows.append(
                {
                    "device": match["device"],
                    "size_bytes": int(match["size"]),
                    "used_bytes": int(match["used"]),
                    "free_bytes": int(match["free"]),
                    "mountpoint": match["mount"],
                }
            )
    return rows


class PathSpaceInfo(DfRow):
    existing_path: str


def parse_path_space(lines: list[str]) -> PathSpaceInfo | None:
    """The ``PathSpace`` output: the existing ancestor on line one, then ``df`` output.

    >>> parse_path_space(["/srv", "Filesystem 1-blocks Used Available Capacity Mounted on",
    ...                   "/dev/vda1 270553174016 23634976768 85309317120 22% /"])["existing_path"]
    '/srv'
    """
    if not lines:
        return None
    rows = parse_df(lines[1:])
    if not rows:
        return None
    return {"existing_path": lines[0].strip(), **rows[0]}


class PathSpace(FactBase[PathSpaceInfo | None]):
    """Filesystem size and free bytes for ``path``, measured at its nearest existing ancestor
    (the weights directory may not exist yet); ``None`` if ``df`` gives nothing usable.

    .. code:: python

        {"existing_path": "/srv", "device": "/dev/md0", "size_bytes": 7681501126656,
         "used_bytes": 1048576, "free_bytes": 7291190214656, "mountpoint": "/srv"}
    """

    @override
    def requires_command(self, path: str) -> str:
        return "df"

    @override
    def command(self, path: str) -> StringCommand:
        # dirname ends at "/" (absolute) or "." (relative), both of which exist.
        return StringCommand(
            "p=",
            QuoteString(path),
            '; while [ ! -e "$p" ]; do p=$(dirname -- "$p"); done;',
            ' printf "%s\\n" "$p"; df -P -B1 -- "$p"',
            _separator="",
        )

    @override
    def process(self, output: list[str]) -> PathSpaceInfo | None:
        return parse_path_space(output)
