"""``deepseek-weights``: the node-side weights tool (installed by roles/weights).

    deepseek-weights status    --model SLUG [--revision R] [--hash-staged]   (the deploy's fact)
    deepseek-weights fetch     --model SLUG --revision R --url-prefix URL [--parallel 4]
    deepseek-weights receive-tar  --model SLUG --revision R --tar FILE
    deepseek-weights receive-part --model SLUG --revision R --path P --offset N --part FILE
    deepseek-weights place     --model SLUG --revision R [--expect-sha384 H] [--key SRC] [--keep 2]
    deepseek-weights rollback  --model SLUG
    deepseek-weights check     --model SLUG [--decrypted DIR] [--full]    (engine ExecStartPre)
    deepseek-weights verify-current [--rate-limit 200M]                    (the verify timer)
    deepseek-weights decrypt-current --model SLUG                         (decrypt@ unit)
    deepseek-weights unmount   --model SLUG
    deepseek-weights manifest|verify|encrypt|decrypt|selftest ...   (node/deepseek_node/weights/cli.py)

``--models-dir`` defaults to /var/lib/deepseek/models. Every command prints one JSON object
per line on stdout (``verify-current``: one per model). Exit status: 0 ok; 1 integrity
failure (hash, size, manifest or authentication mismatch); 2 usage, key, I/O or state error.
Key material never appears in output, only its fingerprint.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepseek_node import paths
from deepseek_node.weights.crypto import CryptoError, DecryptionError
from deepseek_node.weights.manifest import ManifestError, load_manifest
from deepseek_node.weights.cli import main as cli_main
from deepseek_node.weights.cli import parse_size
from deepseek_node.weights.fetch import fetch
from deepseek_node.weights.plan import STAGING_DIR, check_revision
from deepseek_node.weights.release import (
    ReleaseError,
    check_current,
    decrypt_current,
    models_with_current,
    read_marker,
    place,
    receive_part,
    receive_tar,
    rollback,
    status,
    unmount,
)

KEYS_DIR = f"{paths.CONFIG_DIR}/keys"  # /etc/deepseek/keys/<slug>.key, 0400 root
RUN_MODELS_DIR = paths.RUN_MODELS_DIR  # tmpfs mounts of decrypted releases
PASSTHROUGH = ("manifest", "verify", "encrypt", "decrypt", "selftest")
EXIT_OK, EXIT_MISMATCH, EXIT_ERROR = 0, 1, 2


def _emit(doc: dict[str, Any]) -> None:
    print(json.dumps(doc, sort_keys=True), flush=True)


def _staging(args: argparse.Namespace) -> Path:
    return Path(args.models_dir) / args.model / STAGING_DIR / check_revision(args.revision)


def _status(args: argparse.Namespace) -> int:
    key_path = Path(args.keys_dir) / f"{args.model}.key"
    _emit(status(Path(args.models_dir), args.model, args.revision, hash_staged=args.hash_staged, key_path=key_path))
    return EXIT_OK


def _fetch(args: argparse.Namespace) -> int:
    staging = _staging(args)
    manifest = load_manifest(staging / "MANIFEST.dsw.json")
    report = fetch(manifest, staging, args.url_prefix, parallel=args.parallel, retries=args.retries,
                   timeout_s=args.timeout)
    _emit(report.to_dict())
    if report.hash_mismatch:
        return EXIT_MISMATCH
    return EXIT_OK if report.ok else EXIT_ERROR


def _receive_tar(args: argparse.Namespace) -> int:
    _emit({"ok": True, "files": receive_tar(_staging(args), Path(args.tar))})
    return EXIT_OK


def _receive_part(args: argparse.Namespace) -> int:
    size = receive_part(_staging(args), args.path, args.offset, Path(args.part))
    _emit({"ok": True, "path": args.path, "size": size})
    return EXIT_OK


def _place(args: argparse.Namespace) -> int:
    _emit(place(Path(args.models_dir), args.model, args.revision, expect_sha384=args.expect_sha384,
                key_source=args.key, keep=args.keep, workers=args.workers, group=args.group))
    return EXIT_OK


def _rollback(args: argparse.Namespace) -> int:
    _emit(rollback(Path(args.models_dir), args.model))
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    doc = check_current(Path(args.models_dir), args.model, full=args.full, rate_limit=args.rate_limit,
                        decrypted=Path(args.decrypted) if args.decrypted else None, revision=args.revision)
    _emit(doc)
    return EXIT_OK if doc["ok"] else EXIT_MISMATCH


def _verify_current(args: argparse.Namespace) -> int:
    models = []
    for slug in models_with_current(Path(args.models_dir)):
        # A directory the weights role did not publish (no release marker) is not its to judge.
        if read_marker(Path(args.models_dir) / slug / "current") is None:
            print(f"{slug}: current is not a release published by the weights role: skipped", file=sys.stderr)
            continue
        models.append(slug)
    if not models:
        _emit({"ok": False, "error": f"{args.models_dir}: no model has a current release"})
        return EXIT_ERROR
    worst = EXIT_OK
    for slug in models:
        doc = check_current(Path(args.models_dir), slug, full=True, rate_limit=args.rate_limit)
        _emit({"event": "deepseek-weights-verify", **doc})
        worst = max(worst, EXIT_OK if doc["ok"] else EXIT_MISMATCH)
    return worst


def _decrypt_current(args: argparse.Namespace) -> int:
    key = args.key or f"file:{Path(args.keys_dir) / f'{args.model}.key'}"
    target = Path(args.target or f"{RUN_MODELS_DIR}/{args.model}")
    _emit(decrypt_current(Path(args.models_dir), args.model, key, target, group=args.group, full=args.full,
                          noswap=args.noswap))
    return EXIT_OK


def _unmount(args: argparse.Namespace) -> int:
    target = Path(args.target or f"{RUN_MODELS_DIR}/{args.model}")
    _emit({"ok": True, "target": str(target), "unmounted": unmount(target)})
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepseek-weights", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Any, text: str, *, model: bool = True, revision: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text)
        p.add_argument("--models-dir", default=paths.MODELS_DIR, help="releases root (default %(default)s)")
        if model:
            p.add_argument("--model", required=True, help="model slug, e.g. deepseek-ai--DeepSeek-V3")
        if revision:
            p.add_argument("--revision", required=True)
        p.set_defaults(func=func)
        return p

    p = command("status", _status, "state of a model's releases and staging (JSON)")
    p.add_argument("--revision")
    p.add_argument("--hash-staged", action="store_true", help="hash staged files not yet verified")
    p.add_argument("--keys-dir", default=KEYS_DIR)
    p = command("fetch", _fetch, "download missing files from an HTTP(S) mirror into staging", revision=True)
    p.add_argument("--url-prefix", required=True, help="a file's URL is this prefix + its quoted path")
    p.add_argument("--parallel", type=int, default=4, help="files downloaded at once")
    p.add_argument("--retries", type=int, default=3, help="tries per file after the first, resuming with Range")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a try fails")
    p = command("receive-tar", _receive_tar, "unpack a pushed batch into staging", revision=True)
    p.add_argument("--tar", required=True)
    p = command("receive-part", _receive_part, "write a pushed chunk into a staged file", revision=True)
    p.add_argument("--path", required=True)
    p.add_argument("--offset", type=int, required=True)
    p.add_argument("--part", required=True)
    p = command("place", _place, "verify staging, publish it, switch current, prune", revision=True)
    p.add_argument("--expect-sha384", help="the manifest hash the controller pinned")
    p.add_argument("--key", help="encrypt at rest with this key (file:/path, env:NAME, cmd:...)")
    p.add_argument("--keep", type=int, default=2, help="releases kept, current included")
    p.add_argument("--workers", type=int, help="hashing threads (default: CPU count)")
    p.add_argument("--group", default=paths.SERVICE_USER, help="group that may read the release")
    command("rollback", _rollback, "switch current to the release placed before it")
    p = command("check", _check, "fast check of current: manifest and sizes (engine ExecStartPre)")
    p.add_argument("--full", action="store_true", help="also re-hash every byte")
    p.add_argument("--rate-limit", type=parse_size)
    p.add_argument("--decrypted", help="also check this decrypted copy (tmpfs) against the manifest")
    p.add_argument("--revision", type=check_revision,
                   help="the release the engine is set up to load: fail unless current is this release")
    p = command("verify-current", _verify_current, "full re-hash of every model's current release", model=False)
    p.add_argument("--rate-limit", type=parse_size, help="max read bytes/s, e.g. 200M")
    p = command("decrypt-current", _decrypt_current, "decrypt current into a tmpfs sized from the manifest")
    p.add_argument("--key", help=f"key source (default file:{KEYS_DIR}/<model>.key)")
    p.add_argument("--keys-dir", default=KEYS_DIR)
    p.add_argument("--target", help=f"mount point (default {RUN_MODELS_DIR}/<model>)")
    p.add_argument("--group", default=paths.SERVICE_USER)
    p.add_argument("--full", action="store_true", help="re-hash the decrypted bytes too")
    p.add_argument("--noswap", action="store_true", help="mount the tmpfs noswap (Linux >= 6.4): never swapped out")
    p = command("unmount", _unmount, "unmount the decrypted copy")
    p.add_argument("--target")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        return cli_main(argv)
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except ReleaseError as exc:
        _emit({"ok": False, "error": str(exc), **exc.detail})
        return exc.exit_code
    except ManifestError as exc:
        _emit({"ok": False, "error": str(exc)})
        return EXIT_MISMATCH
    except DecryptionError as exc:  # a file failed authentication (altered, or not at its place)
        _emit({"ok": False, "error": str(exc), "chunk": exc.chunk})
        return EXIT_MISMATCH
    except subprocess.CalledProcessError as exc:
        stderr = (exc.stderr or b"").decode(errors="replace").strip()
        _emit({"ok": False, "error": f"{' '.join(map(str, exc.cmd))} exited {exc.returncode}: {stderr}"})
        return EXIT_ERROR
    except (CryptoError, OSError, ValueError) as exc:
        _emit({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
