"""Node-side downloader: fetch a release's files from an HTTP(S) mirror into staging.

Stdlib only (urllib). Bounded parallelism (one thread per file, ``parallel`` at most);
each file is hashed while it is written, resumed with a ``Range`` request when a part is
already staged (the part is hashed first), and recorded in the staging state file once
its SHA-384 matches the manifest, so a rerun skips it without hashing it again. A file
whose hash differs is deleted (the next try starts from zero) and reported.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepseek_node.weights.manifest import FileEntry, Manifest
from deepseek_node.weights.plan import STAGED_STATE, file_url

_BLOCK = 1024 * 1024
USER_AGENT = "deepseek-weights/1"


class StagedState:
    """``.dsw-staged.json``: path -> (size, mtime_ns, sha384) of files hashed in staging.

    A record is trusted only while the file's size and mtime are unchanged.
    """

    def __init__(self, staging: Path) -> None:
        self.path = staging / STAGED_STATE
        self._lock = threading.Lock()
        try:
            self._records: dict[str, dict[str, Any]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._records = {}

    def verified_sha(self, staging: Path, rel: str) -> str | None:
        record = self._records.get(rel)
        try:
            st = (staging / rel).stat()
        except OSError:
            return None
        if record and record.get("size") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns:
            return str(record.get("sha384"))
        return None

    def record(self, staging: Path, rel: str, sha384: str) -> None:
        st = (staging / rel).stat()
        with self._lock:
            self._records[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha384": sha384}
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self._records, sort_keys=True))
            os.replace(tmp, self.path)

    def forget(self, rel: str) -> None:
        with self._lock:
            self._records.pop(rel, None)


def _hash_prefix(path: Path, digest: Any) -> int:
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(8 * _BLOCK):
            digest.update(block)
            size += len(block)
    return size


@dataclass
class FetchReport:
    downloaded_bytes: int = 0
    downloaded: list[str] = field(default_factory=list)
    resumed: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    hash_mismatch: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ok(self) -> bool:
        return not self.hash_mismatch and not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "downloaded_bytes": self.downloaded_bytes, "downloaded": sorted(self.downloaded),
            "resumed": self.resumed, "skipped": len(self.skipped), "hash_mismatch": self.hash_mismatch,
            "errors": self.errors,
        }


class _Mismatch(Exception):
    pass


def _fetch_one(
    entry: FileEntry, staging: Path, prefix: str, state: StagedState, report: FetchReport,
    timeout_s: float, retries: int,
) -> None:
    target = staging / entry.path
    if state.verified_sha(staging, entry.path) == entry.sha384:
        with report._lock:
            report.skipped.append(entry.path)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    url = file_url(prefix, entry.path)
    attempt = 0
    while True:
        try:
            sent = _download(entry, target, url, state, staging, report, timeout_s)
            with report._lock:
                report.downloaded_bytes += sent
                report.downloaded.append(entry.path)
            return
        except _Mismatch as exc:
            target.unlink(missing_ok=True)
            state.forget(entry.path)
            failure: dict[str, Any] = {"path": entry.path, "expected": entry.sha384, "found": str(exc), "url": url}
            kind = "hash_mismatch"
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            failure = {"path": entry.path, "url": url, "error": f"{type(exc).__name__}: {exc}"}
            kind = "errors"
        attempt += 1
        if attempt > retries:
            with report._lock:
                getattr(report, kind).append(failure)
            return
        time.sleep(min(2.0**attempt, 30.0))


def _download(
    entry: FileEntry, target: Path, url: str, state: StagedState, staging: Path,
    report: FetchReport, timeout_s: float,
) -> int:
    digest = hashlib.sha384()
    have = target.stat().st_size if target.exists() else 0
    if have > entry.size:
        target.unlink()
        have = 0
    if have:
        _hash_prefix(target, digest)
        if have == entry.size:
            if digest.hexdigest() != entry.sha384:
                raise _Mismatch(digest.hexdigest())
            state.record(staging, entry.path, entry.sha384)
            return 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        if have and response.status != 206:  # the server ignored the range: start over
            digest, have = hashlib.sha384(), 0
        elif have:
            with report._lock:
                report.resumed[entry.path] = have
        sent = 0
        with open(target, "ab" if have else "wb") as out:
            while block := response.read(_BLOCK):
                if have + sent + len(block) > entry.size:
                    raise _Mismatch(f"more than the {entry.size} bytes the manifest lists")
                out.write(block)
                digest.update(block)
                sent += len(block)
            out.flush()
            os.fsync(out.fileno())
    if have + sent != entry.size:
        raise OSError(f"connection closed after {have + sent} of {entry.size} bytes")
    found = digest.hexdigest()
    if found != entry.sha384:
        raise _Mismatch(found)
    state.record(staging, entry.path, found)
    return sent


def fetch(
    manifest: Manifest, staging: Path, prefix: str, *, parallel: int = 4, retries: int = 3,
    timeout_s: float = 60.0,
) -> FetchReport:
    """Download every manifest file not yet verified in ``staging`` from ``prefix``."""
    staging.mkdir(parents=True, exist_ok=True)
    state = StagedState(staging)
    report = FetchReport()
    # Largest first, so one big shard does not start last and stretch the wall time.
    entries = sorted(manifest.files, key=lambda e: (-e.size, e.path))
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="fetch") as pool:
        for future in [pool.submit(_fetch_one, e, staging, prefix, state, report, timeout_s, retries) for e in entries]:
            future.result()
    return report
