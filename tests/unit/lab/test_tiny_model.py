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


def test_config_is_the_released_v3_config_with_only_counts_shrunk():
    import json

    released = json.loads(tiny_model.REFERENCE_CONFIG.read_text())
    config = tiny_model.tiny_config()
    # What vLLM's MLA kernels and DeepSeek loader need, as released.
    for field in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "topk_method",
                  "scoring_func", "rope_scaling", "max_position_embeddings", "num_nextn_predict_layers",
                  "model_type", "architectures", "routed_scaling_factor", "norm_topk_prob", "n_shared_experts"):
        assert config[field] == released[field], field
    assert (config["kv_lora_rank"], config["qk_rope_head_dim"]) == (512, 64)  # vLLM MLA: 576
    changed = {key for key in config if config[key] != released.get(key)}
    assert changed == set(tiny_model.SHRUNK_COUNTS)
    assert all(config[key] < released[key] for key in tiny_model.SHRUNK_COUNTS)
    assert not set(tiny_model.DROPPED_FIELDS) & set(config)
    # Grouped routing stays consistent: experts split evenly into groups, top-k within reach.
    assert config["n_routed_experts"] % config["n_group"] == 0
    assert config["num_experts_per_tok"] <= config["topk_group"] * config["n_routed_experts"] // config["n_group"]
