"""Pure planning of weight releases: names, URLs, sizes, what to push, what to prune."""

from __future__ import annotations

import hashlib
import io

import pytest

from deepseek_node.weights.crypto import Key, encrypt_stream
from deepseek_node.weights.manifest import FileEntry, Manifest
from deepseek_node.weights.plan import (
    ENCRYPT_WORKERS,
    ReleaseInfo,
    StagedFile,
    check_revision,
    encrypted_size,
    file_url,
    model_slug,
    plan_push,
    previous_release,
    releases_to_prune,
    space_needed,
    tmpfs_size,
    url_prefix,
)

MIB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha384(data).hexdigest()


def manifest_of(files: dict[str, bytes]) -> Manifest:
    return Manifest(model="deepseek-ai/M", revision="r1",
                    files=tuple(FileEntry(p, len(b), sha(b)) for p, b in files.items()), created_by="test")


def test_model_slug_is_one_path_component():
    assert model_slug("deepseek-ai/DeepSeek-V3") == "deepseek-ai--DeepSeek-V3"
    for bad in ("DeepSeek-V3", "a/b/c", "../x", "a/..", "/abs"):
        with pytest.raises(ValueError, match="repo id"):
            model_slug(bad)


@pytest.mark.parametrize("bad", ["", "current", "a/b", "..", "x..y", "-lead", "a" * 129, "rev with space"])
def test_check_revision_refuses_what_cannot_be_a_directory_name(bad):
    with pytest.raises(ValueError, match="revision"):
        check_revision(bad)


def test_check_revision_accepts_tags_and_commits():
    assert check_revision("v1.0") == "v1.0"
    assert check_revision("0123456789abcdef0123456789abcdef01234567") == "0123456789abcdef0123456789abcdef01234567"


def test_url_prefix_layouts():
    assert url_prefix("http", "http://mirror:8080/", "deepseek-ai/DeepSeek-V3", "main") == \
        "http://mirror:8080/deepseek-ai/DeepSeek-V3/main/"
    assert url_prefix("hf", "https://hf.internal/api", "deepseek-ai/DeepSeek-V3", "abc123") == \
        "https://hf.internal/api/deepseek-ai/DeepSeek-V3/resolve/abc123/"


def test_url_prefix_refuses_bad_input():
    with pytest.raises(ValueError, match="http:// or https://"):
        url_prefix("http", "ftp://mirror", "a/b", "r1")
    with pytest.raises(ValueError, match="'http' or 'hf'"):
        url_prefix("s3", "http://mirror", "a/b", "r1")
    with pytest.raises(ValueError, match="revision"):
        url_prefix("hf", "http://mirror", "a/b", "refs/pr/1")


def test_file_url_quotes_each_component_but_keeps_slashes():
    assert file_url("http://m/a/b/r/", "original/my file#1.json") == "http://m/a/b/r/original/my%20file%231.json"


@pytest.mark.parametrize("size", [0, 1, 4 * MIB - 1, 4 * MIB, 4 * MIB + 1, 9 * MIB + 7])
def test_encrypted_size_matches_the_crypto_module(size):
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(b"\0" * size), out, Key.generate(), 4 * MIB)
    assert encrypted_size(size, 4 * MIB) == len(out.getvalue())


def test_tmpfs_size_rounds_each_file_to_pages_plus_slack():
    manifest = manifest_of({"a": b"x", "b": b"y" * 4097})
    assert tmpfs_size(manifest, page=4096, slack=100) == 4096 + 8192 + 100


def test_fresh_push_batches_small_files_and_chunks_large_ones():
    files = {"config.json": b"{}", "tok.json": b"t" * 3000, "big.bin": b"b" * 2500}
    plan = plan_push(manifest_of(files), {}, lambda p, n: pytest.fail("no partial file to compare"),
                     batch_bytes=2048, chunk_bytes=1000)
    assert [b.paths for b in plan.batches] == [("config.json",)]
    # Files above the batch size go in chunks, each resumable on its own.
    assert [(c.path, c.offset, c.length) for c in plan.chunks] == [
        ("big.bin", 0, 1000), ("big.bin", 1000, 1000), ("big.bin", 2000, 500),
        ("tok.json", 0, 1000), ("tok.json", 1000, 1000), ("tok.json", 2000, 1000),
    ]
    assert plan.bytes == 2 + 3000 + 2500


def test_batches_split_at_the_batch_size():
    files = {f"f{i}": bytes([i]) * 400 for i in range(5)}
    plan = plan_push(manifest_of(files), {}, lambda p, n: "", batch_bytes=1000, chunk_bytes=1000)
    assert [b.paths for b in plan.batches] == [("f0", "f1"), ("f2", "f3"), ("f4",)]
    assert [b.size for b in plan.batches] == [800, 800, 400]


def test_nothing_to_push_when_everything_is_staged_with_the_right_hash():
    files = {"a": b"a" * 10, "big": b"b" * 5000}
    staged = {p: StagedFile(len(b), sha(b)) for p, b in files.items()}
    plan = plan_push(manifest_of(files), staged, lambda p, n: pytest.fail("not partial"), 1000, 1000)
    assert plan.empty and plan.bytes == 0 and sorted(plan.skipped) == ["a", "big"]


def test_partial_large_file_resumes_after_the_staged_prefix_when_it_matches():
    data = bytes(range(256)) * 20  # 5120 bytes
    staged = {"big": StagedFile(2000, sha(data[:2000]))}
    asked = []

    def prefix(path, n):
        asked.append((path, n))
        return sha(data[:n])

    plan = plan_push(manifest_of({"big": data}), staged, prefix, batch_bytes=1000, chunk_bytes=2000)
    assert asked == [("big", 2000)]
    assert plan.resumed == {"big": 2000}
    assert [(c.offset, c.length) for c in plan.chunks] == [(2000, 2000), (4000, 1120)]


def test_partial_file_with_other_bytes_is_sent_whole():
    data = b"x" * 5000
    staged = {"big": StagedFile(2000, sha(b"y" * 2000))}
    plan = plan_push(manifest_of({"big": data}), staged, lambda p, n: sha(data[:n]), 1000, 5000)
    assert plan.resumed == {} and [(c.offset, c.length) for c in plan.chunks] == [(0, 5000)]


def test_wrong_full_size_staged_file_is_replaced():
    data = b"x" * 100
    staged = {"a": StagedFile(100, sha(b"z" * 100))}  # same size, other bytes
    plan = plan_push(manifest_of({"a": data}), staged, lambda p, n: "", 1000, 1000)
    assert [b.paths for b in plan.batches] == [("a",)]


def test_space_needed_counts_only_what_is_missing():
    files = {"a": b"a" * 1000, "b": b"b" * 3000}
    manifest = manifest_of(files)
    assert space_needed(manifest, {}, encrypted=False) == 4000
    assert space_needed(manifest, {"a": StagedFile(1000), "b": StagedFile(1000)}, encrypted=False) == 2000
    # A staged file longer than the manifest's is replaced whole.
    assert space_needed(manifest, {"a": StagedFile(5000)}, encrypted=False) == 4000


def test_space_needed_for_encryption_adds_the_ciphertexts_in_flight_and_the_tags():
    sizes = {f"f{i}": 1000 * (i + 1) for i in range(ENCRYPT_WORKERS + 2)}
    manifest = manifest_of({p: b"x" * n for p, n in sizes.items()})
    largest = sorted(sizes.values(), reverse=True)[:ENCRYPT_WORKERS]
    tags = sum(encrypted_size(n, 4 * MIB) - n for n in sizes.values())
    in_flight = sum(encrypted_size(n, 4 * MIB) for n in largest)
    assert space_needed(manifest, {}, encrypted=True) == sum(sizes.values()) + in_flight + tags


def releases(*spec: tuple[str, float]) -> list[ReleaseInfo]:
    return [ReleaseInfo(name, placed) for name, placed in spec]


def test_prune_keeps_the_newest_and_always_current():
    placed = releases(("r1", 1), ("r2", 2), ("r3", 3), ("r4", 4))
    assert releases_to_prune(placed, "r4", keep=2) == ["r1", "r2"]
    # After a rollback to r2, current is kept even though newer ones exist.
    assert releases_to_prune(placed, "r2", keep=2) == ["r1", "r3"]
    assert releases_to_prune(placed, "r4", keep=1) == ["r1", "r2", "r3"]
    assert releases_to_prune(placed, "r4", keep=10) == []
    with pytest.raises(ValueError):
        releases_to_prune(placed, "r4", keep=0)


def test_previous_release_is_the_one_placed_before_current():
    placed = releases(("r1", 1), ("r2", 2), ("r3", 3))
    assert previous_release(placed, "r3") == "r2"
    assert previous_release(placed, "r2") == "r1"
    assert previous_release(placed, "r1") is None
    assert previous_release(placed, None) is None
    assert previous_release(placed, "gone") is None
