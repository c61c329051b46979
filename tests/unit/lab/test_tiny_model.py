"""lab/tiny_model.py writes a real weights manifest that the engine's start check accepts."""

from __future__ import annotations

from lab import tiny_model
from deepseek_node import engine_health
from deepseek_node.weights.manifest import MANIFEST_FILENAME, load_manifest


def test_manifest_covers_every_file_of_the_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 4096)
    (tmp_path / ".complete").write_text("key\n")
    tiny_model._write_manifest(tmp_path)
    manifest = load_manifest(tmp_path / MANIFEST_FILENAME)
    assert manifest.model == tiny_model.REPO_ID and manifest.revision == tmp_path.name
    assert [(e.path, e.size) for e in manifest.files] == [(".complete", 4), ("config.json", 2), ("model.safetensors", 4096)]
    assert engine_health.check_weights(str(tmp_path), require=True)[0] == 0
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 10)
    status, message = engine_health.check_weights(str(tmp_path), require=True)
    assert status == 1 and "size of model.safetensors: expected 4096, found 10" in message


def test_node_paths_follow_the_weights_roles_layout():
    """inventories/lab_settings.py points the engine at this path: <models>/<slug>/current."""
    models = "/var/lib/deepseek/models/deepseek-lab--tiny-deepseek-v3"
    assert tiny_model.node_release_dir("0123abcd") == f"{models}/0123abcd"
    assert tiny_model.node_current_path() == f"{models}/current"
