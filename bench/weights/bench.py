"""Weights benchmark (run by hand, not a test): place + verify (+ encrypt, decrypt) throughput of
the node tool against coreutils/openssl baselines on the same synthetic shards.

    .venv/bin/python bench/weights/bench.py [--gib 4] [--shards 8] [--dir /var/tmp/dsw-bench] [--keep]

Prints, for each step, seconds, GB/s (decimal, of checkpoint bytes) and the ratio to its
baseline, then the machine's limits: cores x single-core SHA-384, single-core AES-256-GCM
(the tool's cipher) and disk write speed. Baselines:

* verify: ``sha384sum`` of every shard, one process (what an operator would type), and
  ``xargs -P <cores> sha384sum`` (its best parallel form);
* copy + verify: ``cp`` then ``sha384sum`` vs ``cp`` then ``deepseek-weights place``;
* encrypt / decrypt: ``openssl enc -aes-256-ctr`` shard by shard (``openssl enc`` refuses
  AEAD modes such as GCM, so CTR, the same AES core without authentication, is the
  closest), after ``sha384sum`` (the verify) and followed by ``sync`` (the tool fsyncs what it
  writes); the tool also hashes the ciphertext for the re-hash timer.

The data is generated once (``--keep`` leaves it for the next run). Numbers with the data
in the page cache measure CPU; pass ``--drop-caches`` (root) to include reads from disk.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from deepseek_node.weights.crypto import Key, decrypt_file  # noqa: E402
from deepseek_node.weights.manifest import MANIFEST_FILENAME, build_manifest, save_manifest  # noqa: E402
from deepseek_node.weights.plan import ENCRYPTED_SUFFIX  # noqa: E402
from deepseek_node.weights.release import place, release_binding  # noqa: E402

MODEL, SLUG, REVISION = "bench/synthetic", "bench--synthetic", "bench"
GB = 1e9


def generate(dest: Path, total: int, shards: int) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    per = total // shards
    for i in range(shards):
        path = dest / f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        if path.exists() and path.stat().st_size == per:
            continue
        with open(path, "wb") as fh:
            left = per
            while left:
                n = min(64 * 1024 * 1024, left)
                fh.write(os.urandom(n))
                left -= n
    (dest / "config.json").write_text('{"model_type": "deepseek_v3", "_bench": true}\n')


def timed(label: str, func) -> float:
    start = time.monotonic()
    func()
    seconds = time.monotonic() - start
    print(f"  {label:<58} {seconds:7.2f} s", flush=True)
    return seconds


def sh(command: str) -> None:
    subprocess.run(["bash", "-c", command], check=True, stdout=subprocess.DEVNULL)


def drop_caches(enabled: bool) -> None:
    if enabled:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def single_core_sha384(size: int = 512 * 1024 * 1024) -> float:
    block = os.urandom(64 * 1024 * 1024)
    digest = hashlib.sha384()
    start = time.monotonic()
    for _ in range(size // len(block)):
        digest.update(block)
    return size / (time.monotonic() - start) / GB


def single_core_aes_gcm(size: int = 512 * 1024 * 1024) -> float:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead, block, nonce = AESGCM(os.urandom(32)), os.urandom(4 * 1024 * 1024), os.urandom(12)
    start = time.monotonic()
    for _ in range(size // len(block)):
        aead.encrypt(nonce, block, None)
    return size / (time.monotonic() - start) / GB


def disk_write(directory: Path, size: int = 1024**3) -> float:
    path = directory / "dd.bin"
    start = time.monotonic()
    sh(f"dd if=/dev/zero of={path} bs=16M count={size // (16 * 1024 * 1024)} conv=fdatasync status=none")
    seconds = time.monotonic() - start
    path.unlink()
    return size / seconds / GB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=4.0, help="checkpoint size, GiB (default 4)")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--dir", default="/var/tmp/dsw-bench", help="work directory (needs ~4x the size free)")
    parser.add_argument("--keep", action="store_true", help="keep the generated shards for the next run")
    parser.add_argument("--drop-caches", action="store_true", help="drop the page cache before each step (root)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    work = Path(args.dir)
    source = work / "source"
    total = int(args.gib * 1024**3)
    print(f"weights benchmark: {args.gib} GiB in {args.shards} shards, {cores} cores, work dir {work}", flush=True)
    generate(source, total, args.shards)
    manifest = build_manifest(source, MODEL, REVISION)
    save_manifest(manifest, source / MANIFEST_FILENAME)
    size = manifest.total_size
    group = os.getgid()
    import grp

    group_name = grp.getgrgid(group).gr_name
    shards = " ".join(str(source / e.path) for e in manifest.files)
    key_file = work / "bench.key"
    key_file.write_text(Key.generate().secret_bytes().hex())
    key_file.chmod(0o600)
    hexkey = key_file.read_text().strip()
    results: dict[str, float] = {}

    def fresh_staging(models: Path) -> Path:
        shutil.rmtree(models, ignore_errors=True)
        staging = models / SLUG / ".staging" / REVISION
        staging.parent.mkdir(parents=True)
        return staging

    print("verify (hash every byte against the manifest):")
    drop_caches(args.drop_caches)
    results["baseline_sha384sum"] = timed("sha384sum, one process", lambda: sh(f"sha384sum {shards}"))
    drop_caches(args.drop_caches)
    results["baseline_sha384sum_parallel"] = timed(
        f"xargs -P {cores} sha384sum", lambda: sh(f"printf '%s\\n' {shards} | xargs -P {cores} -n 1 sha384sum"))
    models = work / "models"
    staging = fresh_staging(models)
    sh(f"cp -r {source} {staging}")
    drop_caches(args.drop_caches)
    results["tool_place"] = timed("deepseek-weights place (verify + publish + switch)",
                                  lambda: place(models, SLUG, REVISION, group=group_name))

    print("copy + verify (a local push, then placement):")
    dest = work / "copy"
    shutil.rmtree(dest, ignore_errors=True)
    drop_caches(args.drop_caches)
    results["baseline_cp_sha384sum"] = timed("cp -r + sha384sum", lambda: sh(f"cp -r {source} {dest} && cd {dest} && sha384sum *.safetensors"))
    shutil.rmtree(dest, ignore_errors=True)
    staging = fresh_staging(models)
    drop_caches(args.drop_caches)
    results["tool_cp_place"] = timed("cp -r + deepseek-weights place", lambda: (sh(f"cp -r {source} {staging}"),
                                                                                place(models, SLUG, REVISION, group=group_name)))

    print("encrypt at rest (AES-256-GCM, every file) and decrypt:")
    staging = fresh_staging(models)
    sh(f"cp -r {source} {staging}")
    iv = "00" * 16
    enc_dir = work / "openssl"
    shutil.rmtree(enc_dir, ignore_errors=True)
    enc_dir.mkdir()
    drop_caches(args.drop_caches)
    results["baseline_openssl_enc"] = timed(
        "sha384sum + openssl enc -aes-256-ctr per shard + sync",
        lambda: sh(f"sha384sum {shards} && for f in {shards}; do openssl enc -aes-256-ctr -K {hexkey} -iv {iv} "
                   f"-in $f -out {enc_dir}/$(basename $f).enc; done && sync"))
    drop_caches(args.drop_caches)
    results["tool_place_encrypted"] = timed("deepseek-weights place --key (verify + encrypt + publish)",
                                            lambda: place(models, SLUG, REVISION, key_source=f"file:{key_file}", group=group_name))
    out = Path(tempfile.mkdtemp(prefix="dsw-bench-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    key = Key(bytes.fromhex(hexkey))
    release = models / SLUG / REVISION
    drop_caches(args.drop_caches)
    results["baseline_openssl_dec"] = timed(
        "openssl enc -d -aes-256-ctr into memory (/dev/shm)",
        lambda: sh(f"for f in {enc_dir}/*.enc; do openssl enc -d -aes-256-ctr -K {hexkey} -iv {iv} -in $f -out {out}/x; done"))
    drop_caches(args.drop_caches)
    results["tool_decrypt"] = timed(
        "decrypt every .dsenc into memory (/dev/shm), authenticated",
        lambda: [decrypt_file(release / (e.path + ENCRYPTED_SUFFIX), out / "y", key,
                              bind=release_binding(SLUG, REVISION, e.path)) for e in manifest.files])
    shutil.rmtree(out, ignore_errors=True)

    print("machine limits:")
    sha1 = single_core_sha384()
    gcm1 = single_core_aes_gcm()
    disk = disk_write(work)
    print(f"  SHA-384, one core: {sha1:.2f} GB/s -> {cores} cores: {sha1 * cores:.2f} GB/s")
    print(f"  AES-256-GCM (cryptography), one core: {gcm1:.2f} GB/s -> {cores} cores: {gcm1 * cores:.2f} GB/s")
    print(f"  disk write (dd conv=fdatasync, 1 GiB): {disk:.2f} GB/s")

    pairs = [
        ("verify", "tool_place", "baseline_sha384sum"),
        ("verify vs parallel sha384sum", "tool_place", "baseline_sha384sum_parallel"),
        ("copy + verify", "tool_cp_place", "baseline_cp_sha384sum"),
        ("verify + encrypt (durable)", "tool_place_encrypted", "baseline_openssl_enc"),
        ("decrypt vs openssl enc -d", "tool_decrypt", "baseline_openssl_dec"),
    ]
    print(f"\nthroughput on {size / GB:.2f} GB (GB/s, higher is better; ratio = tool / baseline):")
    summary = {"bytes": size, "cores": cores, "sha384_one_core_GBps": round(sha1, 3),
               "aes_gcm_one_core_GBps": round(gcm1, 3), "disk_write_GBps": round(disk, 3)}
    for label, tool, base in pairs:
        tool_rate, base_rate = size / results[tool] / GB, size / results[base] / GB
        print(f"  {label:<34} tool {tool_rate:6.2f}   baseline {base_rate:6.2f}   ratio {tool_rate / base_rate:5.2f}")
        summary[label] = {"tool_GBps": round(tool_rate, 3), "baseline_GBps": round(base_rate, 3),
                          "ratio": round(tool_rate / base_rate, 2)}
    print(json.dumps(summary, sort_keys=True))
    shutil.rmtree(models, ignore_errors=True)
    shutil.rmtree(enc_dir, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
