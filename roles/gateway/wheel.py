"""Build the ``deepseek-gateway`` wheel from ``node/deepseek_node/gateway`` on the controller.

Byte-for-byte reproducible (sorted entries, fixed timestamps and modes), so pushing it is
a no-op when the code did not change. No pyinfra imports: unit-tested on its own.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from importlib.resources import files
from pathlib import Path

from deepseek_node import gateway as gateway_package

DIST_NAME = "deepseek_gateway"  # import name on the node
PROJECT = "deepseek-gateway"
ENTRY_POINT = "deepseek-gateway = deepseek_gateway.cli:main"
REQUIRES = ("starlette", "uvicorn", "httpx", "prometheus-client", "pyyaml", "cryptography")
_EPOCH = (1980, 1, 1, 0, 0, 0)


def wheel_name(version: str = gateway_package.__version__) -> str:
    return f"{DIST_NAME}-{version}-py3-none-any.whl"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def sources() -> dict[str, bytes]:
    """``deepseek_gateway/<module>.py`` -> content, for every module of the package."""
    package = files(gateway_package)
    return {
        f"{DIST_NAME}/{entry.name}": entry.read_bytes()
        for entry in sorted(package.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".py")
    }


def build_wheel(destination: str | Path) -> Path:
    """Write the wheel into ``destination`` and return its path."""
    version = gateway_package.__version__
    dist_info = f"{DIST_NAME}-{version}.dist-info"
    metadata = "\n".join([
        "Metadata-Version: 2.1", f"Name: {PROJECT}", f"Version: {version}",
        "Summary: Access-controlled OpenAI-compatible gateway in front of a DeepSeek engine",
        "Requires-Python: >=3.11", *(f"Requires-Dist: {name}" for name in REQUIRES), "",
    ])
    entries = dict(sources())
    entries[f"{dist_info}/METADATA"] = metadata.encode()
    entries[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: deepseek-infra\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries[f"{dist_info}/entry_points.txt"] = f"[console_scripts]\n{ENTRY_POINT}\n".encode()
    entries[f"{dist_info}/top_level.txt"] = f"{DIST_NAME}\n".encode()
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries.items())
    entries[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()

    path = Path(destination) / wheel_name(version)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path
