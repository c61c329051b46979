"""Node-side release management: stage, verify, (encrypt), publish, prune, roll back.

Stdlib + cryptography only; runs on nodes through ``deepseek-weights`` (weights_node.py).
Layout and naming come from ``node/deepseek_node/weights/plan.py``. The rules it keeps:

* nothing reaches ``<model>/<revision>`` before every file was hashed against the
  manifest (the files downloaded by ``weights_fetch`` were hashed while written and are
  trusted while their size and mtime are unchanged; every other file is hashed here);
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
import subprocess
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deepseek_node.weights.crypto import DEFAULT_CHUNK_SIZE, Key, decrypt_file, encrypt_stream, load_key
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
from deepseek_node.weights.fetch import StagedState
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


def check_release(release: Path, *, full: bool = False, rate_limit: int | None = None,
                  workers: int | None = None) -> dict[str, Any]:
    """Compare a published release with its manifest; ``full`` re-hashes every byte.

    Plain release: the files against ``MANIFEST.dsw.json``. Encrypted release: the
    ``.dsenc`` files against ``MANIFEST.dsenc.json``, whose sizes must follow from the
    plaintext manifest (so neither manifest can be swapped alone).
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
    result = verify_directory(release, checked, full=full, workers=workers,
                              rate_limit_bytes_per_s=rate_limit, exclude=CONTROL_NAMES)
    out["problems"] += _problems(result.to_dict())
    out.update(manifest_sha384=manifest.manifest_sha384, encrypted=bool(marker.get("encrypted")),
               hashed_bytes=result.hashed_bytes, ok=not out["problems"])
    return out


def staging_listing(staging: Path, hash_unverified: bool) -> dict[str, dict[str, Any]]:
    """Files in staging: size, and SHA-384 when recorded or (``hash_unverified``) hashed now."""
    if not staging.is_dir():
        return {}
    state = StagedState(staging)
    listing: dict[str, dict[str, Any]] = {}
    for rel in _walk_files(staging):
        sha = state.verified_sha(staging, rel)
        if sha is None and hash_unverified:
            sha = hash_file(staging / rel)[1]
        listing[rel] = {"size": (staging / rel).stat().st_size, "sha384": sha}
    return listing


def _walk_files(root: Path) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in CONTROL_NAMES]
            filenames = [f for f in filenames if f not in CONTROL_NAMES and not f.endswith(".tmp")]
        for name in filenames:
            yield name if rel_dir == "." else f"{rel_dir}/{name}"


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
    """Unpack a batch of whole files into staging (regular files with safe paths only)."""
    count = 0
    with tarfile.open(tar_path) as tar:
        for member in tar:
            if not member.isfile():
                raise ReleaseError(f"{tar_path}: {member.name!r} is not a regular file")
            target = staging / check_path(member.name)  # relative, no '..': stays inside staging
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                raise ReleaseError(f"{tar_path}: {member.name!r} has no data")
            with open(target, "wb") as out:
                shutil.copyfileobj(source, out, 8 * 1024 * 1024)
            count += 1
    tar_path.unlink()
    return count


def receive_part(staging: Path, rel: str, offset: int, part: Path) -> int:
    """Write ``part`` at ``offset`` of a staged file (cut to ``offset`` first: retries are safe)."""
    target = staging / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    have = target.stat().st_size if target.exists() else 0
    if have < offset:
        raise ReleaseError(f"{target}: has {have} bytes, cannot append at {offset} (plan is stale; rerun)")
    with open(target, "r+b" if target.exists() else "wb") as out, open(part, "rb") as src:
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


def _own(root: Path, gid: int) -> None:
    uid = 0 if os.geteuid() == 0 else -1  # root:<group> on nodes; unchanged owner in unprivileged tests
    for dirpath, _dirs, filenames in os.walk(root):
        os.chown(dirpath, uid, gid)
        os.chmod(dirpath, DIR_MODE)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, gid)
            os.chmod(os.path.join(dirpath, name), FILE_MODE)


class _HashingWriter:
    def __init__(self, out: Any) -> None:
        self.out, self.digest, self.size = out, hashlib.sha384(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.out.write(data)


def _encrypt_one(staging: Path, enc: Path, entry: FileEntry, key: Key) -> FileEntry:
    dst = enc / (entry.path + ENCRYPTED_SUFFIX)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(staging / entry.path, "rb") as fin, open(dst, "wb") as fout:
        writer = _HashingWriter(fout)
        encrypt_stream(fin, writer, key, DEFAULT_CHUNK_SIZE)  # type: ignore[arg-type]
        fout.flush()
        os.fsync(fout.fileno())
    (staging / entry.path).unlink()  # plaintext leaves the disk as soon as it is sealed
    return FileEntry(entry.path + ENCRYPTED_SUFFIX, writer.size, writer.digest.hexdigest())


def _encrypt_staging(staging: Path, enc: Path, manifest: Manifest, key: Key) -> Manifest:
    shutil.rmtree(enc, ignore_errors=True)
    enc.mkdir(mode=0o700)
    # Largest first; ENCRYPT_WORKERS files at once (what space_needed() reserves room for).
    ordered = sorted(manifest.files, key=lambda e: (-e.size, e.path))
    with ThreadPoolExecutor(max_workers=ENCRYPT_WORKERS, thread_name_prefix="encrypt") as pool:
        entries = list(pool.map(lambda e: _encrypt_one(staging, enc, e, key), ordered))
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
        manifest = load_manifest(staging / MANIFEST_FILENAME)
        if expect_sha384 and manifest.manifest_sha384 != expect_sha384:
            raise ReleaseError(f"manifest hash {manifest.manifest_sha384} differs from the pinned {expect_sha384}", 1)
        if manifest.revision != revision:
            raise ReleaseError(f"manifest is for revision {manifest.revision!r}, not {revision!r}", 1)
        wanted_paths = set(manifest.by_path())
        for rel in list(_walk_files(staging)):
            if rel not in wanted_paths:
                (staging / rel).unlink()
        shutil.rmtree(staging / INCOMING_DIR, ignore_errors=True)
        state = StagedState(staging)
        trusted = tuple(e.path for e in manifest.files if state.verified_sha(staging, e.path) == e.sha384)
        todo = Manifest(model=manifest.model, revision=revision, created_by=manifest.created_by,
                        files=tuple(e for e in manifest.files if e.path not in trusted))
        result = verify_directory(staging, todo, full=True, workers=workers, exclude=CONTROL_NAMES + trusted)
        if not result.ok:
            for bad in (*result.size_mismatch, *result.hash_mismatch):
                (staging / bad.path).unlink(missing_ok=True)  # the next run fetches it again
                state.forget(bad.path)
            detail = result.to_dict()
            raise ReleaseError(f"staged files do not match the manifest: {'; '.join(_problems(detail))}; "
                               f"current release unchanged ({previous})", 1, detail)
        for entry in todo.files:
            state.record(staging, entry.path, entry.sha384)
        source = staging
        if key is not None:
            source = mdir / STAGING_DIR / f"{revision}.enc"
            _encrypt_staging(staging, source, manifest, key)
            save_manifest(manifest, source / MANIFEST_FILENAME)
        (source / STAGED_STATE).unlink(missing_ok=True)  # staging bookkeeping has no place in a release
        doc = {"format": 1, "model": manifest.model, "revision": revision,
               "manifest_sha384": manifest.manifest_sha384, "encrypted": key is not None,
               "key_fingerprint": key.fingerprint() if key else None, "chunk_size": DEFAULT_CHUNK_SIZE,
               "files": len(manifest.files), "bytes": manifest.total_size, "placed_at": time.time()}
        (source / RELEASE_MARKER).write_text(json.dumps(doc, sort_keys=True, indent=1) + "\n")
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
        result = verify_directory(decrypted, manifest, full=False, exclude=CONTROL_NAMES)
        problems = _problems(result.to_dict())
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
                    full: bool = False) -> dict[str, Any]:
    """Mount a tmpfs sized from the manifest at ``target`` and decrypt ``current`` into it."""
    mdir = models_dir / slug
    current = current_revision(mdir)
    if current is None:
        raise ReleaseError(f"{mdir / CURRENT_LINK}: no current release")
    release = mdir / current
    marker = read_marker(release) or {}
    if not marker.get("encrypted"):
        return {"ok": True, "encrypted": False, "path": str(mdir / CURRENT_LINK)}
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
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0750,uid=0,gid={gid},nosuid,nodev,noexec",
                    "tmpfs", str(target)], check=True, capture_output=True)
    start = time.monotonic()
    try:
        for entry in manifest.files:
            dst = target / entry.path
            dst.parent.mkdir(parents=True, exist_ok=True)
            decrypt_file(release / (entry.path + ENCRYPTED_SUFFIX), dst, key, mode=FILE_MODE)
        result = verify_directory(target, manifest, full=full, exclude=CONTROL_NAMES)
        if not result.ok:
            raise ReleaseError(f"decrypted files differ from the manifest: {'; '.join(_problems(result.to_dict()))}",
                               1, result.to_dict())
        (target / RELEASE_MARKER).write_text(json.dumps({**marker, "source": str(release)}, sort_keys=True) + "\n")
        _own(target, gid)
    except BaseException:
        unmount(target)  # nothing half-decrypted stays readable
        raise
    return {"ok": True, "encrypted": True, "path": str(target), "revision": current, "tmpfs_bytes": size,
            "bytes": manifest.total_size, "seconds": round(time.monotonic() - start, 3)}
