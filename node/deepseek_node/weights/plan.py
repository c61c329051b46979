"""Pure planning for model weight releases: names, URLs, what to transfer, what to prune.

Stdlib only (no pyinfra): the controller plans with it and the node tool
(``node/deepseek_node/weights/node.py``) uses the same functions, so both sides agree on paths,
sizes and which release is "previous".

Layout on a node (``models_dir`` defaults to /var/lib/deepseek/models)::

    <models_dir>/<slug>/<revision>/        one published, verified release
    <models_dir>/<slug>/current -> <revision>   switched atomically (symlink + rename)
    <models_dir>/<slug>/.staging/<revision>/    files land here until verified

``slug`` is the Hugging Face repo id with ``/`` replaced by ``--``
(``deepseek-ai/DeepSeek-V3`` -> ``deepseek-ai--DeepSeek-V3``), so one directory level per
model and a key file name ``/etc/deepseek/keys/<slug>.key``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

from deepseek_node.weights.manifest import FileEntry, Manifest

__all__ = [
    "CONTROL_NAMES",
    "Batch",
    "Chunk",
    "PushPlan",
    "ReleaseInfo",
    "StagedFile",
    "encrypted_size",
    "file_url",
    "model_slug",
    "plan_push",
    "previous_release",
    "releases_to_prune",
    "space_needed",
    "tmpfs_size",
    "url_prefix",
]

CURRENT_LINK: Final = "current"
STAGING_DIR: Final = ".staging"
RELEASE_MARKER: Final = ".release.json"  # written last into a release: what it holds, when placed
STAGED_STATE: Final = ".dsw-staged.json"  # staging: files already hashed (size, mtime, sha384)
INCOMING_DIR: Final = ".incoming"  # staging: uploads not yet unpacked
CIPHER_MANIFEST: Final = "MANIFEST.dsenc.json"  # encrypted release: the ciphertext files' hashes
ENCRYPTED_SUFFIX: Final = ".dsenc"
ENCRYPT_WORKERS: Final = 4  # files encrypted at once on a node (their ciphertexts coexist with staging)
# Names inside a staging or release directory that are not checkpoint files.
CONTROL_NAMES: Final = ("MANIFEST.dsw.json", CIPHER_MANIFEST, RELEASE_MARKER, STAGED_STATE, INCOMING_DIR)

_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# node/deepseek_node/weights/crypto.py format: 32-byte header + 16-byte header tag, 16-byte tag per record.
_CRYPTO_HEADER, _CRYPTO_TAG = 48, 16


def check_revision(revision: str) -> str:
    """A revision is one path component: a tag, branch or commit hash (no ``/``)."""
    if not _REVISION.fullmatch(revision) or revision in (CURRENT_LINK,) or ".." in revision:
        raise ValueError(
            f"revision {revision!r} must be 1-128 of [A-Za-z0-9._-], start alphanumeric, "
            f"not contain '..' and not be {CURRENT_LINK!r}"
        )
    return revision


def model_slug(repo: str) -> str:
    """``"deepseek-ai/DeepSeek-V3"`` -> ``"deepseek-ai--DeepSeek-V3"`` (one path component)."""
    if not _REPO.fullmatch(repo) or ".." in repo:
        raise ValueError(f"model {repo!r} is not a Hugging Face repo id (<org>/<name>)")
    return repo.replace("/", "--")


def url_prefix(source: str, base_url: str, repo: str, revision: str) -> str:
    """Where a release's files are fetched from; a file's URL is the prefix + its quoted path.

    + source: ``http`` (a plain mirror laid out ``<base>/<repo>/<revision>/<file>``) or
      ``hf`` (a Hugging Face-compatible endpoint, ``<base>/<repo>/resolve/<revision>/<file>``).
    """
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base URL must start with http:// or https://, found {base_url!r}")
    base = base_url.rstrip("/")
    repo_part = "/".join(quote(part, safe="") for part in repo.split("/"))
    rev = quote(check_revision(revision), safe="")
    if source == "http":
        return f"{base}/{repo_part}/{rev}/"
    if source == "hf":
        return f"{base}/{repo_part}/resolve/{rev}/"
    raise ValueError(f"source must be 'http' or 'hf', found {source!r}")


def file_url(prefix: str, path: str) -> str:
    """URL of one checkpoint file: each path component percent-encoded."""
    return prefix + "/".join(quote(part, safe="") for part in path.split("/"))


def encrypted_size(plain_size: int, chunk_size: int) -> int:
    """Size of ``deepseek_node.weights.crypto``'s encrypted file for a plaintext of ``plain_size`` bytes."""
    records = max(1, math.ceil(plain_size / chunk_size))
    return _CRYPTO_HEADER + plain_size + records * _CRYPTO_TAG


def tmpfs_size(manifest: Manifest, page: int = 4096, slack: int = 16 * 1024 * 1024) -> int:
    """Bytes a tmpfs needs to hold the decrypted release: every file page-rounded, plus slack."""
    return sum(-(-entry.size // page) * page for entry in manifest.files) + slack


@dataclass(frozen=True, slots=True)
class StagedFile:
    """What the node has staged for one path: its size, and its SHA-384 when it was hashed."""

    size: int
    sha384: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Whole files sent together as one tar stream (one upload, one unpack)."""

    paths: tuple[str, ...]
    size: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes ``[offset, offset + length)`` of one large file, appended on the node."""

    path: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class PushPlan:
    batches: tuple[Batch, ...] = ()
    chunks: tuple[Chunk, ...] = ()
    skipped: tuple[str, ...] = ()  # already staged with the right hash
    resumed: Mapping[str, int] = field(default_factory=dict)  # path -> offset kept on the node

    @property
    def bytes(self) -> int:
        return sum(b.size for b in self.batches) + sum(c.length for c in self.chunks)

    @property
    def empty(self) -> bool:
        return not self.batches and not self.chunks


def plan_push(
    manifest: Manifest,
    staged: Mapping[str, StagedFile],
    prefix_sha384: Callable[[str, int], str],
    batch_bytes: int,
    chunk_bytes: int,
) -> PushPlan:
    """What to send so the node's staging holds every manifest file.

    + staged: the node's staging listing (``sha384`` of the whole staged content).
    + prefix_sha384: ``(path, n)`` -> SHA-384 of the first ``n`` bytes of the source file;
      asked only for partly staged files, to check the part is the same before resuming.
    + batch_bytes: files up to this size go in tar batches of at most this size.
    + chunk_bytes: larger files go in chunks of this size, so an interrupted push resumes
      from the last whole chunk.
    """
    if batch_bytes <= 0 or chunk_bytes <= 0:
        raise ValueError("batch_bytes and chunk_bytes must be > 0")
    skipped: list[str] = []
    resumed: dict[str, int] = {}
    small: list[FileEntry] = []
    chunks: list[Chunk] = []
    for entry in manifest.files:
        have = staged.get(entry.path)
        offset = 0
        if have is not None and have.size == entry.size and have.sha384 == entry.sha384:
            skipped.append(entry.path)
            continue
        if (
            have is not None
            and entry.size > batch_bytes
            and 0 < have.size < entry.size
            and have.sha384 is not None
            and prefix_sha384(entry.path, have.size) == have.sha384
        ):
            offset = have.size
            resumed[entry.path] = offset
        if entry.size <= batch_bytes:
            small.append(entry)
            continue
        for start in range(offset, entry.size, chunk_bytes):
            chunks.append(Chunk(entry.path, start, min(chunk_bytes, entry.size - start)))
    batches: list[Batch] = []
    current: list[FileEntry] = []
    for entry in small:
        if current and sum(e.size for e in current) + entry.size > batch_bytes:
            batches.append(Batch(tuple(e.path for e in current), sum(e.size for e in current)))
            current = []
        current.append(entry)
    if current:
        batches.append(Batch(tuple(e.path for e in current), sum(e.size for e in current)))
    return PushPlan(tuple(batches), tuple(chunks), tuple(skipped), resumed)


def space_needed(
    manifest: Manifest,
    staged: Mapping[str, StagedFile],
    encrypted: bool,
    chunk_size: int = 4 * 1024 * 1024,
) -> int:
    """Bytes the weights filesystem must still have free to stage and publish ``manifest``.

    Files already staged in full count as present; a partly staged file needs its rest.
    An encrypted release holds the plaintext staging and the ciphertext at the same time
    for the files being encrypted (each plaintext file is removed once sealed, up to
    ``ENCRYPT_WORKERS`` at once), so it needs their ciphertexts on top, and every file's
    authentication overhead.
    """
    needed = 0
    for entry in manifest.files:
        have = staged.get(entry.path)
        have_size = have.size if have is not None and have.size <= entry.size else 0
        needed += entry.size - have_size
    if encrypted and manifest.files:
        largest = sorted((encrypted_size(e.size, chunk_size) for e in manifest.files), reverse=True)
        needed += sum(largest[:ENCRYPT_WORKERS])
        needed += sum(encrypted_size(e.size, chunk_size) - e.size for e in manifest.files)
    return needed


@dataclass(frozen=True, slots=True)
class ReleaseInfo:
    """A published release as its marker describes it."""

    revision: str
    placed_at: float
    manifest_sha384: str = ""
    encrypted: bool = False


def releases_to_prune(releases: Iterable[ReleaseInfo], current: str | None, keep: int) -> list[str]:
    """Revisions to delete so at most ``keep`` remain: the newest placed, always with ``current``."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, found {keep}")
    ordered = sorted(releases, key=lambda r: (r.placed_at, r.revision), reverse=True)
    kept: list[str] = [current] if current and any(r.revision == current for r in ordered) else []
    for release in ordered:
        if len(kept) >= keep:
            break
        if release.revision not in kept:
            kept.append(release.revision)
    return sorted(r.revision for r in ordered if r.revision not in kept)


def previous_release(releases: Iterable[ReleaseInfo], current: str | None) -> str | None:
    """The release placed most recently before ``current`` (what ``rollback`` switches to)."""
    by_name = {r.revision: r for r in releases}
    if current not in by_name:
        return None
    now = by_name[current]
    older = [r for r in by_name.values() if (r.placed_at, r.revision) < (now.placed_at, now.revision)]
    return max(older, key=lambda r: (r.placed_at, r.revision)).revision if older else None
