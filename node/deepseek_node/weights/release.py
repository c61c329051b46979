"""Node-side release management: stage, verify, (encrypt), publish, prune, roll back.

Stdlib + cryptography only; runs on nodes through ``deepseek-weights`` (weights_node.py).
Layout and naming come from ``node/deepseek_node/weights/plan.py``. The rules it keeps:

* nothing reaches ``<model>/<revision>`` before every file was hashed against the
  manifest (the files downloaded by ``weights_fetch`` were hashed while written and are
  trusted while ``lstat`` shows the very same inode, size, mtime and ctime; every other
  file is hashed here), and a file that changes after it was verified is not published;
* staging and a release hold regular files and directories only: a symlink, FIFO or device
  anywhere is refused, never followed, and receivers write nowhere but inside staging;
* an encrypted file is bound to ``<slug>, <revision>, <path>`` (crypto.py format 2), so a
  shard swapped with another or copied from another release does not decrypt;
* ``current`` changes only by ``rename(2)`` of a fresh symlink over it, so a reader sees
  the old release or the new one, never a mix; a failed placement leaves it alone;
* a key never appears in output: only its fingerprint does.
"""

from __future__ import annotations

import fcntl
import grp
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deepseek_node.weights.crypto import VERSION as CIPHER_FORMAT
from deepseek_node.weights.crypto import DEFAULT_CHUNK_SIZE, Key, binding, decrypt_file, encrypt_stream, load_key
from deepseek_node.weights.manifest import (
    MANIFEST_FILENAME,
    FileEntry,
    Manifest,
    ManifestError,
    check_path,
    hash_file,
    load_manifest,
    save_manifest,
    verify_directory,
)
from deepseek_node.weights.fetch import StagedState, open_staged, stat_key
from deepseek_node.weights.plan import (
    CIPHER_MANIFEST,
    CONTROL_NAMES,
    CURRENT_LINK,
    ENCRYPT_WORKERS,
    ENCRYPTED_SUFFIX,
    INCOMING_DIR,
    RELEASE_MARKER,
    STAGED_STATE,
    STAGING_DIR,
    ReleaseInfo,
    check_revision,
    encrypted_size,
    previous_release,
    releases_to_prune,
    tmpfs_size,
)

FILE_MODE, DIR_MODE = 0o640, 0o750


class ReleaseError(Exception):
    """Placement, rollback or decryption refused; ``exit_code`` 1 = integrity, 2 = other."""

    def __init__(self, message: str, exit_code: int = 2, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.detail = detail or {}


# -- reading state ------------------------------------------------------------------------


def read_marker(release: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((release / RELEASE_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and "manifest_sha384" in marker else None


def current_revision(mdir: Path) -> str | None:
    try:
        target = os.readlink(mdir / CURRENT_LINK)
    except OSError:
        return None
    return target if "/" not in target else None


def list_releases(mdir: Path) -> list[ReleaseInfo]:
    found = []
    if mdir.is_dir():
        for entry in sorted(mdir.iterdir()):
            if entry.is_dir() and not entry.is_symlink() and not entry.name.startswith("."):
                marker = read_marker(entry)
                if marker is not None:
                    found.append(ReleaseInfo(entry.name, float(marker.get("placed_at", 0)),
                                             str(marker["manifest_sha384"]), bool(marker.get("encrypted"))))
    return found


def _problems(result_dict: dict[str, Any]) -> list[str]:
    out = [f"missing {p}" for p in result_dict["missing"]]
    out += [f"unexpected file {p}" for p in result_dict["extra"]]
    out += [f"size of {m['path']}: expected {m['expected']}, found {m['found']}" for m in result_dict["size_mismatch"]]
    out += [f"sha384 of {m['path']}: expected {m['expected']}, found {m['found']}" for m in result_dict["hash_mismatch"]]
    if result_dict.get("manifest_mismatch"):
        out.append("manifest hash differs from the pinned one")
    return out


def release_binding(slug: str, revision: str, rel: str) -> bytes:
    """What the encrypted file of ``rel`` in release ``revision`` of ``slug`` is bound to."""
    return binding(slug, revision, rel)


def control_files(encrypted: bool) -> tuple[str, ...]:
    """The files ``place`` writes into a release besides the checkpoint's, at the top only."""
    return (MANIFEST_FILENAME, RELEASE_MARKER) + ((CIPHER_MANIFEST,) if encrypted else ())


def irregular_entries(root: Path) -> list[str]:
    """Everything under ``root`` that is neither a regular file nor a directory (symlinks
    included, never followed), as problems naming each path."""
    found = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        with os.scandir(root / rel_dir if rel_dir else root) as it:
            for entry in it:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_symlink():
                    found.append(f"{rel} is a symlink")
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(rel)
                elif not entry.is_file(follow_symlinks=False):
                    found.append(f"{rel} is not a regular file")
    return sorted(found)


def _verify_exact(root: Path, manifest: Manifest, control: tuple[str, ...], **kwargs: Any) -> dict[str, Any]:
    """``verify_directory`` that skips nothing but the ``control`` files at their exact paths."""
    doc = verify_directory(root, manifest, exclude=(), **kwargs).to_dict()
    doc["extra"] = [p for p in doc["extra"] if p not in control]
    doc["ok"] = not _problems(doc)
    return doc


def check_release(release: Path, *, full: bool = False, rate_limit: int | None = None,
                  workers: int | None = None) -> dict[str, Any]:
    """Compare a published release with its manifest; ``full`` re-hashes every byte.

    Plain release: the files against ``MANIFEST.dsw.json``. Encrypted release: the
    ``.dsenc`` files against ``MANIFEST.dsenc.json``, whose sizes must follow from the
    plaintext manifest (so neither manifest can be swapped alone). Any other file, anywhere
    (dot folders included), and any symlink or special file is a problem.
    """
    out: dict[str, Any] = {"release": str(release), "full": full, "problems": []}
    marker = read_marker(release)
    if marker is None:
        out["problems"].append(f"{RELEASE_MARKER} missing or unreadable (not a published release)")
        return {**out, "ok": False}
    try:
        manifest = load_manifest(release / MANIFEST_FILENAME)
        if manifest.manifest_sha384 != marker["manifest_sha384"]:
            out["problems"].append(
                f"manifest hash {manifest.manifest_sha384} differs from the placed one {marker['manifest_sha384']}")
        checked = manifest
        if marker.get("encrypted"):
            checked = load_manifest(release / CIPHER_MANIFEST)
            chunk = int(marker.get("chunk_size", DEFAULT_CHUNK_SIZE))
            expected = {e.path + ENCRYPTED_SUFFIX: encrypted_size(e.size, chunk) for e in manifest.files}
            if {e.path: e.size for e in checked.files} != expected:
                out["problems"].append(f"{CIPHER_MANIFEST} does not match {MANIFEST_FILENAME}")
    except ManifestError as exc:
        out["problems"].append(str(exc))
        return {**out, "ok": False}
    irregular = irregular_entries(release)
    if irregular:
        out["problems"] += [f"{p} (a release holds regular files only)" for p in irregular]
        return {**out, "ok": False}
    try:
        result = _verify_exact(release, checked, control_files(bool(marker.get("encrypted"))), full=full,
                               workers=workers, rate_limit_bytes_per_s=rate_limit)
    except ManifestError as exc:  # e.g. a file name no manifest can hold
        out["problems"].append(str(exc))
        return {**out, "ok": False}
    out["problems"] += _problems(result)
    out.update(manifest_sha384=manifest.manifest_sha384, encrypted=bool(marker.get("encrypted")),
               hashed_bytes=result["hashed_bytes"], ok=not out["problems"])
    return out


def staging_listing(staging: Path, hash_unverified: bool) -> dict[str, dict[str, Any]]:
    """Files in staging: size, and SHA-384 when recorded or (``hash_unverified``) hashed now."""
    if not staging.is_dir():
        return {}
    state = StagedState(staging)
    listing: dict[str, dict[str, Any]] = {}
    for rel in _walk_files(staging):
        try:
            st = os.lstat(staging / rel)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue  # a symlink or special file is no staged file (place refuses it)
        sha = state.sha_for(rel, st)
        if sha is None and hash_unverified:
            sha = hash_file(staging / rel)[1]
        listing[rel] = {"size": st.st_size, "sha384": sha}
    return listing


def _walk_files(root: Path) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in CONTROL_NAMES]
            filenames = [f for f in filenames if f not in CONTROL_NAMES and not f.endswith(".tmp")]
        for name in filenames:
            yield name if rel_dir == "." else f"{rel_dir}/{name}"


def _walk_all(root: Path) -> Iterator[str]:
    """Every regular file under ``root`` (nothing skipped; symlinks are refused before this)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if stat.S_ISREG(os.lstat(root / rel).st_mode):
                yield rel


def _lstat_all(staging: Path, manifest: Manifest) -> dict[str, os.stat_result]:
    """lstat of each manifest file present in staging (absent ones are reported missing later)."""
    found = {}
    for entry in manifest.files:
        try:
            found[entry.path] = os.lstat(staging / entry.path)
        except FileNotFoundError:
            pass
    return found


def key_status(key_path: Path) -> dict[str, Any]:
    if not key_path.exists():
        return {"present": False, "fingerprint": None, "error": None}
    try:
        return {"present": True, "fingerprint": load_key(f"file:{key_path}").fingerprint(), "error": None}
    except Exception as exc:  # KeyLoadError; its message never holds key material
        return {"present": True, "fingerprint": None, "error": str(exc)}


def status(models_dir: Path, slug: str, revision: str | None, *, hash_staged: bool, key_path: Path) -> dict[str, Any]:
    """Everything a deploy needs to plan, in one round trip (the ``WeightsStatus`` fact)."""
    mdir = models_dir / slug
    releases = {}
    for info in list_releases(mdir):
        marker = read_marker(mdir / info.revision) or {}
        releases[info.revision] = {k: marker.get(k) for k in ("manifest_sha384", "encrypted", "key_fingerprint", "placed_at")}
    doc: dict[str, Any] = {"current": current_revision(mdir), "releases": releases, "key": key_status(key_path)}
    if revision:
        release = mdir / revision
        target = check_release(release) if (release / RELEASE_MARKER).exists() else {"ok": False, "problems": ["absent"]}
        doc["target"] = {"revision": revision, "present": release.exists(), **target}
        staging = mdir / STAGING_DIR / revision
        # Hashing the staged files is only worth it when they will be needed.
        doc["staging"] = {} if target.get("ok") else staging_listing(staging, hash_staged)
    return doc


# -- changing state -----------------------------------------------------------------------


@contextmanager
def locked(mdir: Path) -> Iterator[None]:
    """One writer per model directory (two runs against one node must not interleave)."""
    mdir.mkdir(parents=True, exist_ok=True)
    with open(mdir / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ReleaseError(f"{mdir}: another deepseek-weights process holds the lock") from None
        yield


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def receive_tar(staging: Path, tar_path: Path) -> int:
    """Unpack a batch of whole files into staging (regular files with safe paths only).

    Each member must be a regular file with a safe relative path (``check_path``; also
    tarfile's ``data_filter`` where this Python has it) and is written through
    ``open_staged``: never outside staging, never through a symlink already there.
    """
    staging.mkdir(parents=True, exist_ok=True)
    data_filter = getattr(tarfile, "data_filter", None)  # Python 3.10.12+ / 3.11.4+
    count = 0
    with tarfile.open(tar_path) as tar:
        for member in tar:
            if not member.isfile():
                raise ReleaseError(f"{tar_path}: {member.name!r} is not a regular file")
            try:
                check_path(member.name)
                if data_filter is not None:
                    data_filter(member, str(staging))
            except (ValueError, tarfile.TarError) as exc:
                raise ReleaseError(f"{tar_path}: {member.name!r}: {exc}") from None
            source = tar.extractfile(member)
            if source is None:
                raise ReleaseError(f"{tar_path}: {member.name!r} has no data")
            try:
                fd = open_staged(staging, member.name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            except ValueError as exc:
                raise ReleaseError(f"{tar_path}: {member.name!r}: {exc}") from None
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, 8 * 1024 * 1024)
            count += 1
    tar_path.unlink()
    return count


def receive_part(staging: Path, rel: str, offset: int, part: Path) -> int:
    """Write ``part`` at ``offset`` of a staged file (cut to ``offset`` first: retries are safe).

    ``rel`` must be a safe relative path; the file is opened through ``open_staged``.
    """
    staging.mkdir(parents=True, exist_ok=True)
    target = staging / rel
    try:
        fd = open_staged(staging, rel, os.O_RDWR | (os.O_CREAT if offset == 0 else 0))
    except FileNotFoundError:
        raise ReleaseError(f"{target}: has 0 bytes, cannot append at {offset} (plan is stale; rerun)") from None
    except ValueError as exc:
        raise ReleaseError(str(exc)) from None
    with os.fdopen(fd, "r+b") as out, open(part, "rb") as src:
        have = os.fstat(out.fileno()).st_size
        if have < offset:
            raise ReleaseError(f"{target}: has {have} bytes, cannot append at {offset} (plan is stale; rerun)")
        out.truncate(offset)
        out.seek(offset)
        shutil.copyfileobj(src, out, 8 * 1024 * 1024)
        size = out.tell()
    part.unlink()
    return size


def switch_current(mdir: Path, revision: str) -> None:
    """Point ``current`` at ``revision`` atomically (``ln -sfn`` to a temp name + ``mv -T``)."""
    tmp = mdir / f".{CURRENT_LINK}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(revision, tmp)
    os.replace(tmp, mdir / CURRENT_LINK)
    _fsync_dir(mdir)


def prune(mdir: Path, keep: int) -> list[str]:
    removed = releases_to_prune(list_releases(mdir), current_revision(mdir), keep)
    for revision in removed:
        shutil.rmtree(mdir / revision)
    return removed


def _set_owner(path: str, uid: int, gid: int, mode: int) -> None:
    """chown + chmod through an fd opened without following a symlink: never touches a link's target."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ReleaseError(f"{path}: cannot be published (a symlink?): {exc.strerror}", 1) from None
    try:
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise ReleaseError(f"{path}: is not a regular file; not published", 1)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE)
    finally:
        os.close(fd)


def _own(root: Path, gid: int) -> None:
    uid = 0 if os.geteuid() == 0 else -1  # root:<group> on nodes; unchanged owner in unprivileged tests
    for dirpath, dirnames, filenames in os.walk(root):
        _set_owner(dirpath, uid, gid, DIR_MODE)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            _set_owner(os.path.join(dirpath, name), uid, gid, FILE_MODE)


class _HashingWriter:
    def __init__(self, out: Any) -> None:
        self.out, self.digest, self.size = out, hashlib.sha384(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.out.write(data)


def _check_unchanged(path: Path, st: os.stat_result, verified: os.stat_result) -> None:
    if stat_key(st) != stat_key(verified):
        raise ReleaseError(f"{path}: changed after it was verified; not published (run again)", 1)


def _encrypt_one(staging: Path, enc: Path, entry: FileEntry, key: Key, bind: bytes,
                 verified: os.stat_result) -> FileEntry:
    """Seal the staged file that was verified (``verified``: its lstat then) for its place ``bind``."""
    dst = enc / (entry.path + ENCRYPTED_SUFFIX)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(open_staged(staging, entry.path, os.O_RDONLY), "rb") as fin, open(dst, "wb") as fout:
        _check_unchanged(staging / entry.path, os.fstat(fin.fileno()), verified)
        writer = _HashingWriter(fout)
        encrypt_stream(fin, writer, key, DEFAULT_CHUNK_SIZE, bind=bind)  # type: ignore[arg-type]
        _check_unchanged(staging / entry.path, os.fstat(fin.fileno()), verified)  # not written to meanwhile
        fout.flush()
        os.fsync(fout.fileno())
    (staging / entry.path).unlink()  # plaintext leaves the disk as soon as it is sealed
    return FileEntry(entry.path + ENCRYPTED_SUFFIX, writer.size, writer.digest.hexdigest())


def _encrypt_staging(staging: Path, enc: Path, manifest: Manifest, key: Key, slug: str,
                     verified: dict[str, os.stat_result]) -> Manifest:
    shutil.rmtree(enc, ignore_errors=True)
    enc.mkdir(mode=0o700)
    # Largest first; ENCRYPT_WORKERS files at once (what space_needed() reserves room for).
    ordered = sorted(manifest.files, key=lambda e: (-e.size, e.path))

    def one(e: FileEntry) -> FileEntry:
        return _encrypt_one(staging, enc, e, key, release_binding(slug, manifest.revision, e.path), verified[e.path])

    with ThreadPoolExecutor(max_workers=ENCRYPT_WORKERS, thread_name_prefix="encrypt") as pool:
        entries = list(pool.map(one, ordered))
    cipher = Manifest(model=manifest.model, revision=manifest.revision, files=tuple(entries),
                      created_by=manifest.created_by)
    save_manifest(cipher, enc / CIPHER_MANIFEST)
    return cipher


def place(
    models_dir: Path, slug: str, revision: str, *, expect_sha384: str | None = None,
    key_source: str | None = None, keep: int = 2, workers: int | None = None, group: str = "deepseek",
) -> dict[str, Any]:
    """Verify the staged release, publish it, switch ``current`` to it and prune old ones."""
    check_revision(revision)
    start = time.monotonic()
    mdir = models_dir / slug
    staging = mdir / STAGING_DIR / revision
    release = mdir / revision
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise ReleaseError(f"group {group!r} does not exist (the base role creates it)") from None
    key = load_key(key_source) if key_source else None  # before anything is written
    with locked(mdir):
        previous = current_revision(mdir)
        marker = read_marker(release)
        if marker is not None:
            wanted = expect_sha384 or marker["manifest_sha384"]
            if marker["manifest_sha384"] != wanted or bool(marker.get("encrypted")) != bool(key):
                raise ReleaseError(
                    f"{release}: already published with manifest {marker['manifest_sha384']} "
                    f"(encrypted={bool(marker.get('encrypted'))}); a different release needs a new revision")
            checked = check_release(release)
            if not checked["ok"]:
                raise ReleaseError(f"{release}: published release fails its check: {'; '.join(checked['problems'])}",
                                   1, checked)
            switched = previous != revision
            if switched:
                switch_current(mdir, revision)
            return {"ok": True, "release": str(release), "previous": previous, "switched": switched,
                    "transferred": False, "pruned": prune(mdir, keep), "seconds": round(time.monotonic() - start, 3)}
        if release.exists():
            raise ReleaseError(f"{release}: exists but is not a published release (no {RELEASE_MARKER}); remove it")
        shutil.rmtree(staging / INCOMING_DIR, ignore_errors=True)
        irregular = irregular_entries(staging) if staging.is_dir() else []
        if irregular:
            raise ReleaseError(f"{staging}: {'; '.join(irregular)}: staging must hold regular files only "
                               f"(remove them and fetch or push again); current release unchanged ({previous})", 1)
        manifest = load_manifest(staging / MANIFEST_FILENAME)
        if expect_sha384 and manifest.manifest_sha384 != expect_sha384:
            raise ReleaseError(f"manifest hash {manifest.manifest_sha384} differs from the pinned {expect_sha384}", 1)
        if manifest.revision != revision:
            raise ReleaseError(f"manifest is for revision {manifest.revision!r}, not {revision!r}", 1)
        wanted = set(manifest.by_path()) | {MANIFEST_FILENAME, STAGED_STATE}
        for rel in [r for r in _walk_all(staging) if r not in wanted]:
            (staging / rel).unlink()  # leftovers (temp files, stray uploads) are never published
        # Each file's lstat before it is hashed: a record, or a hash, holds for that inode only.
        verified = _lstat_all(staging, manifest)
        state = StagedState(staging)
        expected = manifest.by_path()
        trusted = tuple(p for p, st in verified.items() if state.sha_for(p, st) == expected[p].sha384)
        todo = Manifest(model=manifest.model, revision=revision, created_by=manifest.created_by,
                        files=tuple(e for e in manifest.files if e.path not in trusted))
        result = verify_directory(staging, todo, full=True, workers=workers,
                                  exclude=(MANIFEST_FILENAME, STAGED_STATE) + trusted)
        if not result.ok:
            for bad in (*result.size_mismatch, *result.hash_mismatch):
                (staging / bad.path).unlink(missing_ok=True)  # the next run fetches it again
                state.forget(bad.path)
            detail = result.to_dict()
            raise ReleaseError(f"staged files do not match the manifest: {'; '.join(_problems(detail))}; "
                               f"current release unchanged ({previous})", 1, detail)
        for entry in todo.files:
            state.record(staging, entry.path, entry.sha384, verified[entry.path])
        source = staging
        if key is not None:
            source = mdir / STAGING_DIR / f"{revision}.enc"
            _encrypt_staging(staging, source, manifest, key, slug, verified)
            save_manifest(manifest, source / MANIFEST_FILENAME)
        (source / STAGED_STATE).unlink(missing_ok=True)  # staging bookkeeping has no place in a release
        doc = {"format": 1, "model": manifest.model, "revision": revision,
               "manifest_sha384": manifest.manifest_sha384, "encrypted": key is not None,
               "key_fingerprint": key.fingerprint() if key else None, "chunk_size": DEFAULT_CHUNK_SIZE,
               "files": len(manifest.files), "bytes": manifest.total_size, "placed_at": time.time()}
        if key is not None:
            doc["cipher_format"] = CIPHER_FORMAT
        (source / RELEASE_MARKER).write_text(json.dumps(doc, sort_keys=True, indent=1) + "\n")
        # The tree as it will be published must pass its own check: no stray file, no link.
        checked = check_release(source)
        if not checked["ok"]:
            raise ReleaseError(f"{source}: not published: {'; '.join(checked['problems'])}; "
                               f"current release unchanged ({previous})", 1, checked)
        if key is None:
            for rel, st in verified.items():
                _check_unchanged(staging / rel, os.lstat(staging / rel), st)
        _own(source, gid)
        _fsync_dir(source)
        os.rename(source, release)
        _fsync_dir(mdir)
        shutil.rmtree(staging, ignore_errors=True)
        switch_current(mdir, revision)
        pruned = prune(mdir, keep)
    return {"ok": True, "release": str(release), "previous": previous, "switched": True, "transferred": True,
            "encrypted": key is not None, "bytes": manifest.total_size, "hashed_bytes": result.hashed_bytes,
            "pruned": pruned, "seconds": round(time.monotonic() - start, 3)}


def rollback(models_dir: Path, slug: str) -> dict[str, Any]:
    mdir = models_dir / slug
    with locked(mdir):
        current = current_revision(mdir)
        target = previous_release(list_releases(mdir), current)
        if target is None:
            raise ReleaseError(f"{mdir}: no release placed before {current!r} to roll back to")
        checked = check_release(mdir / target)
        if not checked["ok"]:
            raise ReleaseError(f"{mdir / target}: fails its check, not switching: {'; '.join(checked['problems'])}", 1)
        switch_current(mdir, target)
    return {"ok": True, "from": current, "to": target}


def check_current(models_dir: Path, slug: str, *, full: bool = False, rate_limit: int | None = None,
                  decrypted: Path | None = None, revision: str | None = None) -> dict[str, Any]:
    """Check the current release; ``revision``: the one the caller (the engine's unit) is set up
    to load, which must be current: a unit rendered for another release refuses to start."""
    mdir = models_dir / slug
    current = current_revision(mdir)
    if current is None:
        return {"ok": False, "model": slug, "problems": [f"{mdir / CURRENT_LINK}: no current release"]}
    if revision is not None and revision != current:
        return {"ok": False, "model": slug, "revision": current, "problems": [
            f"{mdir / CURRENT_LINK}: is release {current!r}, the engine is set up for {revision!r}: "
            "publish that release first (deploy/weights.py), or deploy the engine for the current one"]}
    out = {"model": slug, "revision": current, **check_release(mdir / current, full=full, rate_limit=rate_limit)}
    if decrypted is not None and out["ok"]:
        manifest = load_manifest(mdir / current / MANIFEST_FILENAME)
        marker = read_marker(decrypted) or {}
        problems = _problems(_verify_exact(decrypted, manifest, (RELEASE_MARKER,), full=False))
        if marker.get("manifest_sha384") != manifest.manifest_sha384:
            problems.append(f"{decrypted}: holds another release (or none)")
        out["problems"] += [f"decrypted: {p}" for p in problems]
        out["ok"] = not out["problems"]
    return out


def models_with_current(models_dir: Path) -> list[str]:
    if not models_dir.is_dir():
        return []
    return sorted(d.name for d in models_dir.iterdir() if (d / CURRENT_LINK).is_symlink())


# -- decryption into memory ---------------------------------------------------------------


def unmount(target: Path) -> bool:
    if os.path.ismount(target):
        subprocess.run(["umount", str(target)], check=True, capture_output=True)
        return True
    return False


def decrypt_current(models_dir: Path, slug: str, key_source: str, target: Path, *, group: str = "deepseek",
                    full: bool = False, noswap: bool = False) -> dict[str, Any]:
    """Mount a tmpfs sized from the manifest at ``target`` and decrypt ``current`` into it;
    ``noswap`` (Linux >= 6.4) keeps its pages out of swap (a remount cannot add it)."""
    mdir = models_dir / slug
    current = current_revision(mdir)
    if current is None:
        raise ReleaseError(f"{mdir / CURRENT_LINK}: no current release")
    release = mdir / current
    marker = read_marker(release) or {}
    if not marker.get("encrypted"):
        return {"ok": True, "encrypted": False, "path": str(mdir / CURRENT_LINK)}
    if marker.get("cipher_format") != CIPHER_FORMAT:
        raise ReleaseError(
            f"{release}: encrypted with format {marker.get('cipher_format', 1)}, which does not bind files to "
            f"their place (a swapped or copied shard would decrypt): place it again to re-encrypt it "
            f"(a new revision, or remove {release} first); nothing decrypted", 1)
    key = load_key(key_source)
    if key.fingerprint() != marker.get("key_fingerprint"):
        raise ReleaseError(f"wrong key: fingerprint {key.fingerprint()}, but {release} was encrypted with "
                           f"{marker.get('key_fingerprint')}; nothing decrypted")
    checked = check_release(release)
    if not checked["ok"]:
        raise ReleaseError(f"{release}: {'; '.join(checked['problems'])}; nothing decrypted", 1, checked)
    manifest = load_manifest(release / MANIFEST_FILENAME)
    if os.path.ismount(target) and (read_marker(target) or {}).get("manifest_sha384") == manifest.manifest_sha384:
        return {"ok": True, "encrypted": True, "path": str(target), "revision": current, "already": True}
    unmount(target)
    gid = grp.getgrnam(group).gr_gid
    target.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    size = tmpfs_size(manifest)
    options = f"size={size},mode=0750,uid=0,gid={gid},nosuid,nodev,noexec" + (",noswap" if noswap else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], check=True, capture_output=True)
    start = time.monotonic()
    try:
        for entry in manifest.files:
            dst = target / entry.path
            dst.parent.mkdir(parents=True, exist_ok=True)
            # Bound to where it was found: a shard swapped or copied from elsewhere fails here.
            decrypt_file(release / (entry.path + ENCRYPTED_SUFFIX), dst, key, mode=FILE_MODE,
                         bind=release_binding(slug, current, entry.path))
        result = _verify_exact(target, manifest, (), full=full)
        if not result["ok"]:
            raise ReleaseError(f"decrypted files differ from the manifest: {'; '.join(_problems(result))}",
                               1, result)
        (target / RELEASE_MARKER).write_text(json.dumps({**marker, "source": str(release)}, sort_keys=True) + "\n")
        _own(target, gid)
    except BaseException:
        unmount(target)  # nothing half-decrypted stays readable
        raise
    return {"ok": True, "encrypted": True, "path": str(target), "revision": current, "tmpfs_bytes": size,
            "noswap": noswap, "bytes": manifest.total_size, "seconds": round(time.monotonic() - start, 3)}
