import hashlib
import json
import os
import time
import tracemalloc

import pytest

from deepseek_node.weights.manifest import (
    MANIFEST_FILENAME,
    FileEntry,
    Manifest,
    ManifestError,
    _body_hash,
    build_manifest,
    hash_file,
    load_manifest,
    save_manifest,
    verify_directory,
)


@pytest.fixture
def ckpt(tmp_path):
    """A small checkpoint: several blocks, nested dirs, an empty file."""
    root = tmp_path / "ckpt"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "model-00001.safetensors").write_bytes(os.urandom(300_000))
    (root / "model-00002.safetensors").write_bytes(os.urandom(123_457))
    (root / "config.json").write_text('{"hidden_size": 7168}')
    (root / "sub" / "tokenizer.json").write_bytes(os.urandom(5000))
    (root / "sub" / "deep" / "empty").write_bytes(b"")
    return root


def _expected(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            full = os.path.join(dirpath, name)
            data = open(full, "rb").read()
            out[os.path.relpath(full, root).replace(os.sep, "/")] = (len(data), hashlib.sha384(data).hexdigest())
    return out


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_manifest_lists_every_regular_file_with_size_and_sha384(ckpt):
    m = build_manifest(ckpt, "deepseek-ai/DeepSeek-V3", "abc123", block_size=4096)
    assert {e.path: (e.size, e.sha384) for e in m.files} == _expected(ckpt)
    assert [e.path for e in m.files] == sorted(e.path for e in m.files)
    assert (m.model, m.revision) == ("deepseek-ai/DeepSeek-V3", "abc123")
    assert m.created_by.startswith("deepseek-infra ")
    assert m.total_size == sum(size for size, _ in _expected(ckpt).values())


def test_parallel_hashing_equals_sequential_hashlib(ckpt):
    parallel = build_manifest(ckpt, "m", "r", workers=4, block_size=1000)
    sequential = build_manifest(ckpt, "m", "r", workers=1, block_size=1 << 20)
    assert parallel == sequential
    assert parallel.manifest_sha384 == sequential.manifest_sha384


def test_hash_file_streams_instead_of_reading_whole_file(tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as fh:
        for _ in range(16):
            fh.write(os.urandom(1 << 20))
    tracemalloc.start()
    try:
        size, digest = hash_file(big, block_size=256 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (size, digest) == (16 << 20, hashlib.sha384(big.read_bytes()).hexdigest())
    assert peak < 2 << 20, f"peak traced memory {peak} bytes for a 16 MiB file"


def test_manifest_is_deterministic(ckpt):
    assert build_manifest(ckpt, "m", "r").to_json() == build_manifest(ckpt, "m", "r").to_json()


def test_json_round_trip_and_formatting_does_not_matter(ckpt):
    m = build_manifest(ckpt, "m", "r")
    assert Manifest.from_json(m.to_json()) == m
    # Re-serialised with other whitespace and key order: same content, still valid.
    compact = json.dumps(json.loads(m.to_json()), separators=(",", ":"))
    assert Manifest.from_json(compact).manifest_sha384 == m.manifest_sha384


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["files"][0].update(size=d["files"][0]["size"] + 1),
        lambda d: d["files"][1].update(sha384="0" * 96),
        lambda d: d.update(revision="other"),
        lambda d: d["files"].pop(),
        lambda d: d["files"].append({"path": "zz-new", "size": 1, "sha384": "a" * 96}),
    ],
    ids=["size", "sha", "revision", "dropped-file", "added-file"],
)
def test_from_json_detects_tampering(ckpt, tamper):
    doc = json.loads(build_manifest(ckpt, "m", "r").to_json())
    tamper(doc)
    with pytest.raises(ManifestError, match="self-hash mismatch"):
        Manifest.from_json(json.dumps(doc))


def _resealed(doc):
    """A document whose self-hash is valid again, so only the schema check can reject it."""
    doc.pop("manifest_sha384", None)
    doc["manifest_sha384"] = _body_hash(doc)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["files"][0].update(path="../etc/passwd"), r"'\.\.'"),
        (lambda d: d["files"][0].update(path="/etc/passwd"), "must be relative"),
        (lambda d: d["files"][0].update(path="a//b"), "empty components"),
        (lambda d: d["files"][0].update(path="./a"), r"'\.'"),
        (lambda d: d["files"][0].update(size=-1), "size must be an integer"),
        (lambda d: d["files"][0].update(size=True), "size must be an integer"),
        (lambda d: d["files"][0].update(sha384="ABC"), "96 lowercase hex"),
        (lambda d: d["files"][0].update(extra=1), "expected an object with keys"),
        (lambda d: d.update(format=2), "format: expected 1"),
        (lambda d: d.update(format=1.0), "format: expected 1"),
        (lambda d: d["files"][0].update(sha384=d["files"][0]["sha384"] + "\n"), "96 lowercase hex"),
        (lambda d: d.update(algorithm="sha256"), "algorithm"),
        (lambda d: d.update(comment="x"), "unexpected"),
        (lambda d: d.pop("model"), "missing"),
        (lambda d: d["files"].append(dict(d["files"][0])), "duplicate"),
        (lambda d: d["files"].reverse(), "not sorted"),
    ],
)
def test_from_json_rejects_bad_schema(ckpt, edit, message):
    doc = json.loads(build_manifest(ckpt, "m", "r").to_json())
    edit(doc)
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(_resealed(doc))


def test_from_json_rejects_non_json_and_non_objects():
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_json("{not json")
    with pytest.raises(ManifestError, match="must be a JSON object"):
        Manifest.from_json("[]")


def test_manifest_constructor_rejects_unsafe_paths():
    with pytest.raises(ManifestError, match="'\\.\\.'"):
        Manifest("m", "r", (FileEntry("a/../../x", 1, "a" * 96),))


def test_save_and_load_manifest(ckpt, tmp_path):
    m = build_manifest(ckpt, "m", "r")
    path = tmp_path / "m.json"
    save_manifest(m, path)
    assert load_manifest(path) == m
    path.write_text(path.read_text().replace('"revision": "r"', '"revision": "x"'))
    with pytest.raises(ManifestError, match=f"{path}: manifest self-hash mismatch"):
        load_manifest(path)


def test_verify_clean_directory_is_ok_with_manifest_inside_it(ckpt):
    m = build_manifest(ckpt, "m", "r")
    save_manifest(m, ckpt / MANIFEST_FILENAME)  # excluded from the listing by default
    result = verify_directory(ckpt, m)
    assert result.ok, result.to_dict()
    assert result.hashed_bytes == m.total_size


def test_verify_detects_flip_truncation_missing_and_extra(ckpt):
    m = build_manifest(ckpt, "m", "r")
    _flip(ckpt / "model-00001.safetensors", 150_000)
    with open(ckpt / "model-00002.safetensors", "r+b") as fh:
        fh.truncate(100)
    (ckpt / "config.json").unlink()
    (ckpt / "sub" / "stray.bin").write_bytes(b"x")
    result = verify_directory(ckpt, m, workers=3)
    assert not result.ok
    assert result.missing == ("config.json",)
    assert result.extra == ("sub/stray.bin",)
    assert [(x.path, x.expected, x.found) for x in result.size_mismatch] == [("model-00002.safetensors", 123_457, 100)]
    assert [x.path for x in result.hash_mismatch] == ["model-00001.safetensors"]
    doc = result.to_dict()
    assert doc["ok"] is False and doc["missing"] == ["config.json"]


def test_fast_mode_catches_size_change_but_not_same_size_flip(ckpt):
    """Documented limit: fast mode is list + sizes only; the timer's full re-hash catches flips."""
    m = build_manifest(ckpt, "m", "r")
    _flip(ckpt / "model-00001.safetensors", 10)
    fast = verify_directory(ckpt, m, full=False)
    assert fast.ok and fast.hashed_bytes == 0
    assert not verify_directory(ckpt, m, full=True).ok
    with open(ckpt / "config.json", "ab") as fh:
        fh.write(b" ")
    fast = verify_directory(ckpt, m, full=False)
    assert [x.path for x in fast.size_mismatch] == ["config.json"]


def test_verify_fails_on_unpinned_manifest(ckpt):
    m = build_manifest(ckpt, "m", "r")
    assert verify_directory(ckpt, m, full=False, expected_manifest_sha384=m.manifest_sha384).ok
    result = verify_directory(ckpt, m, full=False, expected_manifest_sha384="0" * 96)
    assert result.manifest_mismatch and not result.ok


def test_symlink_inside_directory_is_not_recorded(ckpt):
    os.symlink("config.json", ckpt / "config-link.json")
    os.symlink("sub", ckpt / "sub-link")
    m = build_manifest(ckpt, "m", "r")
    paths = {e.path for e in m.files}
    assert "config-link.json" not in paths and not any(p.startswith("sub-link") for p in paths)
    assert "sub/tokenizer.json" in paths
    assert verify_directory(ckpt, m).ok


@pytest.mark.parametrize("target_is_dir", [False, True])
def test_symlink_escaping_directory_is_refused(ckpt, tmp_path, target_is_dir):
    outside = tmp_path / "outside"
    if target_is_dir:
        outside.mkdir()
    else:
        outside.write_bytes(b"secret")
    m = build_manifest(ckpt, "m", "r")
    os.symlink(outside, ckpt / "sub" / "escape")
    with pytest.raises(ManifestError, match="'sub/escape' points outside"):
        build_manifest(ckpt, "m", "r")
    with pytest.raises(ManifestError, match="points outside"):
        verify_directory(ckpt, m)


def test_special_files_are_refused(ckpt):
    os.mkfifo(ckpt / "pipe")
    with pytest.raises(ManifestError, match="'pipe' is not a regular file"):
        build_manifest(ckpt, "m", "r")


def test_rate_limit_slows_full_verify(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    for i in range(2):
        (root / f"f{i}").write_bytes(os.urandom(256 * 1024))
    m = build_manifest(root, "m", "r")
    rate = 1024 * 1024  # 512 KiB at 1 MiB/s -> 0.5 s
    start = time.monotonic()
    result = verify_directory(root, m, workers=2, rate_limit_bytes_per_s=rate)
    elapsed = time.monotonic() - start
    assert result.ok
    assert elapsed >= 0.5 * 0.8, f"rate limit not applied: {elapsed:.3f}s for 512 KiB at 1 MiB/s"
    start = time.monotonic()
    verify_directory(root, m, workers=2)
    assert time.monotonic() - start < elapsed / 2


def test_rate_limit_must_be_positive(ckpt):
    with pytest.raises(ValueError, match="rate_limit_bytes_per_s must be > 0"):
        verify_directory(ckpt, build_manifest(ckpt, "m", "r"), rate_limit_bytes_per_s=0)
