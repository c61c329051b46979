"""Fuzzing the weights manifest loader (issue 19): whatever the bytes, a manifest either
loads as one this tool wrote or is refused with ManifestError, never another exception.

Brief in CI; longer by hand: ``DEEPSEEK_FUZZ_EXAMPLES=20000 .venv/bin/pytest -q <this file>``.
"""

from __future__ import annotations

import json
import os

from hypothesis import given, settings, strategies as st

from deepseek_node.weights.manifest import FileEntry, Manifest, ManifestError

EXAMPLES = int(os.environ.get("DEEPSEEK_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="DEEPSEEK_FUZZ_EXAMPLES" not in os.environ)

any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=10)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), any_text)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(any_text, inner, max_size=3)),
                           max_leaves=10)
SAFE_NAME = st.text(st.characters(min_codepoint=0x30, max_codepoint=0x7A, exclude_characters="\\"), min_size=1, max_size=8)


def _valid_manifest() -> dict:
    files = (FileEntry("config.json", 10, "a" * 96), FileEntry("model-00001.safetensors", 2**40, "b" * 96))
    return json.loads(Manifest(model="deepseek-ai/DeepSeek-V3", revision="r1", files=files).to_json())


def _load(data: bytes) -> Manifest | None:
    try:
        return Manifest.from_json(data)
    except ManifestError:
        return None


@FUZZ
@given(data=st.binary(max_size=256))
def test_random_bytes_are_refused_cleanly(data):
    _load(data)


@FUZZ
@given(depth=st.integers(1, 200_000))
def test_deep_nesting_is_refused_cleanly(depth):
    assert _load(b"[" * depth + b"]" * depth) is None


@FUZZ
@given(key=st.sampled_from(["format", "algorithm", "model", "revision", "created_by", "files", "manifest_sha384"]),
       value=json_values)
def test_any_field_replaced_is_refused_or_identical(key, value):
    doc = _valid_manifest()
    original = Manifest.from_json(json.dumps(doc))
    doc[key] = value
    loaded = _load(json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass"))
    assert loaded is None or loaded == original  # the self-hash covers every field


@FUZZ
@given(index=st.integers(0, 1), key=st.sampled_from(["path", "size", "sha384"]), value=json_values)
def test_any_file_entry_replaced_is_refused(index, key, value):
    doc = _valid_manifest()
    original = doc["files"][index][key]
    doc["files"][index][key] = value
    if value == original and type(value) is type(original):
        return
    assert _load(json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")) is None


@FUZZ
@given(paths=st.lists(st.lists(SAFE_NAME, min_size=1, max_size=3).map("/".join), min_size=1, max_size=5, unique=True),
       sizes=st.lists(st.integers(0, 2**50), min_size=5, max_size=5))
def test_manifests_this_tool_writes_load_back(paths, sizes):
    files = tuple(FileEntry(path, size, "c" * 96) for path, size in zip(paths, sizes))
    manifest = Manifest(model="m", revision="r", files=files)
    assert Manifest.from_json(manifest.to_json()) == manifest
