import io
import os
import pickle
import sys

import pytest

from deepseek_node.weights.crypto import (
    HEADER_SIZE,
    DecryptionError,
    Key,
    KeyLoadError,
    decrypt_file,
    decrypt_stream,
    encrypt_file,
    load_key,
)

CHUNK = 64
TAG = 16
PREAMBLE = HEADER_SIZE + TAG  # header + header tag
KEY_HEX = "00112233445566778899aabbccddeeff" * 2
KEY = Key(bytes.fromhex(KEY_HEX))


def _leaks(text):
    return KEY_HEX in text.lower() or repr(bytes.fromhex(KEY_HEX)) in text


@pytest.fixture
def sealed(tmp_path):
    """A file of 4 full records and a short final one, encrypted with CHUNK-byte records."""
    plain = os.urandom(4 * CHUNK + 10)
    src, enc = tmp_path / "plain", tmp_path / "w.enc"
    src.write_bytes(plain)
    encrypt_file(src, enc, KEY, chunk_size=CHUNK)
    return enc


def _records(enc):
    data = enc.read_bytes()
    body = data[PREAMBLE:]
    step = CHUNK + TAG
    return data[:PREAMBLE], [body[i : i + step] for i in range(0, len(body), step)]


def _assert_fails(enc, tmp_path, match, chunk="any", key=KEY):
    dst = tmp_path / "out" / "plain"
    dst.parent.mkdir(exist_ok=True)
    with pytest.raises(DecryptionError, match=match) as info:
        decrypt_file(enc, dst, key)
    if chunk != "any":
        assert info.value.chunk == chunk, str(info.value)
    assert str(enc) in str(info.value)
    assert list(dst.parent.iterdir()) == [], "no output and no temp file may be left behind"
    return info.value


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 3])
def test_round_trip_and_ciphertext_size(tmp_path, size):
    plain = os.urandom(size)
    src, enc, out = tmp_path / "p", tmp_path / "e", tmp_path / "o"
    src.write_bytes(plain)
    assert encrypt_file(src, enc, KEY, chunk_size=CHUNK) == size
    records = max(1, -(-size // CHUNK))  # an empty file still has one (final) record
    assert enc.stat().st_size == PREAMBLE + size + records * TAG
    assert size < 16 or plain not in enc.read_bytes()
    assert decrypt_file(enc, out, KEY) == size
    assert out.read_bytes() == plain
    assert out.stat().st_mode & 0o777 == 0o600


def test_round_trip_with_default_chunk_size_and_bytes_key(tmp_path):
    plain = os.urandom(2 * 4 * 1024 * 1024 + 1)
    src, enc, out = tmp_path / "p", tmp_path / "e", tmp_path / "o"
    src.write_bytes(plain)
    encrypt_file(src, enc, KEY.secret_bytes())
    assert b"".join(decrypt_stream(open(enc, "rb"), KEY)) == plain
    decrypt_file(enc, out, KEY)
    assert out.read_bytes() == plain


def test_same_plaintext_encrypts_differently(tmp_path):
    src = tmp_path / "p"
    src.write_bytes(b"same bytes" * 100)
    encrypt_file(src, tmp_path / "a", KEY)
    encrypt_file(src, tmp_path / "b", KEY)
    assert (tmp_path / "a").read_bytes() != (tmp_path / "b").read_bytes()


@pytest.mark.parametrize("index", range(5))
def test_flipped_byte_in_any_record_names_that_chunk(sealed, tmp_path, index):
    data = bytearray(sealed.read_bytes())
    data[PREAMBLE + index * (CHUNK + TAG) + 3] ^= 0x80
    sealed.write_bytes(bytes(data))
    _assert_fails(sealed, tmp_path, f"chunk {index}: authentication failed", chunk=index)


def test_truncated_last_record(sealed, tmp_path):
    sealed.write_bytes(sealed.read_bytes()[:-5])
    _assert_fails(sealed, tmp_path, "chunk 4", chunk=4)


def test_dropped_final_record_is_detected_at_the_boundary(sealed, tmp_path):
    head, recs = _records(sealed)
    sealed.write_bytes(head + b"".join(recs[:-1]))
    _assert_fails(sealed, tmp_path, "chunk 3: authentication failed", chunk=3)


def test_all_records_dropped(sealed, tmp_path):
    head, _ = _records(sealed)
    sealed.write_bytes(head)
    _assert_fails(sealed, tmp_path, "chunk 0: record missing", chunk=0)


def test_swapped_records(sealed, tmp_path):
    head, recs = _records(sealed)
    recs[1], recs[2] = recs[2], recs[1]
    sealed.write_bytes(head + b"".join(recs))
    _assert_fails(sealed, tmp_path, "chunk 1", chunk=1)


def test_appended_data_after_final_record(sealed, tmp_path):
    head, recs = _records(sealed)
    sealed.write_bytes(head + b"".join(recs) + recs[0])
    _assert_fails(sealed, tmp_path, "chunk 4", chunk=4)


def test_wrong_key_writes_nothing_and_does_not_leak(sealed, tmp_path):
    err = _assert_fails(sealed, tmp_path, "wrong key or corrupted header", chunk=None, key=Key.generate())
    assert not _leaks(str(err)) and not _leaks(repr(err))


@pytest.mark.parametrize(
    ("offset", "match"),
    [(0, "not an encrypted weights file"), (8, "unsupported format version"), (13, "wrong key or corrupted header"),
     (20, "wrong key or corrupted header"), (HEADER_SIZE + 1, "wrong key or corrupted header")],
    ids=["magic", "version", "chunk-size", "file-id", "header-tag"],
)
def test_tampered_header(sealed, tmp_path, offset, match):
    data = bytearray(sealed.read_bytes())
    data[offset] ^= 0x01
    sealed.write_bytes(bytes(data))
    _assert_fails(sealed, tmp_path, match, chunk=None)


def test_failure_leaves_existing_destination_untouched(sealed, tmp_path):
    dst = tmp_path / "keep"
    dst.write_bytes(b"previous")
    sealed.write_bytes(sealed.read_bytes()[:-1])
    with pytest.raises(DecryptionError):
        decrypt_file(sealed, dst, KEY)
    assert dst.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep", "plain", "w.enc"]


def test_decrypt_stream_raises_on_bad_record_after_good_ones(sealed):
    data = bytearray(sealed.read_bytes())
    data[-1] ^= 0x01
    chunks = decrypt_stream(io.BytesIO(bytes(data)), KEY, name="mem")
    assert len(next(chunks)) == CHUNK
    with pytest.raises(DecryptionError, match="mem: chunk 4"):
        list(chunks)


def test_missing_source_is_a_decryption_error(tmp_path):
    with pytest.raises(DecryptionError, match="I/O error"):
        decrypt_file(tmp_path / "nope", tmp_path / "out", KEY)
    assert list(tmp_path.iterdir()) == []


# --- keys ---------------------------------------------------------------------


def _key_file(tmp_path, content, mode):
    path = tmp_path / "key"
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    "content", [bytes.fromhex(KEY_HEX), KEY_HEX.encode() + b"\n", KEY_HEX.upper().encode()], ids=["raw", "hex", "HEX"]
)
def test_load_key_from_private_file(tmp_path, content):
    path = _key_file(tmp_path, content, 0o600)
    assert load_key(f"file:{path}").secret_bytes() == KEY.secret_bytes()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_load_key_refuses_group_or_world_accessible_file(tmp_path, mode):
    path = _key_file(tmp_path, KEY_HEX.encode(), mode)
    with pytest.raises(KeyLoadError, match=f"mode {mode:04o} .*chmod 600") as info:
        load_key(f"file:{path}")
    assert not _leaks(str(info.value))


def test_load_key_rejects_bad_length_without_echoing_content(tmp_path):
    path = _key_file(tmp_path, KEY_HEX[:-2].encode(), 0o400)
    with pytest.raises(KeyLoadError, match="expected 32 raw bytes or 64 hex characters, found 62 bytes") as info:
        load_key(f"file:{path}")
    assert KEY_HEX[:-2] not in str(info.value)


def test_load_key_missing_file(tmp_path):
    with pytest.raises(KeyLoadError, match="No such file"):
        load_key(f"file:{tmp_path}/absent")


def test_load_key_from_env(monkeypatch):
    monkeypatch.setenv("DSW_TEST_KEY", KEY_HEX)
    assert load_key("env:DSW_TEST_KEY").secret_bytes() == KEY.secret_bytes()
    monkeypatch.setenv("DSW_TEST_KEY", "zz" * 32)
    with pytest.raises(KeyLoadError, match="DSW_TEST_KEY: expected 64 hex") as info:
        load_key("env:DSW_TEST_KEY")
    assert "zz" * 32 not in str(info.value)
    monkeypatch.delenv("DSW_TEST_KEY")
    with pytest.raises(KeyLoadError, match="DSW_TEST_KEY is not set"):
        load_key("env:DSW_TEST_KEY")


def test_load_key_from_command():
    key = load_key(f"cmd:{sys.executable} -c 'print(\"{KEY_HEX}\")'")
    assert key.secret_bytes() == KEY.secret_bytes()


def test_load_key_command_failure_names_program_not_arguments():
    with pytest.raises(KeyLoadError, match="exited 3: kms says no") as info:
        load_key(f"cmd:{sys.executable} -c 'import sys; sys.stderr.write(\"kms says no\"); sys.exit(3)' --token=s3cret")
    assert "s3cret" not in str(info.value)
    with pytest.raises(KeyLoadError, match="cannot run"):
        load_key("cmd:/nonexistent/kms-client --token=s3cret")


@pytest.mark.parametrize("source", ["", "file:", "vault:x", "/etc/key"])
def test_load_key_rejects_unknown_sources(source):
    with pytest.raises(KeyLoadError, match="file:/path, env:NAME or cmd:command"):
        load_key(source)


def test_key_is_redacted_everywhere():
    for text in (repr(KEY), str(KEY), f"{KEY}", repr([KEY]), repr({"k": KEY})):
        assert not _leaks(text) and "redacted" in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(KEY)
    with pytest.raises(KeyLoadError, match="key must be 32 bytes, found 31") as info:
        Key(bytes.fromhex(KEY_HEX)[:31])
    assert not _leaks(str(info.value))
    assert KEY.fingerprint() == Key(bytes.fromhex(KEY_HEX)).fingerprint() != Key.generate().fingerprint()
