"""Command line for weights integrity and encryption, used on the controller and on nodes.

    python -m deepseek_node.weights.cli manifest DIR --model M --revision R [--output PATH]
    python -m deepseek_node.weights.cli verify DIR [--manifest PATH] [--fast] [--rate-limit 200M]
    python -m deepseek_node.weights.cli encrypt SRC DST --key file:/etc/dsw/key [--bind PART ...]
    python -m deepseek_node.weights.cli decrypt SRC DST --key env:DSW_KEY [--bind PART ...]
    python -m deepseek_node.weights.cli selftest [--size-mib 256]

``--bind`` (repeatable) binds a file to a place: the parts are joined by NUL.  A file of
an encrypted release is bound to ``--bind <model slug> --bind <revision> --bind <path>``
(the path without ``.dsenc``); ``decrypt`` without ``--bind`` also reads format 1 files.

Every command prints one JSON object on stdout.  Exit status: 0 ok;
1 integrity failure (verify mismatch, tampered manifest, decryption failure);
2 usage, key or I/O error.  A timer or an engine pre-start hook only needs
the exit status; the JSON says what differs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepseek_node.weights.crypto import (
    DEFAULT_CHUNK_SIZE,
    CryptoError,
    DecryptionError,
    binding,
    decrypt_file,
    encrypt_file,
    load_key,
)
from deepseek_node.weights.manifest import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_EXCLUDE,
    MANIFEST_FILENAME,
    ManifestError,
    build_manifest,
    hash_file,
    load_manifest,
    save_manifest,
    verify_directory,
)

__all__ = ["main", "parse_size"]

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """``"8M"`` -> 8388608; binary units K, M, G, T (an optional trailing ``iB``/``B`` is ignored)."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1] if value and value[-1] in "KMGT" else ""
    number = value[: len(value) - len(unit)]
    try:
        size = int(float(number) * _UNITS[unit])
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 4096, 512K, 8M, 1G)") from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"size must be > 0, found {text!r}")
    return size


def _emit(doc: dict[str, Any]) -> None:
    print(json.dumps(doc, sort_keys=True))


def _excludes(directory: Path, manifest_path: Path, extra: Sequence[str]) -> tuple[str, ...]:
    # A manifest stored inside the directory must not list or flag itself.
    out = list(DEFAULT_EXCLUDE) + list(extra)
    try:
        out.append(manifest_path.resolve().relative_to(directory.resolve()).as_posix())
    except ValueError:
        pass
    return tuple(out)


def _cmd_manifest(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    output = Path(args.output) if args.output else directory / MANIFEST_FILENAME
    start = time.monotonic()
    manifest = build_manifest(
        directory,
        args.model,
        args.revision,
        workers=args.workers,
        block_size=args.block_size,
        exclude=_excludes(directory, output, args.exclude),
    )
    save_manifest(manifest, output)
    _emit(
        {
            "ok": True,
            "manifest": str(output),
            "manifest_sha384": manifest.manifest_sha384,
            "files": len(manifest.files),
            "bytes": manifest.total_size,
            "seconds": round(time.monotonic() - start, 3),
        }
    )
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    manifest_path = Path(args.manifest) if args.manifest else directory / MANIFEST_FILENAME
    start = time.monotonic()
    try:
        manifest = load_manifest(manifest_path)
        result = verify_directory(
            directory,
            manifest,
            full=not args.fast,
            workers=args.workers,
            rate_limit_bytes_per_s=args.rate_limit,
            exclude=_excludes(directory, manifest_path, args.exclude),
            expected_manifest_sha384=args.expect_sha384,
        )
    except ManifestError as exc:
        _emit({"ok": False, "error": str(exc), "manifest": str(manifest_path)})
        return EXIT_MISMATCH
    doc = result.to_dict()
    doc.update(manifest=str(manifest_path), seconds=round(time.monotonic() - start, 3))
    _emit(doc)
    return EXIT_OK if result.ok else EXIT_MISMATCH


def _file_result(args: argparse.Namespace, size: int, fingerprint: str, start: float) -> dict[str, Any]:
    # The fingerprint lets an operator check which key was used without revealing it.
    return {"ok": True, "src": args.src, "dst": args.dst, "bytes": size, "key_fingerprint": fingerprint,
            "seconds": round(time.monotonic() - start, 3)}


def _cmd_encrypt(args: argparse.Namespace) -> int:
    key = load_key(args.key)
    start = time.monotonic()
    size = encrypt_file(args.src, args.dst, key, chunk_size=args.chunk_size, bind=binding(*(args.bind or ())))
    _emit(_file_result(args, size, key.fingerprint(), start))
    return EXIT_OK


def _cmd_decrypt(args: argparse.Namespace) -> int:
    key = load_key(args.key)
    start = time.monotonic()
    try:
        size = decrypt_file(args.src, args.dst, key, bind=None if args.bind is None else binding(*args.bind))
    except DecryptionError as exc:
        _emit({"ok": False, "error": str(exc), "src": args.src, "chunk": exc.chunk})
        return EXIT_MISMATCH
    _emit(_file_result(args, size, key.fingerprint(), start))
    return EXIT_OK


def _rate(nbytes: int, seconds: float) -> float:
    return round(nbytes / (1024 * 1024) / max(seconds, 1e-9), 1)


def _cmd_selftest(args: argparse.Namespace) -> int:
    """Measure hashing and crypto throughput on page-cached temp files (CPU-bound numbers)."""
    from deepseek_node.weights.crypto import Key

    size = args.size_mib * 1024 * 1024
    parts = 8
    with tempfile.TemporaryDirectory(prefix="dsw-selftest-", dir=args.dir) as tmp:
        root = Path(tmp)
        big = root / "big.bin"
        shards = root / "shards"
        shards.mkdir()
        block = os.urandom(16 * 1024 * 1024)
        with open(big, "wb") as fh:
            for _ in range(size // len(block)):
                fh.write(block)
            fh.write(block[: size % len(block)])
        for i in range(parts):
            with open(shards / f"part-{i}.bin", "wb") as fh:
                fh.write(block[: size // parts] if size // parts <= len(block) else os.urandom(size // parts))
        hash_file(big)  # warm the page cache so the numbers are CPU, not disk
        timings: dict[str, float] = {}
        start = time.monotonic()
        hash_file(big)
        timings["sha384_single_file_MiBps"] = _rate(size, time.monotonic() - start)
        for workers in (1, os.cpu_count() or 1):
            start = time.monotonic()
            build_manifest(shards, "selftest", "0", workers=workers)
            timings[f"manifest_{parts}_files_workers_{workers}_MiBps"] = _rate(size, time.monotonic() - start)
        key = Key.generate()
        start = time.monotonic()
        encrypt_file(big, root / "big.enc", key)
        timings["encrypt_MiBps"] = _rate(size, time.monotonic() - start)
        start = time.monotonic()
        decrypt_file(root / "big.enc", root / "big.out", key)
        timings["decrypt_MiBps"] = _rate(size, time.monotonic() - start)
        same = hash_file(big)[1] == hash_file(root / "big.out")[1]
    _emit({"ok": same, "size_mib": args.size_mib, "cpu_count": os.cpu_count(), **timings})
    return EXIT_OK if same else EXIT_MISMATCH


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deepseek_node.weights.cli", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("manifest", help="hash a checkpoint directory and write its manifest")
    p.add_argument("directory")
    p.add_argument("--model", required=True, help="model id, e.g. deepseek-ai/DeepSeek-V3")
    p.add_argument("--revision", required=True, help="commit or tag the files came from")
    p.add_argument("--output", help=f"manifest path (default DIR/{MANIFEST_FILENAME})")
    p.add_argument("--workers", type=int, help="hashing threads (default: CPU count)")
    p.add_argument("--block-size", type=parse_size, default=DEFAULT_BLOCK_SIZE)
    p.add_argument("--exclude", action="append", default=[], help="relative path to leave out (repeatable)")
    p.set_defaults(func=_cmd_manifest)

    p = sub.add_parser("verify", help="compare a directory with its manifest")
    p.add_argument("directory")
    p.add_argument("--manifest", help=f"manifest path (default DIR/{MANIFEST_FILENAME})")
    p.add_argument("--fast", action="store_true", help="file list and sizes only; misses same-size corruption")
    p.add_argument("--workers", type=int, help="hashing threads (default: CPU count)")
    p.add_argument("--rate-limit", type=parse_size, help="max read bytes/s across all threads, e.g. 200M")
    p.add_argument("--expect-sha384", help="pinned manifest hash; a different manifest fails")
    p.add_argument("--exclude", action="append", default=[], help="relative path to leave out (repeatable)")
    p.set_defaults(func=_cmd_verify)

    for name, func, text in (("encrypt", _cmd_encrypt, "encrypt a file"), ("decrypt", _cmd_decrypt, "decrypt a file")):
        p = sub.add_parser(name, help=text)
        p.add_argument("src")
        p.add_argument("dst")
        p.add_argument("--key", required=True, help="file:/path, env:NAME or cmd:command")
        p.add_argument("--bind", action="append", metavar="PART",
                       help="bind to a place: the parts joined by NUL (repeatable; a release file: slug, revision, path)")
        if name == "encrypt":
            p.add_argument("--chunk-size", type=parse_size, default=DEFAULT_CHUNK_SIZE)
        p.set_defaults(func=func)

    p = sub.add_parser("selftest", help="print hashing and encryption throughput")
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--dir", help="where to put the temp files (default: system temp)")
    p.set_defaults(func=_cmd_selftest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (CryptoError, ManifestError, OSError, ValueError) as exc:
        _emit({"ok": False, "error": str(exc)})
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
