import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepseek_node.weights.manifest import MANIFEST_FILENAME, load_manifest
from deepseek_node.weights.cli import main, parse_size

KEY_HEX = "ab" * 32
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def ckpt(tmp_path):
    root = tmp_path / "ckpt"
    (root / "sub").mkdir(parents=True)
    (root / "a.safetensors").write_bytes(os.urandom(70_000))
    (root / "sub" / "b.json").write_text("{}")
    return root


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out  # exactly one JSON document for the caller to parse
    return code, json.loads(out[0])


def _key_file(tmp_path, mode=0o600):
    path = tmp_path / "key"
    path.write_text(KEY_HEX + "\n")
    path.chmod(mode)
    return path


def test_manifest_then_verify(capsys, ckpt):
    code, doc = run(capsys, "manifest", ckpt, "--model", "deepseek-ai/DeepSeek-R1", "--revision", "r1")
    assert code == 0 and doc["files"] == 2 and doc["bytes"] == 70_002
    manifest = load_manifest(ckpt / MANIFEST_FILENAME)
    assert doc["manifest_sha384"] == manifest.manifest_sha384
    code, doc = run(capsys, "verify", ckpt, "--expect-sha384", manifest.manifest_sha384)
    assert (code, doc["ok"], doc["missing"], doc["hash_mismatch"]) == (0, True, [], [])


def test_verify_reports_flip_and_fast_mode_misses_it(capsys, ckpt):
    run(capsys, "manifest", ckpt, "--model", "m", "--revision", "r")
    data = bytearray((ckpt / "a.safetensors").read_bytes())
    data[500] ^= 0xFF
    (ckpt / "a.safetensors").write_bytes(bytes(data))
    code, doc = run(capsys, "verify", ckpt, "--rate-limit", "1G", "--workers", "2")
    assert code == 1 and doc["ok"] is False
    assert [m["path"] for m in doc["hash_mismatch"]] == ["a.safetensors"]
    code, doc = run(capsys, "verify", ckpt, "--fast")
    assert code == 0 and doc["full"] is False


def test_manifest_outside_directory_and_extra_file(capsys, ckpt, tmp_path):
    out = tmp_path / "elsewhere.json"
    run(capsys, "manifest", ckpt, "--model", "m", "--revision", "r", "--output", out)
    assert not (ckpt / MANIFEST_FILENAME).exists()
    (ckpt / "new").write_bytes(b"1")
    code, doc = run(capsys, "verify", ckpt, "--manifest", out)
    assert (code, doc["extra"]) == (1, ["new"])


def test_verify_tampered_manifest_is_an_integrity_failure(capsys, ckpt):
    run(capsys, "manifest", ckpt, "--model", "m", "--revision", "r")
    path = ckpt / MANIFEST_FILENAME
    path.write_text(path.read_text().replace('"size": 2', '"size": 3'))
    code, doc = run(capsys, "verify", ckpt)
    assert code == 1 and "self-hash mismatch" in doc["error"]


def test_encrypt_decrypt_round_trip_and_wrong_key(capsys, tmp_path, monkeypatch):
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(10_000))
    key = _key_file(tmp_path)
    code, doc = run(capsys, "encrypt", src, tmp_path / "w.enc", "--key", f"file:{key}", "--chunk-size", "4K")
    assert code == 0 and doc["bytes"] == 10_000
    code, doc = run(capsys, "decrypt", tmp_path / "w.enc", tmp_path / "w.out", "--key", f"file:{key}")
    assert code == 0 and (tmp_path / "w.out").read_bytes() == src.read_bytes()
    monkeypatch.setenv("DSW_OTHER_KEY", "cd" * 32)
    code, doc = run(capsys, "decrypt", tmp_path / "w.enc", tmp_path / "w2.out", "--key", "env:DSW_OTHER_KEY")
    assert code == 1 and "wrong key or corrupted header" in doc["error"]
    assert not (tmp_path / "w2.out").exists()


def test_unsafe_key_file_is_a_usage_error(capsys, tmp_path):
    src = tmp_path / "w.bin"
    src.write_bytes(b"x")
    key = _key_file(tmp_path, mode=0o644)
    code, doc = run(capsys, "encrypt", src, tmp_path / "w.enc", "--key", f"file:{key}")
    assert code == 2 and "chmod 600" in doc["error"] and KEY_HEX not in doc["error"]
    assert not (tmp_path / "w.enc").exists()


def test_missing_directory_is_a_usage_error(capsys, tmp_path):
    code, doc = run(capsys, "manifest", tmp_path / "absent", "--model", "m", "--revision", "r")
    assert code == 2 and "not a directory" in doc["error"]


@pytest.mark.parametrize(
    ("text", "expected"), [("4096", 4096), ("512K", 512 * 1024), ("8M", 8 << 20), ("8MiB", 8 << 20), ("1g", 1 << 30)]
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "M", "-1", "0", "eight", "inf"])
def test_parse_size_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)


def test_runs_as_module(ckpt):
    """The node-side timer calls it as ``python -m``; prove the entry point and exit status."""
    base = [sys.executable, "-m", "deepseek_node.weights.cli"]
    subprocess.run([*base, "manifest", str(ckpt), "--model", "m", "--revision", "r"], cwd=REPO, check=True,
                   capture_output=True)
    (ckpt / "sub" / "b.json").unlink()
    proc = subprocess.run([*base, "verify", str(ckpt), "--fast"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["missing"] == ["sub/b.json"]
