"""Node-side downloader: fetch a release's files from an HTTP(S) mirror into staging.

Stdlib only (urllib). Bounded parallelism (one thread per file, ``parallel`` at most);
each file is hashed while it is written, resumed with a ``Range`` request when a part is
already staged (the part is hashed first), and recorded in the staging state file once
its SHA-384 matches the manifest, so a rerun skips it without hashing it again. A file
whose hash differs is deleted (the next try starts from zero) and reported.

Every file is opened through ``open_staged``: its path is checked, each directory on the way
must be a real directory inside staging and the file itself is opened with ``O_NOFOLLOW``,
so a symlink planted in staging cannot redirect a write (or a read) outside it.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import stat
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepseek_node.weights.manifest import FileEntry, Manifest, check_path
from deepseek_node.weights.plan import STAGED_STATE, file_url

_BLOCK = 1024 * 1024
USER_AGENT = "deepseek-weights/1"


class StagingPathError(ValueError):
    """A staged path is unsafe: outside staging, through a symlink, or not a regular file."""


def open_staged(staging: Path, rel: str, flags: int, mode: int = 0o640) -> int:
    """Open ``staging/rel`` and return the fd; never leaves staging, never follows a symlink.

    Parent directories are created as needed; each must be a real directory (``O_NOFOLLOW``
    on every component, opened relative to its parent), and the file a regular file.
    """
    try:
        parts = check_path(rel).split("/")
    except ValueError as exc:
        raise StagingPathError(f"{staging}: refused path: {exc}") from None
    nofollow = os.O_NOFOLLOW | os.O_CLOEXEC
    dir_fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts[:-1]):
            if flags & os.O_CREAT:
                try:
                    os.mkdir(part, 0o750, dir_fd=dir_fd)
                except FileExistsError:
                    pass
            try:
                next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=dir_fd)
            except FileNotFoundError:
                raise
            except OSError as exc:
                where = "/".join(parts[: i + 1])
                raise StagingPathError(f"{staging / where}: not a directory inside staging "
                                       f"(a symlink?): {exc.strerror}") from None
            os.close(dir_fd)
            dir_fd = next_fd
        try:
            # O_NONBLOCK: opening a FIFO planted here must fail fast, not hang.
            fd = os.open(parts[-1], flags | nofollow | os.O_NONBLOCK, mode, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO):
                raise StagingPathError(f"{staging / rel}: is a symlink or not a regular file; refused") from None
            raise
    finally:
        os.close(dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StagingPathError(f"{staging / rel}: is not a regular file; refused")
    os.set_blocking(fd, True)
    return fd


def stat_key(st: os.stat_result) -> list[int]:
    """What identifies one unchanged file: the same inode, size, mtime and ctime (a user can
    set mtime back, but not ctime)."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class StagedState:
    """``.dsw-staged.json``: path -> (dev, ino, size, mtime_ns, ctime_ns) and sha384 of files
    hashed in staging.

    A record is trusted only while ``lstat`` of the path gives a regular file with the very
    same ``stat_key``: any write, ``utime``, replacement or symlink swap breaks it.
    """

    def __init__(self, staging: Path) -> None:
        self.path = staging / STAGED_STATE
        self._lock = threading.Lock()
        try:
            self._records: dict[str, dict[str, Any]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._records = {}
        if not isinstance(self._records, dict):
            self._records = {}

    def sha_for(self, rel: str, st: os.stat_result) -> str | None:
        """The recorded SHA-384 of ``rel`` if ``st`` (from lstat) is the file that was hashed."""
        record = self._records.get(rel)
        if not isinstance(record, dict) or not stat.S_ISREG(st.st_mode) or record.get("key") != stat_key(st):
            return None
        sha = record.get("sha384")
        return sha if isinstance(sha, str) else None

    def verified_sha(self, staging: Path, rel: str) -> str | None:
        try:
            st = os.lstat(staging / rel)
        except OSError:
            return None
        return self.sha_for(rel, st)

    def record(self, staging: Path, rel: str, sha384: str, st: os.stat_result | None = None) -> None:
        """Record ``sha384`` for ``rel``; ``st``: the stat of the file as it was hashed
        (taken before hashing, or fstat of the fd written), else ``lstat`` now."""
        st = st or os.lstat(staging / rel)
        if not stat.S_ISREG(st.st_mode):
            raise StagingPathError(f"{staging / rel}: is not a regular file; not recorded")
        with self._lock:
            self._records[rel] = {"key": stat_key(st), "sha384": sha384}
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self._records, sort_keys=True))
            os.replace(tmp, self.path)

    def forget(self, rel: str) -> None:
        with self._lock:
            self._records.pop(rel, None)


def _hash_prefix(fh: Any, have: int, digest: Any) -> int:
    fh.seek(0)
    size = 0
    while size < have and (block := fh.read(min(8 * _BLOCK, have - size))):
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
            if isinstance(exc, StagingPathError):  # planted in staging: retrying cannot help
                attempt = retries
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
    with os.fdopen(open_staged(staging, entry.path, os.O_RDWR | os.O_CREAT), "r+b") as out:
        have = os.fstat(out.fileno()).st_size
        if have > entry.size:
            have = 0
        if have:
            _hash_prefix(out, have, digest)
            if have == entry.size:
                if digest.hexdigest() != entry.sha384:
                    raise _Mismatch(digest.hexdigest())
                state.record(staging, entry.path, entry.sha384, os.fstat(out.fileno()))
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
            out.truncate(have)
            out.seek(have)
            sent = 0
            while block := response.read(_BLOCK):
                if have + sent + len(block) > entry.size:
                    raise _Mismatch(f"more than the {entry.size} bytes the manifest lists")
                out.write(block)
                digest.update(block)
                sent += len(block)
            out.flush()
            os.fsync(out.fileno())
            written = os.fstat(out.fileno())  # the file as hashed, not whatever the path names later
    if have + sent != entry.size:
        raise OSError(f"connection closed after {have + sent} of {entry.size} bytes")
    found = digest.hexdigest()
    if found != entry.sha384:
        raise _Mismatch(found)
    state.record(staging, entry.path, found, written)
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
