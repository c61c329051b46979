"""The node tool end to end on temp directories: fetch (against a real local HTTP server with
Range support and injected faults), place, encrypt, check, prune, roll back, exit codes."""

from __future__ import annotations

import grp
import json
import os
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from lab.weights_mirror import generate_checkpoint
from lab.weights_mirror_server import Handler
from deepseek_node.weights.crypto import Key, binding, decrypt_file
from deepseek_node.weights.manifest import MANIFEST_FILENAME, load_manifest
from deepseek_node.weights.fetch import fetch
from deepseek_node.weights.node import main as tool
from deepseek_node.weights.plan import url_prefix
from deepseek_node.weights.release import (
    ReleaseError,
    check_current,
    current_revision,
    place,
    receive_part,
    receive_tar,
    rollback,
    status,
)

MODEL, SLUG = "deepseek-ai/M", "deepseek-ai--M"
GROUP = grp.getgrgid(os.getgid()).gr_name
SHARD = "model-00001-of-00002.safetensors"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror")
    for revision in ("r1", "r2", "r3"):
        generate_checkpoint(root / MODEL / revision, MODEL, revision, shard_mib=2)
    handler = type("H", (Handler,), {"root": str(root)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    (root / ".faults.json").unlink(missing_ok=True)


def stage(models: Path, mirror_root: Path, revision: str) -> Path:
    staging = models / SLUG / ".staging" / revision
    staging.mkdir(parents=True, exist_ok=True)
    (staging / MANIFEST_FILENAME).write_bytes((mirror_root / MODEL / revision / MANIFEST_FILENAME).read_bytes())
    return staging


def fetch_release(models, mirror, revision, **kwargs):
    root, base = mirror
    staging = stage(models, root, revision)
    manifest = load_manifest(staging / MANIFEST_FILENAME)
    return fetch(manifest, staging, url_prefix("hf", base, MODEL, revision), **kwargs)


def test_fetch_resumes_a_cut_download_and_skips_finished_files(tmp_path, mirror, capsys):
    root, _ = mirror
    (root / ".faults.json").write_text(json.dumps({f"{MODEL}/r1/{SHARD}": {"cut_after": 700_000, "times": 1}}))
    try:
        first = fetch_release(tmp_path, mirror, "r1", retries=0)
    finally:
        (root / ".faults.json").unlink()
    assert not first.ok and [e["path"] for e in first.errors] == [SHARD], first.to_dict()
    assert (tmp_path / SLUG / ".staging/r1" / SHARD).stat().st_size == 700_000
    second = fetch_release(tmp_path, mirror, "r1", retries=0)
    assert second.ok, second.to_dict()
    assert second.downloaded == [SHARD] and second.resumed == {SHARD: 700_000}
    assert second.downloaded_bytes == 2 * 1024 * 1024 - 700_000
    assert len(second.skipped) == len(load_manifest(root / MODEL / "r1" / MANIFEST_FILENAME).files) - 1
    result = place(tmp_path, SLUG, "r1", group=GROUP)
    assert result["ok"] and current_revision(tmp_path / SLUG) == "r1"


def test_fetch_deletes_a_file_whose_hash_differs(tmp_path, mirror):
    root, _ = mirror
    shard = root / MODEL / "r2" / SHARD
    original = shard.read_bytes()
    shard.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
    try:
        report = fetch_release(tmp_path, mirror, "r2", retries=0)
    finally:
        shard.write_bytes(original)
    assert [m["path"] for m in report.hash_mismatch] == [SHARD]
    assert not (tmp_path / SLUG / ".staging/r2" / SHARD).exists()


def test_place_refuses_a_flipped_byte_and_keeps_current(tmp_path, mirror):
    assert fetch_release(tmp_path, mirror, "r1").ok
    place(tmp_path, SLUG, "r1", group=GROUP)
    root, _ = mirror
    staging = stage(tmp_path, root, "r2")
    for entry in load_manifest(staging / MANIFEST_FILENAME).files:  # pushed files: not hashed yet
        (staging / entry.path).parent.mkdir(parents=True, exist_ok=True)
        (staging / entry.path).write_bytes((root / MODEL / "r2" / entry.path).read_bytes())
    data = bytearray((staging / SHARD).read_bytes())
    data[12345] ^= 0x40
    (staging / SHARD).write_bytes(bytes(data))
    with pytest.raises(ReleaseError, match=f"sha384 of {SHARD}") as error:
        place(tmp_path, SLUG, "r2", group=GROUP)
    assert error.value.exit_code == 1
    assert current_revision(tmp_path / SLUG) == "r1"
    assert not (tmp_path / SLUG / "r2").exists()
    assert not (staging / SHARD).exists(), "the bad file stays in staging"


def test_place_refuses_a_manifest_other_than_the_pinned_one(tmp_path, mirror):
    assert fetch_release(tmp_path, mirror, "r1").ok
    with pytest.raises(ReleaseError, match="differs from the pinned"):
        place(tmp_path, SLUG, "r1", expect_sha384="0" * 96, group=GROUP)
    assert current_revision(tmp_path / SLUG) is None


def test_release_permissions_prune_and_rollback(tmp_path, mirror):
    for revision in ("r1", "r2", "r3"):
        assert fetch_release(tmp_path, mirror, revision).ok
        result = place(tmp_path, SLUG, revision, keep=2, group=GROUP)
    assert result["pruned"] == ["r1"] and sorted(p.name for p in (tmp_path / SLUG).iterdir() if not p.name.startswith(".")) == ["current", "r2", "r3"]
    release = tmp_path / SLUG / "r3"
    assert oct(release.stat().st_mode & 0o777) == "0o750"
    assert oct((release / SHARD).stat().st_mode & 0o777) == "0o640"
    assert rollback(tmp_path, SLUG) == {"ok": True, "from": "r3", "to": "r2"}
    with pytest.raises(ReleaseError, match="no release placed before 'r2'"):
        rollback(tmp_path, SLUG)
    again = place(tmp_path, SLUG, "r3", group=GROUP)  # placed already: a switch, no transfer
    assert again["switched"] and not again["transferred"] and current_revision(tmp_path / SLUG) == "r3"


def test_encrypted_release_holds_only_ciphertext_and_decrypts_to_the_original(tmp_path, mirror):
    root, _ = mirror
    key_file = tmp_path / "k.key"
    key_file.write_text(Key.generate().secret_bytes().hex())
    key_file.chmod(0o600)
    assert fetch_release(tmp_path, mirror, "r1").ok
    result = place(tmp_path, SLUG, "r1", key_source=f"file:{key_file}", group=GROUP)
    assert result["encrypted"]
    release = tmp_path / SLUG / "r1"
    manifest = load_manifest(root / MODEL / "r1" / MANIFEST_FILENAME)
    names = {p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file()}
    assert names == {e.path + ".dsenc" for e in manifest.files} | {MANIFEST_FILENAME, "MANIFEST.dsenc.json", ".release.json"}
    decrypt_file(release / (SHARD + ".dsenc"), tmp_path / "out", Key(bytes.fromhex(key_file.read_text())),
                 bind=binding(SLUG, "r1", SHARD))  # bound to its place (crypto format 2)
    assert (tmp_path / "out").read_bytes() == (root / MODEL / "r1" / SHARD).read_bytes()
    assert check_current(tmp_path, SLUG, full=True)["ok"]
    wrong = tmp_path / "wrong.key"
    wrong.write_text(Key.generate().secret_bytes().hex())
    wrong.chmod(0o600)
    doc = status(tmp_path, SLUG, "r1", hash_staged=False, key_path=wrong)
    assert doc["releases"]["r1"]["key_fingerprint"] != doc["key"]["fingerprint"]
    assert key_file.read_text() not in json.dumps(doc) + json.dumps(result)


def test_check_finds_a_truncated_file_fast_and_a_flipped_byte_in_full(tmp_path, mirror, capsys):
    assert fetch_release(tmp_path, mirror, "r1").ok
    place(tmp_path, SLUG, "r1", group=GROUP)
    shard = tmp_path / SLUG / "current" / SHARD
    data = bytearray(shard.read_bytes())
    data[7] ^= 1
    shard.write_bytes(bytes(data))
    assert tool(["check", "--models-dir", str(tmp_path), "--model", SLUG]) == 0  # sizes only
    assert tool(["verify-current", "--models-dir", str(tmp_path), "--rate-limit", "64M"]) == 1
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["event"] == "deepseek-weights-verify" and not line["ok"]
    assert any(SHARD in problem for problem in line["problems"])
    shard.write_bytes(bytes(data[:-1]))
    assert tool(["check", "--models-dir", str(tmp_path), "--model", SLUG]) == 1


def test_check_with_a_revision_refuses_a_unit_rendered_for_another_release(tmp_path, mirror, capsys):
    for revision in ("r1", "r2"):
        assert fetch_release(tmp_path, mirror, revision).ok
        place(tmp_path, SLUG, revision, group=GROUP)
    check = ["check", "--models-dir", str(tmp_path), "--model", SLUG]
    assert tool([*check, "--revision", "r2"]) == 0
    capsys.readouterr()
    assert tool([*check, "--revision", "r1"]) == 1  # the engine set up for r1, but r2 is published
    doc = json.loads(capsys.readouterr().out)
    assert doc["revision"] == "r2" and "is release 'r2', the engine is set up for 'r1'" in doc["problems"][0], doc
    rollback(tmp_path, SLUG)
    assert tool([*check, "--revision", "r1"]) == 0
    with pytest.raises(SystemExit):  # not a revision: refused by the parser
        tool([*check, "--revision", "../r1"])


def test_receive_batches_and_parts(tmp_path):
    import io
    import tarfile

    staging = tmp_path / "s"
    staging.mkdir()
    tar_path = tmp_path / "b.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name, data in (("a.json", b"{}"), ("sub/b.txt", b"hello")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert receive_tar(staging, tar_path) == 2 and (staging / "sub/b.txt").read_bytes() == b"hello"
    assert not tar_path.exists()
    part = tmp_path / "p"
    part.write_bytes(b"0123")
    assert receive_part(staging, "big", 0, part) == 4
    part.write_bytes(b"4567")
    assert receive_part(staging, "big", 4, part) == 8
    part.write_bytes(b"XY")  # a retried chunk overwrites from its offset
    assert receive_part(staging, "big", 4, part) == 6 and (staging / "big").read_bytes() == b"0123XY"
    part.write_bytes(b"Z")
    with pytest.raises(ReleaseError, match="cannot append at 10"):
        receive_part(staging, "big", 10, part)


def test_rollback_without_history_exits_2(tmp_path, capsys):
    assert tool(["rollback", "--models-dir", str(tmp_path), "--model", SLUG]) == 2
    assert "no release placed before" in json.loads(capsys.readouterr().out)["error"]
