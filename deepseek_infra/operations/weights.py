"""Operations for model weight releases; the node side is ``deepseek-weights`` (node/deepseek_node/weights/node.py).

Each operation reads ``WeightsStatus`` when it runs (after the tool was installed by the
operations before it), decides with the pure planning in ``node/deepseek_node/weights/plan.py`` and
yields nothing when the node already matches. A refusal (no space, a revision placed
with other content, a key that does not open the placed release) fails only its host,
with a message naming host, field, expected and found, and changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import shlex
import tarfile
import tempfile
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any, BinaryIO

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.api.exceptions import OperationValueError
from pyinfra.facts.server import Command

from deepseek_node.weights.crypto import Key
from deepseek_infra.facts.storage import PathSpace
from deepseek_infra.facts.weights import TOOL, WeightsStatus
from deepseek_node.weights.manifest import MANIFEST_FILENAME, Manifest
from deepseek_node.weights.plan import (
    STAGING_DIR,
    ReleaseInfo,
    StagedFile,
    plan_push,
    previous_release,
    space_needed,
)

GIB = 1024**3
UPLOAD_DIR = "/var/tmp/deepseek-weights"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseSpec:
    """Everything ``release`` needs, checked on the controller before any host changes."""

    model: str
    slug: str
    revision: str
    manifest: Manifest = field(repr=False)
    manifest_json: str = field(repr=False)
    source: str  # directory | http | hf
    models_dir: str
    keys_dir: str
    source_dir: str | None = None
    url_prefix: str | None = None
    keep: int = 2
    encrypt: bool = False
    group: str = "deepseek"
    fetch_parallel: int = 4
    fetch_retries: int = 3
    fetch_timeout_s: int = 60
    batch_bytes: int = 64 * 1024 * 1024
    chunk_bytes: int = 64 * 1024 * 1024
    min_free_bytes: int = 0

    @property
    def staging(self) -> str:
        return f"{self.models_dir}/{self.slug}/{STAGING_DIR}/{self.revision}"

    @property
    def incoming(self) -> str:
        """Where uploads land before the tool moves them into staging: one batch or chunk at a
        time, on the root filesystem (``docker cp`` cannot write into a tmpfs mount)."""
        return f"{UPLOAD_DIR}/{self.slug}/{self.revision}"

    @property
    def key_file(self) -> str:
        return f"{self.keys_dir}/{self.slug}.key"


def _fail(message: str):
    """A command that fails this host only, printing why (pyinfra shows stderr of a failure)."""
    yield StringCommand("echo", QuoteString(message), ">&2", "&&", "exit", "1")


def _status(spec_models_dir: str, slug: str, revision: str | None, keys_dir: str, hash_staged: bool = False):
    return host.get_fact(WeightsStatus, models_dir=spec_models_dir, slug=slug, revision=revision,
                         hash_staged=hash_staged, keys_dir=keys_dir)


def _gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB ({n} bytes)"


def _tool(*args: Any) -> StringCommand:
    return StringCommand(TOOL, *[QuoteString(str(a)) if not str(a).startswith("--") else str(a) for a in args])


class _Lazy(io.RawIOBase):
    """A read-only upload source built on first use (so preparing a run never builds it)."""

    def __init__(self, build) -> None:
        super().__init__()
        self._build = build
        self._fh: BinaryIO | None = None

    def _file(self) -> BinaryIO:
        if self._fh is None:
            self._fh = self._build()
        return self._fh

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._file().seek(pos, whence)

    def tell(self) -> int:
        return self._file().tell()

    def read(self, size: int = -1) -> bytes:
        return self._file().read(size)

    def readinto(self, buffer) -> int:
        data = self._file().read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _tar_batch(root: Path, paths: tuple[str, ...]) -> BinaryIO:
    out = tempfile.TemporaryFile()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in paths:
            info = tar.gettarinfo(str(root / rel), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o640
            with open(root / rel, "rb") as fh:
                tar.addfile(info, fh)
    out.seek(0)
    return out


def _slice(path: Path, offset: int, length: int) -> BinaryIO:
    out = tempfile.SpooledTemporaryFile(max_size=256 * 1024 * 1024)
    with open(path, "rb") as fh:
        fh.seek(offset)
        left = length
        while left:
            block = fh.read(min(8 * 1024 * 1024, left))
            if not block:
                raise OSError(f"{path}: shorter than the manifest says ({offset + length - left} bytes)")
            out.write(block)
            left -= len(block)
    out.seek(0)
    return out


def _prefix_sha384(root: Path):
    def digest(rel: str, n: int) -> str:
        sha = hashlib.sha384()
        with open(root / rel, "rb") as fh:
            left = n
            while left and (block := fh.read(min(8 * 1024 * 1024, left))):
                sha.update(block)
                left -= len(block)
        return sha.hexdigest()

    return digest


def _push(spec: ReleaseSpec, staged: dict[str, StagedFile]):
    root = Path(spec.source_dir or "")
    for entry in spec.manifest.files:
        source = root / entry.path
        if not source.is_file() or source.stat().st_size != entry.size:
            found = source.stat().st_size if source.is_file() else "no file"
            yield from _fail(f"{host.name}: weights_source_dir: {source}: expected {entry.size} bytes "
                             f"(manifest), found {found}; nothing sent")
            return
    plan = plan_push(spec.manifest, staged, _prefix_sha384(root), spec.batch_bytes, spec.chunk_bytes)
    resumed = ", ".join(f"{p} from byte {o}" for p, o in sorted(plan.resumed.items())) or "none"
    logger.info(f"{host.print_prefix}weights: push {len(plan.batches)} tar batch(es) + {len(plan.chunks)} "
                f"chunk(s), {plan.bytes} bytes; {len(plan.skipped)} file(s) already staged; resumed: {resumed}")
    incoming = spec.incoming
    common = ("--models-dir", spec.models_dir, "--model", spec.slug, "--revision", spec.revision)
    for index, batch in enumerate(plan.batches):
        remote = f"{incoming}/batch-{index}.tar"
        yield FileUploadCommand(_Lazy(lambda b=batch: _tar_batch(root, b.paths)), remote)
        yield _tool("receive-tar", *common, "--tar", remote)
    for index, chunk in enumerate(plan.chunks):
        remote = f"{incoming}/part-{index}"
        yield FileUploadCommand(_Lazy(lambda c=chunk: _slice(root / c.path, c.offset, c.length)), remote)
        yield _tool("receive-part", *common, "--path", chunk.path, "--offset", chunk.offset, "--part", remote)


@operation()
def release(spec: ReleaseSpec):
    """
    Place ``spec.revision`` of ``spec.model``: transfer what is missing into staging, verify
    every byte against the manifest, publish, switch ``current`` atomically, prune.

    + spec: the release, its manifest and source, checked on the controller (``ReleaseSpec``)

    No-op when ``current`` already is this revision with this manifest and passes the fast
    check; only a switch when the release is already placed (e.g. after a rollback).

    **Example:**

    .. code:: python

        weights.release(spec=ReleaseSpec(model="deepseek-ai/DeepSeek-V3", ...))
    """
    status = _status(spec.models_dir, spec.slug, spec.revision, spec.keys_dir, spec.source == "directory") or {}
    want = spec.manifest.manifest_sha384
    placed = (status.get("releases") or {}).get(spec.revision)
    target = status.get("target") or {}
    name = f"{spec.model}@{spec.revision}"
    if placed and (placed.get("manifest_sha384") != want or bool(placed.get("encrypted")) != spec.encrypt):
        yield from _fail(
            f"{host.name}: weights_revision: {spec.revision} is placed with manifest {placed.get('manifest_sha384')} "
            f"(encrypted={bool(placed.get('encrypted'))}), expected {want} (encrypted={spec.encrypt}); "
            "publish changed content under a new revision")
        return
    if placed and not target.get("ok"):
        yield from _fail(f"{host.name}: {spec.models_dir}/{spec.slug}/{spec.revision}: expected a release passing "
                         f"its fast check, found: {'; '.join(target.get('problems') or [])}")
        return
    place = ["place", "--models-dir", spec.models_dir, "--model", spec.slug, "--revision", spec.revision,
             "--expect-sha384", want, "--keep", spec.keep, "--group", spec.group]
    if spec.encrypt:
        place += ["--key", f"file:{spec.key_file}"]
    if placed:
        if status.get("current") == spec.revision:
            host.noop(f"{name} is current and passes the fast check")
            return
        yield _tool(*place)  # already verified and placed: only the switch
        return

    staged = {p: StagedFile(v["size"], v.get("sha384")) for p, v in (status.get("staging") or {}).items()}
    space = host.get_fact(PathSpace, path=spec.models_dir)
    needed = space_needed(spec.manifest, staged, spec.encrypt) + spec.min_free_bytes
    if space and space["free_bytes"] < needed:
        yield from _fail(
            f"{host.name}: weights_models_dir: {spec.models_dir} ({space['mountpoint']}): expected {_gib(needed)} free "
            f"for {name}, found {_gib(space['free_bytes'])}; nothing transferred, current release unchanged "
            f"({status.get('current')})")
        return
    yield StringCommand("install", "-d", "-m", "0700", QuoteString(spec.staging), QuoteString(spec.incoming))
    yield FileUploadCommand(StringIO(spec.manifest_json), f"{spec.incoming}/{MANIFEST_FILENAME}")
    yield StringCommand("mv", "-f", QuoteString(f"{spec.incoming}/{MANIFEST_FILENAME}"),
                        QuoteString(f"{spec.staging}/{MANIFEST_FILENAME}"))
    if spec.source == "directory":
        yield from _push(spec, staged)
    else:
        yield _tool("fetch", "--models-dir", spec.models_dir, "--model", spec.slug, "--revision", spec.revision,
                    "--url-prefix", spec.url_prefix, "--parallel", spec.fetch_parallel,
                    "--retries", spec.fetch_retries, "--timeout", spec.fetch_timeout_s)
    yield _tool(*place)
    yield StringCommand("rm", "-rf", QuoteString(spec.incoming))


@operation()
def key_file(models_dir: str, slug: str, keys_dir: str, key: Key):
    """
    Place the model's encryption key at ``<keys_dir>/<slug>.key`` (0400, root), never logging it.

    + models_dir: releases root (to check the key opens the releases already placed)
    + slug: the model's directory name
    + keys_dir: directory of key files (created 0700 root)
    + key: the key (its repr is redacted; only its fingerprint is compared and printed)

    Refuses (changing nothing) when a placed encrypted release of the model was sealed
    with another key: replacing the key would make it unreadable.
    """
    status = _status(models_dir, slug, None, keys_dir) or {}
    node_key = status.get("key") or {}
    fingerprint = key.fingerprint()
    sealed = {rev: r.get("key_fingerprint") for rev, r in (status.get("releases") or {}).items() if r.get("encrypted")}
    other = {rev: fp for rev, fp in sealed.items() if fp != fingerprint}
    if other:
        rev, fp = sorted(other.items())[0]
        yield from _fail(f"{host.name}: weights_key: expected the key of release {rev} (fingerprint {fp}), "
                         f"found fingerprint {fingerprint}; key file left unchanged")
        return
    if node_key.get("fingerprint") == fingerprint:
        host.noop(f"{keys_dir}/{slug}.key holds the key with fingerprint {fingerprint}")
        return
    path = f"{keys_dir}/{slug}.key"
    tmp = f"{keys_dir}/.{slug}.key.tmp"
    yield StringCommand("install", "-d", "-m", "0700", "-o", "root", "-g", "root", QuoteString(keys_dir))
    yield StringCommand("rm", "-f", QuoteString(tmp))
    yield FileUploadCommand(StringIO(key.secret_bytes().hex() + "\n"), tmp)
    yield StringCommand("chown", "root:root", QuoteString(tmp), "&&", "chmod", "0400", QuoteString(tmp),
                        "&&", "mv", "-f", QuoteString(tmp), QuoteString(path))


@operation(is_idempotent=False)
def rollback(models_dir: str, slug: str, keys_dir: str):
    """
    Switch ``current`` to the release placed before it (after checking that release).

    + models_dir: releases root
    + slug: the model's directory name
    + keys_dir: directory of key files (read by the status fact)
    """
    status = _status(models_dir, slug, None, keys_dir) or {}
    releases = [ReleaseInfo(rev, float(r.get("placed_at") or 0)) for rev, r in (status.get("releases") or {}).items()]
    target = previous_release(releases, status.get("current"))
    if target is None:
        yield from _fail(f"{host.name}: weights_action: rollback needs a release placed before the current one "
                         f"({status.get('current')}), found {sorted(r.revision for r in releases)}")
        return
    yield _tool("rollback", "--models-dir", models_dir, "--model", slug)


def _files_tar(files: dict[str, bytes]) -> BinaryIO:
    out = tempfile.TemporaryFile()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0o644, 0, 0, "root", "root"
            tar.addfile(info, io.BytesIO(data))
    out.seek(0)
    return out


@operation()
def files_batch(directory: str, files: dict[str, bytes], mode: str = "0644", user: str = "root",
                group: str = "root", exclusive: bool = False):
    """
    Ensure ``directory`` holds ``files`` (name -> exact bytes) with one owner and mode: one
    round trip to compare (``stat`` + ``sha256sum``), and when anything differs one upload
    of a tar of them all, instead of three facts and an upload per file.

    + directory: destination directory (created when missing; 0755 root when ``exclusive``)
    + files: file names (no ``/``) and their content
    + mode: permissions of every file
    + user: owner of every file
    + group: group of every file
    + exclusive: remove files of ``directory`` that are not in ``files`` (a tool directory
      holding the controller's code and nothing else)

    **Example:**

    .. code:: python

        weights.files_batch(directory="/opt/deepseek/weights/bin", mode="0755", exclusive=True,
                            files={"deepseek-weights": b"#!/bin/sh\nexec /opt/deepseek/weights/venv/bin/deepseek-weights \"$@\"\n"})
    """
    names = sorted(files)
    if any("/" in name or not name or name.startswith(".") for name in names):
        raise OperationValueError(f"files_batch: files: expected plain file names, found {names}")
    listed = "*" if exclusive else " ".join(shlex.quote(name) for name in names)
    probe = (
        f"cd {shlex.quote(directory)} 2>/dev/null || exit 0; for f in {listed}; do "
        '[ -f "$f" ] || continue; '
        'printf "%s %s %s\\n" "$(stat -c %a:%U:%G -- "$f")" "$(sha256sum -- "$f" | cut -d" " -f1)" "$f"; done'
    )
    have = {}
    for line in (host.get_fact(Command, command=probe) or "").splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            have[parts[2]] = (parts[0], parts[1])
    owner = f"{int(mode, 8):o}:{user}:{group}"
    wanted = {name: (owner, hashlib.sha256(files[name]).hexdigest()) for name in names}
    if have == wanted:
        host.noop(f"{directory} holds {len(files)} file(s) as the controller has them")
        return
    upload = f"/var/tmp/deepseek-weights-batch.{hashlib.sha256(repr(sorted(wanted.items())).encode()).hexdigest()[:12]}.tar"
    yield FileUploadCommand(_Lazy(lambda: _files_tar(files)), upload)
    quoted = [QuoteString(f"{directory}/{name}") for name in names]
    # An exclusive directory is recreated 0755; a shared one (/etc/deepseek) keeps its owner and mode.
    create = (["rm", "-rf", QuoteString(directory), "&&", "install", "-d", "-m", "0755"] if exclusive
              else ["mkdir", "-p"])
    yield StringCommand(*create, QuoteString(directory), "&&",
                        "tar", "-xf", QuoteString(upload), "-C", QuoteString(directory), "--no-same-owner", "&&",
                        "chown", QuoteString(f"{user}:{group}"), *quoted, "&&", "chmod", mode, *quoted, "&&",
                        "rm", "-f", QuoteString(upload))
