"""Security review fixes of the weights tool, each as the attack it must stop:

3. encrypted shards bound to their model, release and path (swap, copy from an older release, format 1);
4. staged files trusted only while the very same inode is unchanged, never through a symlink;
15. receivers write only inside staging (names, tar members, symlinks already in staging);
16. a published release hides no file: only its own control files are skipped, at their exact place.
"""

from __future__ import annotations

import grp
import io
import os
import shutil
import struct
import subprocess
import tarfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lab.weights_mirror import generate_checkpoint
from lab.weights_mirror_server import Handler
from deepseek_node.weights import release as release_mod
from deepseek_node.weights.cli import main as cli_main
from deepseek_node.weights.crypto import DecryptionError, Key, decrypt_file
from deepseek_node.weights.fetch import StagedState, fetch
from deepseek_node.weights.manifest import MANIFEST_FILENAME, build_manifest, hash_file, load_manifest, save_manifest
from deepseek_node.weights.plan import url_prefix
from deepseek_node.weights.release import (
    ReleaseError,
    check_release,
    current_revision,
    decrypt_current,
    place,
    receive_part,
    receive_tar,
)

MODEL, SLUG = "deepseek-ai/M", "deepseek-ai--M"
GROUP = grp.getgrgid(os.getgid()).gr_name
SHARD = "model-00001-of-00002.safetensors"


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("mirror")
    generate_checkpoint(root / MODEL / "r1", MODEL, "r1", shard_mib=1)
    handler = type("H", (Handler,), {"root": str(root)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def fetch_r1(models: Path, mirror) -> Path:
    root, base = mirror
    staging = models / SLUG / ".staging" / "r1"
    staging.mkdir(parents=True)
    shutil.copy(root / MODEL / "r1" / MANIFEST_FILENAME, staging / MANIFEST_FILENAME)
    report = fetch(load_manifest(staging / MANIFEST_FILENAME), staging, url_prefix("hf", base, MODEL, "r1"), retries=0)
    assert report.ok, report.to_dict()
    return staging


def stage_files(models: Path, revision: str, files: dict[str, bytes]) -> Path:
    """Stage ``files`` (pushed, not hashed yet) with their manifest, as the push path does."""
    staging = models / SLUG / ".staging" / revision
    for rel, data in files.items():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_bytes(data)
    save_manifest(build_manifest(staging, MODEL, revision), staging / MANIFEST_FILENAME)
    return staging


def key_source(tmp_path: Path) -> str:
    path = tmp_path / "k.key"
    if not path.exists():
        path.write_text(Key.generate().secret_bytes().hex())
        path.chmod(0o600)
    return f"file:{path}"


@pytest.fixture
def no_mount(monkeypatch):
    """decrypt_current mounts a tmpfs; in tests the target stays a plain directory."""
    calls = []

    def fake_run(cmd, *args, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, b"", b"")

    monkeypatch.setattr(release_mod.subprocess, "run", fake_run)
    return calls


def v1_encrypt(plain: bytes, key: Key, chunk: int = 4 * 1024 * 1024) -> bytes:
    """What the format 1 tool wrote (no binding): header tag AAD = header, record AAD = header|i|final."""
    file_id = os.urandom(16)
    header = struct.pack(">8sB3sI16s", b"DSWENC1\n", 1, b"\0\0\0", chunk, file_id)
    aead = AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=file_id,
                       info=b"dswenc v1 file key").derive(key.secret_bytes()))
    pieces = [plain[i:i + chunk] for i in range(0, len(plain), chunk)] or [b""]
    out = [header, aead.encrypt(b"\xff" * 12, b"", header)]
    for i, piece in enumerate(pieces):
        aad = header + struct.pack(">QB", i, 1 if i == len(pieces) - 1 else 0)
        out.append(aead.encrypt(i.to_bytes(12, "big"), piece, aad))
    return b"".join(out)


# -- 3. encrypted shards are bound to their place -------------------------------------------


def test_decrypt_current_refuses_two_swapped_same_size_shards(tmp_path, no_mount):
    stage_files(tmp_path, "r1", {"a.bin": os.urandom(5000), "b.bin": os.urandom(5000), "config.json": b"{}"})
    place(tmp_path, SLUG, "r1", key_source=key_source(tmp_path), group=GROUP)
    release = tmp_path / SLUG / "r1"
    a, b = release / "a.bin.dsenc", release / "b.bin.dsenc"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    assert check_release(release)["ok"], "same sizes: the fast check cannot see the swap"
    with pytest.raises(DecryptionError, match=r"a\.bin\.dsenc: .*another place"):
        decrypt_current(tmp_path, SLUG, key_source(tmp_path), tmp_path / "run", group=GROUP)


def test_decrypt_current_refuses_a_shard_copied_from_an_older_release(tmp_path, no_mount):
    for revision in ("r1", "r2"):
        stage_files(tmp_path, revision, {"a.bin": os.urandom(5000), "config.json": b"{}"})
        place(tmp_path, SLUG, revision, key_source=key_source(tmp_path), group=GROUP)
    mdir = tmp_path / SLUG
    assert current_revision(mdir) == "r2"
    shutil.copy(mdir / "r1" / "a.bin.dsenc", mdir / "r2" / "a.bin.dsenc")
    with pytest.raises(DecryptionError, match=r"r2/a\.bin\.dsenc: "):
        decrypt_current(tmp_path, SLUG, key_source(tmp_path), tmp_path / "run", group=GROUP)


def test_decrypt_current_of_an_untouched_release_decrypts_every_file(tmp_path, no_mount):
    files = {"a.bin": os.urandom(5000), "b.bin": os.urandom(5000), "sub/c.json": b"{}"}
    stage_files(tmp_path, "r1", files)
    place(tmp_path, SLUG, "r1", key_source=key_source(tmp_path), group=GROUP)
    doc = decrypt_current(tmp_path, SLUG, key_source(tmp_path), tmp_path / "run", group=GROUP, full=True)
    assert doc["ok"] and doc["revision"] == "r1"
    assert {rel: (tmp_path / "run" / rel).read_bytes() for rel in files} == files
    assert [c[0] for c in no_mount] == ["mount"]


def test_decrypt_current_refuses_format_1_files(tmp_path, no_mount):
    import json

    plain = {"a.bin": os.urandom(5000), "config.json": b"{}"}
    stage_files(tmp_path, "r1", plain)
    place(tmp_path, SLUG, "r1", key_source=key_source(tmp_path), group=GROUP)
    release = tmp_path / SLUG / "r1"
    key = Key(bytes.fromhex((tmp_path / "k.key").read_text()))
    for rel, data in plain.items():  # what an older tool placed: same sizes, no binding
        (release / (rel + ".dsenc")).write_bytes(v1_encrypt(data, key))
    with pytest.raises(DecryptionError, match="format version 1.*re-encrypt"):
        decrypt_current(tmp_path, SLUG, key_source(tmp_path), tmp_path / "run", group=GROUP)
    marker = json.loads((release / ".release.json").read_text())
    marker.pop("cipher_format", None)  # the marker an older tool wrote
    (release / ".release.json").write_text(json.dumps(marker))
    with pytest.raises(ReleaseError, match="format 1.*place it again") as error:
        decrypt_current(tmp_path, SLUG, key_source(tmp_path), tmp_path / "run", group=GROUP)
    assert error.value.exit_code == 1


def test_cli_decrypt_takes_the_binding_and_still_reads_format_1(tmp_path, capsys):
    stage_files(tmp_path, "r1", {"a.bin": b"A" * 3000})
    place(tmp_path, SLUG, "r1", key_source=key_source(tmp_path), group=GROUP)
    sealed = str(tmp_path / SLUG / "r1" / "a.bin.dsenc")
    out = str(tmp_path / "out")
    key = key_source(tmp_path)
    assert cli_main(["decrypt", sealed, out, "--key", key]) == 1, "bound: no binding, no plaintext"
    assert cli_main(["decrypt", sealed, out, "--key", key, "--bind", SLUG, "--bind", "r2", "--bind", "a.bin"]) == 1
    assert cli_main(["decrypt", sealed, out, "--key", key, "--bind", SLUG, "--bind", "r1", "--bind", "a.bin"]) == 0
    assert Path(out).read_bytes() == b"A" * 3000
    old = tmp_path / "old.enc"
    old.write_bytes(v1_encrypt(b"B" * 10, Key(bytes.fromhex((tmp_path / "k.key").read_text()))))
    assert cli_main(["decrypt", str(old), out, "--key", key]) == 0 and Path(out).read_bytes() == b"B" * 10
    capsys.readouterr()
    assert cli_main(["decrypt", str(old), out, "--key", key, "--bind", "x"]) == 1
    assert "format version 1" in capsys.readouterr().out


# -- 4. staged files are trusted by inode, never through a link -----------------------------


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_place_rehashes_a_fetched_file_changed_with_its_mtime_put_back(tmp_path, mirror, encrypted):
    staging = fetch_r1(tmp_path, mirror)
    shard = staging / SHARD
    before = shard.stat()
    time.sleep(0.05)  # file timestamps tick per jiffy: let ctime move on
    with open(shard, "r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 1]))
    os.utime(shard, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (shard.stat().st_size, shard.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.raises(ReleaseError, match=f"sha384 of {SHARD}"):
        place(tmp_path, SLUG, "r1", group=GROUP, key_source=key_source(tmp_path) if encrypted else None)
    assert not (tmp_path / SLUG / "r1").exists() and current_revision(tmp_path / SLUG) is None


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_place_refuses_a_file_changed_after_it_was_verified(tmp_path, monkeypatch, encrypted):
    stage_files(tmp_path, "r1", {"a.bin": b"a" * 1000, "config.json": b"{}"})
    staging = tmp_path / SLUG / ".staging" / "r1"
    real = release_mod.verify_directory

    def verify_then_tamper(*args, **kwargs):
        result = real(*args, **kwargs)
        time.sleep(0.05)
        with open(staging / "a.bin", "r+b") as fh:  # same size, after the hash was taken
            fh.write(b"b")
        return result

    monkeypatch.setattr(release_mod, "verify_directory", verify_then_tamper)
    with pytest.raises(ReleaseError, match="a.bin: changed after it was verified"):
        place(tmp_path, SLUG, "r1", group=GROUP, key_source=key_source(tmp_path) if encrypted else None)
    assert not (tmp_path / SLUG / "r1").exists() and current_revision(tmp_path / SLUG) is None


@pytest.mark.parametrize("swapped", [SHARD, "original"], ids=["file", "directory"])
def test_place_refuses_a_staged_entry_swapped_for_a_symlink_leaving_staging(tmp_path, mirror, swapped):
    staging = fetch_r1(tmp_path, mirror)
    outside = tmp_path / "outside"
    outside.mkdir()
    # Same bytes, same size and mtime: everything the old record looked at.
    if (staging / swapped).is_dir():
        shutil.copytree(staging / swapped, outside / swapped)
        shutil.rmtree(staging / swapped)
    else:
        shutil.copy2(staging / swapped, outside / swapped)
        (staging / swapped).unlink()
    os.symlink(outside / swapped, staging / swapped)
    with pytest.raises(ReleaseError, match=f"{swapped}.*symlink"):
        place(tmp_path, SLUG, "r1", group=GROUP)
    assert not (tmp_path / SLUG / "r1").exists() and current_revision(tmp_path / SLUG) is None


def test_place_refuses_a_fifo_in_staging(tmp_path):
    staging = stage_files(tmp_path, "r1", {"a.bin": b"a", "config.json": b"{}"})
    os.mkfifo(staging / "a.bin.fifo")
    (staging / "a.bin").unlink()
    os.rename(staging / "a.bin.fifo", staging / "a.bin")
    with pytest.raises(ReleaseError, match="a.bin.*not a regular file"):
        place(tmp_path, SLUG, "r1", group=GROUP)
    assert not (tmp_path / SLUG / "r1").exists()


def test_staged_record_holds_only_for_the_same_unchanged_inode(tmp_path):
    staging = tmp_path / "s"
    staging.mkdir()
    (staging / "f").write_bytes(b"0123456789")
    sha = hash_file(staging / "f")[1]
    state = StagedState(staging)
    state.record(staging, "f", sha)
    assert StagedState(staging).verified_sha(staging, "f") == sha
    st = (staging / "f").stat()
    time.sleep(0.05)
    (staging / "g").write_bytes(b"0123456780")  # another inode, same size and mtime
    os.utime(staging / "g", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(staging / "g", staging / "f")
    assert StagedState(staging).verified_sha(staging, "f") is None
    (tmp_path / "t").write_bytes(b"0123456789")
    state.record(tmp_path, "t", sha)
    (staging / "f").unlink()
    os.symlink(tmp_path / "t", staging / "f")
    state._records["f"] = state._records["t"]  # a record that matches the link's target
    assert state.verified_sha(staging, "f") is None, "a symlink is never a verified staged file"


# -- 15. receivers write inside staging only ------------------------------------------------


@pytest.fixture
def staging(tmp_path):
    path = tmp_path / "models" / SLUG / ".staging" / "r1"
    path.mkdir(parents=True)
    return path


def _part(tmp_path: Path, data: bytes = b"evil") -> Path:
    part = tmp_path / "part"
    part.write_bytes(data)
    return part


def _outside_files(tmp_path: Path, staging: Path) -> list[str]:
    return sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                  if staging not in p.parents and p != staging and p.is_file() and p.name not in ("part", "b.tar"))


@pytest.mark.parametrize("name", ["../escape", "../../../escape", "a/../../escape", "ABS", "", ".", "./a",
                                  "a//b", "a/./b", "a/", "a\0b"])
def test_receive_part_refuses_a_name_outside_staging(tmp_path, staging, name):
    if name == "ABS":
        name = str(tmp_path / "escape")
    with pytest.raises(ReleaseError):
        receive_part(staging, name, 0, _part(tmp_path))
    assert _outside_files(tmp_path, staging) == []
    assert not any(staging.rglob("*"))


def test_receive_part_does_not_write_through_symlinks_in_staging(tmp_path, staging):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"keep")
    os.symlink(outside / "victim", staging / "link")
    os.symlink(outside, staging / "dirlink")
    with pytest.raises(ReleaseError, match="link"):
        receive_part(staging, "link", 0, _part(tmp_path))
    with pytest.raises(ReleaseError, match="dirlink"):
        receive_part(staging, "dirlink/new", 0, _part(tmp_path))
    with pytest.raises(ReleaseError, match="dirlink"):
        receive_part(staging, "dirlink/victim", 0, _part(tmp_path))
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (outside / "victim").read_bytes() == b"keep"


def _tar(tmp_path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    path = tmp_path / "b.tar"
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.mark.parametrize("member", [
    _member("../escape"), _member("/abs/escape"), _member("a/../../escape"), _member("./a"), _member("a//b"),
    _member("link", tarfile.SYMTYPE, "/etc/passwd"), _member("hard", tarfile.LNKTYPE, "/etc/passwd"),
    _member("dev", tarfile.CHRTYPE), _member("fifo", tarfile.FIFOTYPE), _member("d", tarfile.DIRTYPE),
], ids=["dotdot", "absolute", "inner-dotdot", "dot", "empty", "symlink", "hardlink", "device", "fifo", "dir"])
def test_receive_tar_refuses_unsafe_members(tmp_path, staging, member):
    tar_path = _tar(tmp_path, (member, b"evil"))
    with pytest.raises(ReleaseError, match="b.tar"):
        receive_tar(staging, tar_path)
    assert _outside_files(tmp_path, staging) == [] and not any(staging.rglob("*"))


@pytest.mark.parametrize("has_data_filter", [True, False], ids=["data_filter", "no-data_filter"])
def test_receive_tar_does_not_write_through_symlinks_in_staging(tmp_path, staging, monkeypatch, has_data_filter):
    if not has_data_filter:  # Python 3.10 before 3.10.12: our own checks alone
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"keep")
    os.symlink(outside, staging / "sub")
    os.symlink(outside / "victim", staging / "file")
    for name in ("sub/new", "sub/victim", "file"):
        with pytest.raises(ReleaseError, match=name.split("/")[0]):
            receive_tar(staging, _tar(tmp_path, (_member(name), b"evil")))
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (outside / "victim").read_bytes() == b"keep"


def test_fetch_does_not_write_through_a_symlink_in_staging(tmp_path, mirror):
    root, base = mirror
    staging = tmp_path / SLUG / ".staging" / "r1"
    staging.mkdir(parents=True)
    shutil.copy(root / MODEL / "r1" / MANIFEST_FILENAME, staging / MANIFEST_FILENAME)
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    os.symlink(victim, staging / SHARD)
    report = fetch(load_manifest(staging / MANIFEST_FILENAME), staging, url_prefix("hf", base, MODEL, "r1"), retries=0)
    assert [e["path"] for e in report.errors] == [SHARD], report.to_dict()
    assert victim.read_bytes() == b"keep"


# -- 16. a published release hides no file --------------------------------------------------


@pytest.mark.parametrize("hidden", [".incoming/x.bin", ".dsw-staged.json", "MANIFEST.dsenc.json",
                                    "MANIFEST.dsw.json.d/x", ".release.json.bak", "sub/.release.json",
                                    ".hidden/x"])
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_check_release_reports_every_file_but_its_own_control_files(tmp_path, hidden, encrypted):
    stage_files(tmp_path, "r1", {"a.bin": b"a" * 100, "sub/c.json": b"{}"})
    place(tmp_path, SLUG, "r1", key_source=key_source(tmp_path) if encrypted else None, group=GROUP)
    release = tmp_path / SLUG / "r1"
    assert check_release(release)["ok"], check_release(release)
    if encrypted and hidden == "MANIFEST.dsenc.json":
        hidden = "sub/MANIFEST.dsenc.json"  # the encrypted release has a real one at the top
    (release / hidden).parent.mkdir(parents=True, exist_ok=True)
    (release / hidden).write_bytes(b"hidden")
    doc = check_release(release)
    assert not doc["ok"] and any(hidden in p for p in doc["problems"]), doc


def test_check_release_reports_a_symlink_inside_the_release(tmp_path):
    stage_files(tmp_path, "r1", {"a.bin": b"a" * 100})
    place(tmp_path, SLUG, "r1", group=GROUP)
    release = tmp_path / SLUG / "r1"
    os.symlink("a.bin", release / "b.bin")
    doc = check_release(release)
    assert not doc["ok"] and any("b.bin" in p and "symlink" in p for p in doc["problems"]), doc


def test_place_publishes_only_the_manifest_files_and_the_control_files(tmp_path):
    staging = stage_files(tmp_path, "r1", {"a.bin": b"a" * 100, "sub/c.json": b"{}"})
    for junk in ("left.tmp", "MANIFEST.dsenc.json", ".release.json", ".incoming/part", "sub/x.tmp"):
        (staging / junk).parent.mkdir(parents=True, exist_ok=True)
        (staging / junk).write_bytes(b"junk")
    place(tmp_path, SLUG, "r1", group=GROUP)
    release = tmp_path / SLUG / "r1"
    names = sorted(p.relative_to(release).as_posix() for p in release.rglob("*") if not p.is_dir())
    assert names == [".release.json", MANIFEST_FILENAME, "a.bin", "sub/c.json"]
    assert check_release(release)["ok"]



def test_decrypt_current_mounts_noswap_only_when_asked(tmp_path, no_mount):
    """The role asks for noswap on Linux >= 6.4 (decrypted weights never reach swap); the
    option goes on the first mount: a remount cannot add it."""
    from deepseek_node.weights import node as node_cli

    stage_files(tmp_path, "r1", {"a.bin": os.urandom(5000), "config.json": b"{}"})
    place(tmp_path, SLUG, "r1", key_source=key_source(tmp_path), group=GROUP)
    plain = decrypt_current(tmp_path, SLUG, key_source(tmp_path), tmp_path / "run", group=GROUP)
    kept = decrypt_current(tmp_path, SLUG, key_source(tmp_path), tmp_path / "run2", group=GROUP, noswap=True)
    options = [cmd[cmd.index("-o") + 1].split(",") for cmd in no_mount if cmd[0] == "mount"]
    assert "noswap" not in options[0] and "noswap" in options[1]
    assert (plain["noswap"], kept["noswap"]) == (False, True)
    assert node_cli._parser().parse_args(["decrypt-current", "--model", SLUG, "--noswap"]).noswap is True
