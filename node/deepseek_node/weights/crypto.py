"""AES-256-GCM encryption at rest for model weights, in authenticated chunks.

Pure module (stdlib + cryptography, no pyinfra): it runs on the controller and on nodes.

File format, version 2 (all integers big-endian)::

    header  32 bytes  magic b"DSWENC1\\n" | version u8 (=2) | 3 zero bytes
                      | chunk_size u32 | file_id 16 random bytes
    htag    16 bytes  AES-GCM tag over an empty message, AAD = header | binding
    record* n+16      AES-GCM(chunk plaintext, n <= chunk_size) + tag

Every record but the last holds exactly ``chunk_size`` plaintext bytes; the
last holds 0..chunk_size (an empty file has one empty record), so a file is
never zero records long.

Keys: the master key (32 bytes) never touches data directly.  Each file gets
its own key, HKDF-SHA256(master, salt=file_id).  Record ``i`` uses nonce
``i`` as 12 bytes; the header tag uses nonce ``ff..ff``, which no record can
reach.  A fresh key per file means nonces cannot repeat across files however
many are encrypted under one master key (a random nonce prefix would not
guarantee that).

AAD of record ``i`` is ``header | i (u64) | final (u8) | binding``, so:

- a flipped byte anywhere fails that record's tag;
- swapped or duplicated records fail (index in nonce and AAD);
- truncation at a record boundary fails: the new last record was sealed
  with final=0 but is opened with final=1; appended data fails the same way;
- a wrong key, or a tampered header (chunk size, file id), fails the header
  tag before any record is read: "wrong key or corrupted header";
- a file opened at another place fails the header tag too.

The binding is not stored in the file: the caller says where the file
belongs when it encrypts and what it expects when it decrypts (``binding()``
joins parts with NUL; a release file is bound to
``b"<model slug>\\0<revision>\\0<relative path>"``), so two shards of one
release swapped, or a shard copied from another release, do not decrypt.
The empty binding is the default for files that belong nowhere in particular.

Version 1 (written by older tools) is the same without the binding.  It is
read only when the caller expects no binding (``bind=None``); a caller that
passes a binding refuses it, since such a file can be moved undetected.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import stat
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "CryptoError",
    "DecryptionError",
    "Key",
    "KeyLoadError",
    "binding",
    "decrypt_file",
    "decrypt_stream",
    "encrypt_file",
    "encrypt_stream",
    "load_key",
]

MAGIC: Final[bytes] = b"DSWENC1\n"
VERSION: Final[int] = 2  # written; 1 is still read when no binding is expected
VERSION_UNBOUND: Final[int] = 1
KEY_SIZE: Final[int] = 32
TAG_SIZE: Final[int] = 16
DEFAULT_CHUNK_SIZE: Final[int] = 4 * 1024 * 1024
# Upper bound read from an untrusted header before it is authenticated.
MAX_CHUNK_SIZE: Final[int] = 256 * 1024 * 1024
_HEADER = struct.Struct(">8sB3sI16s")
HEADER_SIZE: Final[int] = _HEADER.size
_HEADER_NONCE = b"\xff" * 12
_HKDF_INFO = b"dswenc v1 file key"
_HEX_KEY = re.compile(rb"^[0-9a-fA-F]{64}$")
_KEY_CMD_TIMEOUT_S = 60


class CryptoError(Exception):
    """Base class; messages never contain key material."""


class KeyLoadError(CryptoError):
    """A key source could not be read, is unsafe, or does not hold a 32-byte key."""


class DecryptionError(CryptoError):
    """A file failed authentication; ``path`` and ``chunk`` (or None) say where."""

    def __init__(self, path: str, reason: str, chunk: int | None = None) -> None:
        self.path = path
        self.chunk = chunk
        self.reason = reason
        where = f"{path}: chunk {chunk}" if chunk is not None else path
        super().__init__(f"{where}: {reason}")


class Key:
    """A 256-bit key whose repr/str are redacted so it cannot leak into logs or tracebacks."""

    __slots__ = ("_material",)

    def __init__(self, material: bytes) -> None:
        if not isinstance(material, (bytes, bytearray)) or len(material) != KEY_SIZE:
            size = len(material) if isinstance(material, (bytes, bytearray)) else type(material).__name__
            raise KeyLoadError(f"key must be {KEY_SIZE} bytes, found {size}")
        self._material = bytes(material)

    @classmethod
    def generate(cls) -> Key:
        return cls(os.urandom(KEY_SIZE))

    def secret_bytes(self) -> bytes:
        return self._material

    def fingerprint(self) -> str:
        """A short, one-way id that is safe to log, to tell keys apart."""
        return hashlib.sha256(b"dswenc key fingerprint\0" + self._material).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Key(<redacted>, fingerprint={self.fingerprint()})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("Key objects cannot be pickled (key material must not be serialised)")


def _as_key(key: Key | bytes) -> Key:
    return key if isinstance(key, Key) else Key(key)


def _parse_material(data: bytes, where: str) -> Key:
    if len(data) == KEY_SIZE:
        return Key(data)
    text = data.strip()
    if _HEX_KEY.match(text):
        return Key(bytes.fromhex(text.decode("ascii")))
    raise KeyLoadError(f"{where}: expected {KEY_SIZE} raw bytes or 64 hex characters, found {len(data)} bytes")


def load_key(source: str) -> Key:
    """Load the master key from ``file:/path``, ``env:NAME`` or ``cmd:command args``.

    + file: 32 raw bytes or 64 hex characters; the file must not be
      accessible by group or others (mode 0600 or 0400).
    + env: 64 hex characters.
    + cmd: run without a shell (use ``cmd:sh -c '...'`` for pipes); stdout
      holds the key, e.g. from an external KMS.  Only the program name
      appears in errors: its arguments may carry tokens.
    """
    scheme, sep, rest = source.partition(":")
    if not sep or not rest:
        raise KeyLoadError(f"key source must be file:/path, env:NAME or cmd:command, found scheme {scheme!r}")
    if scheme == "file":
        try:
            fd = os.open(rest, os.O_RDONLY)
        except OSError as exc:
            raise KeyLoadError(f"key file {rest}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            mode = os.fstat(fd).st_mode  # of the opened file, so a swap after the check cannot matter
            if mode & 0o077:
                raise KeyLoadError(
                    f"key file {rest}: mode {stat.S_IMODE(mode):04o} lets group or others access it; "
                    "expected 0600 or 0400 (chmod 600)"
                )
            data = fh.read(4096)
        return _parse_material(data, f"key file {rest}")
    if scheme == "env":
        value = os.environ.get(rest)
        if value is None:
            raise KeyLoadError(f"key environment variable {rest} is not set")
        try:
            data = value.encode("ascii")
        except UnicodeEncodeError:
            raise KeyLoadError(f"key environment variable {rest}: expected 64 hex characters") from None
        if not _HEX_KEY.match(data.strip()):
            raise KeyLoadError(f"key environment variable {rest}: expected 64 hex characters")
        return _parse_material(data, f"key environment variable {rest}")
    if scheme == "cmd":
        argv = shlex.split(rest)
        prog = argv[0] if argv else ""
        try:
            proc = subprocess.run(
                argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=_KEY_CMD_TIMEOUT_S, check=False
            )
        except (OSError, IndexError) as exc:
            raise KeyLoadError(f"key command {prog!r}: cannot run: {getattr(exc, 'strerror', None) or exc}") from None
        except subprocess.TimeoutExpired:
            raise KeyLoadError(f"key command {prog!r}: no answer within {_KEY_CMD_TIMEOUT_S}s") from None
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-300:]
            raise KeyLoadError(f"key command {prog!r} exited {proc.returncode}: {err}")
        return _parse_material(proc.stdout, f"key command {prog!r} output")
    raise KeyLoadError(f"key source must be file:/path, env:NAME or cmd:command, found scheme {scheme!r}")


def _file_aead(key: Key, file_id: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=file_id, info=_HKDF_INFO)
    return AESGCM(hkdf.derive(key.secret_bytes()))


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def binding(*parts: str) -> bytes:
    """What a file is bound to: ``parts`` joined by NUL (none may hold a NUL)."""
    if any("\0" in part for part in parts):
        raise ValueError(f"binding parts must not contain NUL, found {parts!r}")
    return "\0".join(parts).encode("utf-8")


def _aad(header: bytes, index: int, final: bool, bind: bytes = b"") -> bytes:
    return header + struct.pack(">QB", index, 1 if final else 0) + bind


def _read_upto(src: BinaryIO, n: int) -> bytes:
    """Read ``n`` bytes, fewer only at EOF (pipes may return short reads)."""
    data = src.read(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n and (more := src.read(n - got)):
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def encrypt_stream(
    src: BinaryIO, dst: BinaryIO, key: Key | bytes, chunk_size: int = DEFAULT_CHUNK_SIZE, *, bind: bytes = b""
) -> int:
    """Encrypt ``src`` into ``dst``, bound to ``bind``; return the number of plaintext bytes."""
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be 1..{MAX_CHUNK_SIZE}, found {chunk_size}")
    file_id = os.urandom(16)
    header = _HEADER.pack(MAGIC, VERSION, b"\0\0\0", chunk_size, file_id)
    aead = _file_aead(_as_key(key), file_id)
    dst.write(header + aead.encrypt(_HEADER_NONCE, b"", header + bind))
    total = 0
    index = 0
    cur = _read_upto(src, chunk_size)
    while True:
        # Look ahead one chunk: the last record must be sealed as final.
        nxt = _read_upto(src, chunk_size) if len(cur) == chunk_size else b""
        final = not nxt
        dst.write(aead.encrypt(_nonce(index), cur, _aad(header, index, final, bind)))
        total += len(cur)
        if final:
            return total
        index += 1
        cur = nxt


def decrypt_stream(
    src: BinaryIO, key: Key | bytes, *, name: str = "<stream>", bind: bytes | None = None
) -> Iterator[bytes]:
    """Yield plaintext chunks of ``src``, raising ``DecryptionError`` at the first bad one.

    ``bind``: the place the file must have been encrypted for; ``None`` expects the
    empty binding and also reads version 1, which has none.  Chunks are yielded as
    soon as they authenticate, so a consumer must discard what it got if the
    iteration raises (``decrypt_file`` does).
    """
    head = _read_upto(src, HEADER_SIZE + TAG_SIZE)
    if len(head) < HEADER_SIZE + TAG_SIZE:
        raise DecryptionError(name, "truncated header (not an encrypted weights file?)")
    header, tag = head[:HEADER_SIZE], head[HEADER_SIZE:]
    magic, version, _reserved, chunk_size, file_id = _HEADER.unpack(header)
    if magic != MAGIC:
        raise DecryptionError(name, f"not an encrypted weights file (magic {magic!r}, expected {MAGIC!r})")
    if version not in (VERSION, VERSION_UNBOUND):
        raise DecryptionError(name, f"unsupported format version {version} (expected {VERSION})")
    if version == VERSION_UNBOUND and bind is not None:
        raise DecryptionError(name, f"format version {VERSION_UNBOUND} is not bound to its place, so a moved or "
                                    "swapped file would go unnoticed: re-encrypt it (a release: place it again)")
    bind = bind or b""
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise DecryptionError(name, "wrong key or corrupted header")
    aead = _file_aead(_as_key(key), file_id)
    try:
        aead.decrypt(_HEADER_NONCE, tag, header + bind)
    except InvalidTag:
        raise DecryptionError(
            name, "wrong key or corrupted header, or the file was encrypted for another place "
                  "(renamed, swapped, or copied from another release)") from None
    record = chunk_size + TAG_SIZE
    index = 0
    cur = _read_upto(src, record)
    while True:
        nxt = _read_upto(src, record) if len(cur) == record else b""
        final = not nxt
        if len(cur) < TAG_SIZE:
            raise DecryptionError(name, "record missing or truncated (file cut short)", index)
        try:
            yield aead.decrypt(_nonce(index), cur, _aad(header, index, final, bind))
        except InvalidTag:
            raise DecryptionError(
                name, "authentication failed (altered, truncated, reordered or appended data)", index
            ) from None
        if final:
            return
        index += 1
        cur = nxt


def _atomic_output(dst: Path, mode: int) -> tuple[int, str]:
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    os.fchmod(fd, mode)
    return fd, tmp


def encrypt_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    key: Key | bytes,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    mode: int = 0o644,
    bind: bytes = b"",
) -> int:
    """Encrypt ``src`` to ``dst`` (temp file + rename), bound to ``bind``; return the plaintext size."""
    dst = Path(dst)
    fd, tmp = _atomic_output(dst, mode)
    try:
        with os.fdopen(fd, "wb") as fout, open(src, "rb") as fin:
            total = encrypt_stream(fin, fout, key, chunk_size, bind=bind)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, dst)
        return total
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def decrypt_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    key: Key | bytes,
    *,
    mode: int = 0o600,
    bind: bytes | None = None,
) -> int:
    """Decrypt ``src`` to ``dst``; return the plaintext size.  ``bind``: see ``decrypt_stream``.

    Writes a temp file next to ``dst`` and renames it only when every record
    authenticated, so ``dst`` never holds partial or forged plaintext.  On any
    failure the temp file is removed and ``DecryptionError`` names the file and
    the chunk.  ``mode`` defaults to 0600: the output is the secret at rest.
    """
    dst = Path(dst)
    name = os.fspath(src)
    fd, tmp = _atomic_output(dst, mode)
    try:
        total = 0
        with os.fdopen(fd, "wb") as fout, open(src, "rb") as fin:
            for chunk in decrypt_stream(fin, key, name=name, bind=bind):
                fout.write(chunk)
                total += len(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, dst)
        return total
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise DecryptionError(name, f"I/O error: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
