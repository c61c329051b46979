"""Integrity manifest for a model checkpoint directory.

Pure module (stdlib only, no pyinfra): the controller builds the manifest
after download and the node-side tool verifies against it.

On-disk format (JSON, UTF-8; written indented, hashed canonically)::

    {
      "format": 1,
      "algorithm": "sha384",
      "model": "deepseek-ai/DeepSeek-V3",
      "revision": "<commit or tag>",
      "created_by": "deepseek-infra 0.1.0",
      "files": [{"path": "config.json", "size": 1234, "sha384": "<96 hex>"}, ...],
      "manifest_sha384": "<96 hex>"
    }

``files`` is sorted by path; paths are relative POSIX paths without ``.``,
``..`` or empty components.  ``manifest_sha384`` is the SHA-384 of the
canonical serialisation (``sort_keys=True``, ``separators=(",", ":")``,
``ensure_ascii=True``) of every other field, so whitespace and key order on
disk do not matter but any change to a value does.  There is no timestamp:
the same bytes always give the same manifest hash, which a controller can pin.

Symlinks are never recorded.  One that resolves inside the directory is
skipped (its target is recorded under its own path); one that resolves
outside is refused with ``ManifestError``, because it would let a checkpoint
pull in (or a tamperer substitute) files the manifest does not cover.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "FORMAT_VERSION",
    "MANIFEST_FILENAME",
    "FileEntry",
    "Manifest",
    "ManifestError",
    "Mismatch",
    "VerifyResult",
    "build_manifest",
    "check_path",
    "hash_file",
    "load_manifest",
    "save_manifest",
    "verify_directory",
]

FORMAT_VERSION: Final[int] = 1
ALGORITHM: Final[str] = "sha384"
DEFAULT_BLOCK_SIZE: Final[int] = 8 * 1024 * 1024
# Default name inside the checkpoint directory; excluded from its own listing.
MANIFEST_FILENAME: Final[str] = "MANIFEST.dsw.json"
DEFAULT_EXCLUDE: Final[tuple[str, ...]] = (MANIFEST_FILENAME,)

_HEX384 = re.compile(r"^[0-9a-f]{96}$")
_TOP_KEYS = frozenset({"format", "algorithm", "model", "revision", "created_by", "files", "manifest_sha384"})
_FILE_KEYS = frozenset({"path", "size", "sha384"})
# Smallest read when rate limited: keeps syscall overhead negligible.
_MIN_LIMITED_BLOCK = 64 * 1024


class ManifestError(ValueError):
    """A manifest is malformed or tampered with, or a directory cannot be listed safely."""


def _tool_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return f"deepseek-infra {version('deepseek-infra')}"
    except PackageNotFoundError:  # running from a bare copy on a node
        return "deepseek-infra unknown"


def check_path(path: object) -> str:
    """Return ``path`` if it is a safe relative POSIX path, else raise ``ManifestError``."""
    if not isinstance(path, str) or not path:
        raise ManifestError(f"file path must be a non-empty string, found {path!r}")
    if path.startswith("/"):
        raise ManifestError(f"file path must be relative, found {path!r}")
    if "\x00" in path or "\\" in path:
        raise ManifestError(f"file path must not contain NUL or backslash, found {path!r}")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ManifestError(f"file path must not contain '..', '.' or empty components, found {path!r}")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise ManifestError(f"file path is not valid UTF-8: {path!r}") from None
    return path


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One regular file of the checkpoint."""

    path: str
    size: int
    sha384: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha384": self.sha384}


@dataclass(frozen=True, slots=True)
class Manifest:
    """A checkpoint's file list; ``manifest_sha384`` is derived, never stored separately."""

    model: str
    revision: str
    files: tuple[FileEntry, ...]
    created_by: str = field(default_factory=_tool_version)

    def __post_init__(self) -> None:
        # Sorted and unique so that the same directory always serialises the same way.
        files = tuple(sorted(self.files, key=lambda e: e.path))
        seen: set[str] = set()
        for entry in files:
            check_path(entry.path)
            if entry.path in seen:
                raise ManifestError(f"duplicate file path {entry.path!r}")
            seen.add(entry.path)
        object.__setattr__(self, "files", files)

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.files)

    def by_path(self) -> dict[str, FileEntry]:
        return {e.path: e for e in self.files}

    def _body(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "algorithm": ALGORITHM,
            "model": self.model,
            "revision": self.revision,
            "created_by": self.created_by,
            "files": [e.to_dict() for e in self.files],
        }

    @property
    def manifest_sha384(self) -> str:
        return _body_hash(self._body())

    def to_json(self) -> str:
        doc = self._body()
        doc["manifest_sha384"] = _body_hash(doc)
        return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and check a manifest; raises ``ManifestError`` on bad schema or hash mismatch."""
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"manifest is not valid JSON: {exc}") from None
        except RecursionError:  # found by tests/unit/deepseek_node/weights/test_fuzz_manifest.py
            raise ManifestError("manifest is nested too deeply to be one this tool wrote") from None
        if not isinstance(doc, dict):
            raise ManifestError(f"manifest must be a JSON object, found {type(doc).__name__}")
        keys = set(doc)
        if keys != _TOP_KEYS:
            raise ManifestError(
                f"manifest keys: missing {sorted(_TOP_KEYS - keys)}, unexpected {sorted(keys - _TOP_KEYS)}"
            )
        if type(doc["format"]) is not int or doc["format"] != FORMAT_VERSION:
            raise ManifestError(f"manifest format: expected {FORMAT_VERSION}, found {doc['format']!r}")
        if doc["algorithm"] != ALGORITHM:
            raise ManifestError(f"manifest algorithm: expected {ALGORITHM!r}, found {doc['algorithm']!r}")
        for name in ("model", "revision", "created_by"):
            if not isinstance(doc[name], str):
                raise ManifestError(f"manifest {name}: expected a string, found {doc[name]!r}")
        if not isinstance(doc["files"], list):
            raise ManifestError("manifest files: expected a list")
        entries = [_parse_entry(i, raw) for i, raw in enumerate(doc["files"])]
        recorded = doc.pop("manifest_sha384")
        if not isinstance(recorded, str) or not _HEX384.fullmatch(recorded):
            raise ManifestError(f"manifest_sha384: expected 96 lowercase hex characters, found {recorded!r}")
        computed = _body_hash(doc)
        if not hmac.compare_digest(recorded, computed):
            raise ManifestError(
                f"manifest self-hash mismatch: recorded {recorded}, computed {computed} "
                "(the manifest was edited or corrupted)"
            )
        manifest = cls(model=doc["model"], revision=doc["revision"], files=tuple(entries), created_by=doc["created_by"])
        # The hash covers list order too: an unsorted list cannot come from to_json().
        if manifest.manifest_sha384 != computed:
            raise ManifestError("manifest files are not sorted by path (not written by this tool)")
        return manifest


def _parse_entry(index: int, raw: object) -> FileEntry:
    if not isinstance(raw, dict) or set(raw) != _FILE_KEYS:
        raise ManifestError(f"manifest files[{index}]: expected an object with keys {sorted(_FILE_KEYS)}")
    path = check_path(raw["path"])
    size = raw["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"manifest files[{index}] {path!r}: size must be an integer >= 0, found {size!r}")
    digest = raw["sha384"]
    if not isinstance(digest, str) or not _HEX384.fullmatch(digest):
        raise ManifestError(f"manifest files[{index}] {path!r}: sha384 must be 96 lowercase hex characters")
    return FileEntry(path=path, size=size, sha384=digest)


def _body_hash(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha384(canonical.encode("ascii")).hexdigest()


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check a manifest file (see ``Manifest.from_json``)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc.strerror}") from None
    try:
        return Manifest.from_json(data)
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}") from None


def save_manifest(manifest: Manifest, path: str | os.PathLike[str]) -> None:
    """Write the manifest atomically (temp file + rename), so a reader never sees half of it."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(manifest.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _TokenBucket:
    """Shared by all hashing threads so the limit holds for the whole verify, not per file."""

    def __init__(self, rate: float, capacity: float) -> None:
        self._rate = float(rate)
        self._capacity = float(capacity)
        # Start empty: a re-hash timer must not open with a full-speed burst.
        self._tokens = 0.0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def consume(self, n: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
            self._last = now
            # Go into debt and sleep it off: later callers see the debt and wait longer.
            self._tokens -= n
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


def hash_file(
    path: str | os.PathLike[str],
    block_size: int = DEFAULT_BLOCK_SIZE,
    throttle: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """Stream ``path`` through SHA-384 in ``block_size`` reads; return ``(bytes read, hex digest)``.

    A symlink is not followed (``OSError`` ELOOP): what is hashed is the file at ``path``.
    """
    digest = hashlib.sha384()
    buf = bytearray(block_size)
    view = memoryview(buf)
    size = 0
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            if throttle is not None:
                throttle(n)
            digest.update(view[:n])  # releases the GIL for large buffers
            size += n
    return size, digest.hexdigest()


def _excluded(rel: str, exclude: Iterable[str]) -> bool:
    return any(rel == ex or rel.startswith(ex.rstrip("/") + "/") for ex in exclude)


def _scan(directory: Path, exclude: tuple[str, ...]) -> dict[str, int]:
    """Map relative POSIX path -> size for every regular file; see the module doc for symlinks."""
    if not directory.is_dir():
        raise ManifestError(f"{directory}: not a directory")
    root_real = os.path.realpath(directory)
    found: dict[str, int] = {}
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        with os.scandir(directory / rel_dir if rel_dir else directory) as it:
            for entry in it:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if _excluded(rel, exclude):
                    continue
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if target != root_real and not target.startswith(root_real + os.sep):
                        raise ManifestError(
                            f"{directory}: symlink {rel!r} points outside the directory (to {target})"
                        )
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append(rel)
                elif entry.is_file(follow_symlinks=False):
                    found[check_path(rel)] = entry.stat(follow_symlinks=False).st_size
                else:
                    raise ManifestError(f"{directory}: {rel!r} is not a regular file, directory or symlink")
    return found


def _hash_many(
    directory: Path,
    sizes: Mapping[str, int],
    workers: int | None,
    block_size: int,
    throttle: Callable[[int], None] | None = None,
) -> dict[str, tuple[int, str]]:
    if not sizes:
        return {}
    workers = max(1, min(workers or os.cpu_count() or 1, len(sizes)))
    # Largest first, so one huge file does not start last and dominate the wall time.
    ordered = sorted(sizes, key=lambda p: (-sizes[p], p))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sha384") as pool:
        results = pool.map(lambda p: hash_file(directory / p, block_size, throttle), ordered)
        return dict(zip(ordered, results, strict=True))


def build_manifest(
    directory: str | os.PathLike[str],
    model: str,
    revision: str,
    workers: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    *,
    exclude: Iterable[str] = DEFAULT_EXCLUDE,
    created_by: str | None = None,
) -> Manifest:
    """Hash every regular file under ``directory`` in parallel and return its manifest.

    + directory: the checkpoint directory.
    + model: the model id, e.g. ``"deepseek-ai/DeepSeek-V3"``.
    + revision: the commit or tag the files came from.
    + workers: hashing threads; default ``os.cpu_count()``.
    + block_size: bytes per read; files are streamed, never read whole.
    + exclude: relative paths (files or directory prefixes) to leave out.
    + created_by: tool name and version; default this package's.
    """
    root = Path(directory)
    sizes = _scan(root, tuple(exclude))
    hashed = _hash_many(root, sizes, workers, block_size)
    files = tuple(FileEntry(path=p, size=size, sha384=digest) for p, (size, digest) in hashed.items())
    return Manifest(model=model, revision=revision, files=files, created_by=created_by or _tool_version())


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A file whose size or hash differs from the manifest."""

    path: str
    expected: int | str
    found: int | str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "expected": self.expected, "found": self.found}


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of ``verify_directory``; ``ok`` is true only when nothing differs."""

    full: bool
    manifest_sha384: str
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    size_mismatch: tuple[Mismatch, ...] = ()
    hash_mismatch: tuple[Mismatch, ...] = ()
    # Set only when the caller pinned a manifest hash and the manifest is another one.
    manifest_mismatch: bool = False
    hashed_bytes: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.size_mismatch or self.hash_mismatch or self.manifest_mismatch)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "full": self.full,
            "manifest_sha384": self.manifest_sha384,
            "manifest_mismatch": self.manifest_mismatch,
            "missing": list(self.missing),
            "extra": list(self.extra),
            "size_mismatch": [m.to_dict() for m in self.size_mismatch],
            "hash_mismatch": [m.to_dict() for m in self.hash_mismatch],
            "hashed_bytes": self.hashed_bytes,
        }


def verify_directory(
    directory: str | os.PathLike[str],
    manifest: Manifest,
    full: bool = True,
    workers: int | None = None,
    *,
    rate_limit_bytes_per_s: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    exclude: Iterable[str] = DEFAULT_EXCLUDE,
    expected_manifest_sha384: str | None = None,
) -> VerifyResult:
    """Compare ``directory`` with ``manifest``.

    + full: re-hash every file whose size matches.  ``False`` compares the file
      list and sizes only (the fast check at engine start): it catches missing,
      extra, truncated and grown files, but NOT a same-size byte flip.
    + workers: hashing threads; default ``os.cpu_count()``.
    + rate_limit_bytes_per_s: cap on total read throughput across all threads,
      so a periodic re-hash does not starve the serving engine of I/O.
    + exclude: relative paths left out of the comparison (the manifest file itself by default).
    + expected_manifest_sha384: the hash the controller pinned; a different manifest fails.
    """
    root = Path(directory)
    sizes = _scan(root, tuple(exclude))
    expected = manifest.by_path()
    missing = tuple(sorted(set(expected) - set(sizes)))
    extra = tuple(sorted(set(sizes) - set(expected)))
    size_bad = [
        Mismatch(p, expected[p].size, sizes[p])
        for p in sorted(expected.keys() & sizes.keys())
        if sizes[p] != expected[p].size
    ]
    hash_bad: list[Mismatch] = []
    hashed_bytes = 0
    if full:
        to_hash = {p: size for p, size in sizes.items() if p in expected and size == expected[p].size}
        throttle = None
        if rate_limit_bytes_per_s is not None:
            if rate_limit_bytes_per_s <= 0:
                raise ValueError(f"rate_limit_bytes_per_s must be > 0, found {rate_limit_bytes_per_s}")
            # Smaller reads under a limit smooth the I/O instead of 8 MiB bursts.
            block_size = max(_MIN_LIMITED_BLOCK, min(block_size, rate_limit_bytes_per_s // 4))
            throttle = _TokenBucket(rate_limit_bytes_per_s, max(block_size, rate_limit_bytes_per_s)).consume
        for path, (size, digest) in sorted(_hash_many(root, to_hash, workers, block_size, throttle).items()):
            hashed_bytes += size
            if size != expected[path].size:  # changed while we were reading
                size_bad.append(Mismatch(path, expected[path].size, size))
            elif not hmac.compare_digest(digest, expected[path].sha384):
                hash_bad.append(Mismatch(path, expected[path].sha384, digest))
    pinned_bad = expected_manifest_sha384 is not None and expected_manifest_sha384 != manifest.manifest_sha384
    return VerifyResult(
        full=full,
        manifest_sha384=manifest.manifest_sha384,
        missing=missing,
        extra=extra,
        size_mismatch=tuple(sorted(size_bad, key=lambda m: m.path)),
        hash_mismatch=tuple(hash_bad),
        manifest_mismatch=pinned_bad,
        hashed_bytes=hashed_bytes,
    )
