"""A tiny, randomly initialised checkpoint of the DeepSeek-V3 architecture, for the lab.

The lab cannot download real weights, and a CPU cannot run even the smallest catalog
model at test speed. This module builds, on the controller and once per parameter set, a
checkpoint that has everything a real one has: ``config.json`` with ``model_type
deepseek_v3`` (MLA attention, a dense first layer, then MoE layers with shared and routed
experts, at toy sizes), ``model.safetensors``, ``generation_config.json`` and a BPE
tokenizer trained here with the ``tokenizers`` library, with DeepSeek's special tokens and
a chat template. Its weights are random (fixed seed), so its text is gibberish, but every
step of serving is real: loading through ``AutoModelForCausalLM``, tokenizing, the chat
template, MLA + MoE forward passes, sampling and logprobs.

It is NOT a catalog model (deepseek_infra/catalog.py stays the list of released DeepSeek
checkpoints): the lab serves it through ``serve_model_path`` / ``serve_served_model_name``
under the clearly fake repo id ``deepseek-lab/tiny-deepseek-v3``.

    python -m lab.tiny_model build            # print the controller path (build once)
    python -m lab.tiny_model place            # copy it onto every running node of the fleet

``place`` lays it out the way the weights role publishes a model (a lab helper: the weights
role places only ``deepseek_model``, and this is not a catalog model):
``/var/lib/deepseek/models/deepseek-lab--tiny-deepseek-v3/<key>/`` plus the ``current``
symlink, readable by the engine's service account. It carries a real weights manifest
(``MANIFEST.dsw.json``, node/deepseek_node/weights/manifest.py, the weights role's format), so the engine's
ExecStartPre checks it like any checkpoint: a truncated file keeps the engine from starting.

Needs torch, transformers, tokenizers and safetensors on the controller (the engine's
test dependencies).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from deepseek_node.paths import MODELS_DIR
from deepseek_node.weights.manifest import MANIFEST_FILENAME, build_manifest, save_manifest
from deepseek_node.weights.plan import CURRENT_LINK, model_slug
from lab.constants import STATE_DIR
from lab.nodes import list_nodes

REPO_ID = "deepseek-lab/tiny-deepseek-v3"  # fake org: never confused with a released model
SLUG = model_slug(REPO_ID)  # the directory the weights role would give it under MODELS_DIR
SEED = 20250101
VOCAB_SIZE = 512

BOS, EOS, USER, ASSISTANT = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"
# DeepSeek-V3's template, reduced to what the lab needs: system prompt, turns, generation prompt.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '<｜Assistant｜>' + message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜>' }}{% endif %}"
)

# DeepSeek-V3's released config.json (lab/reference/), every field kept but the counts.
REFERENCE_CONFIG = Path(__file__).with_name("reference") / "deepseek-v3-config.json"
# Counts shrunk to toy sizes; the structure (MLA latent sizes as released, a dense first
# layer, shared + routed experts, grouped noaux_tc routing, YaRN rope) stays the real one.
SHRUNK_COUNTS = {
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 64,
    "intermediate_size": 128,
    "moe_intermediate_size": 32,
    "num_hidden_layers": 2,
    "first_k_dense_replace": 1,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "q_lora_rank": 32,
    "n_routed_experts": 8,
    "n_group": 4,
    "topk_group": 2,
    "num_experts_per_tok": 2,
}
# Not carried over: remote code (transformers and vLLM have DeepseekV3 built in), the FP8
# block quantization (the lab checkpoint is BF16, like DeepSeek's fp8_cast_bf16.py
# output) and the writer's metadata. The MTP layer (num_nextn_predict_layers) is declared
# as released but has no weights: both engines skip it unless speculative decoding is on.
DROPPED_FIELDS = ("auto_map", "quantization_config", "torch_dtype", "transformers_version", "bos_token_id", "eos_token_id")


def tiny_config() -> dict:
    """The tiny checkpoint's config.json fields: the released V3 config, counts shrunk."""
    released = json.loads(REFERENCE_CONFIG.read_text())
    unknown = set(SHRUNK_COUNTS) - set(released)
    if unknown:
        raise ValueError(f"{REFERENCE_CONFIG}: no field(s) {sorted(unknown)} to shrink")
    return {**{k: v for k, v in released.items() if k not in DROPPED_FIELDS}, **SHRUNK_COUNTS}


MAX_POSITION_EMBEDDINGS = tiny_config()["max_position_embeddings"]  # as released: YaRN 4096 x 40


# Training text for the tokenizer: enough English to learn sensible merges.
CORPUS = """\
DeepSeek-V3 is a mixture-of-experts language model with multi-head latent attention.
The inference engine loads the checkpoint, tokenizes the prompt and generates tokens.
A serving node runs the engine behind a gateway; operators check its health and metrics.
The quick brown fox jumps over the lazy dog. Hello, world! How are you today?
Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. Paris is the capital of France.
def main():\n    print("hello")\n    return 0\n
"""


def checkpoint_key() -> str:
    """Hash of everything that shapes the checkpoint: a change builds a new one."""
    text = json.dumps([tiny_config(), SEED, VOCAB_SIZE, CHAT_TEMPLATE, CORPUS], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _train_tokenizer(destination: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=[BOS, EOS, USER, ASSISTANT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tokenizer.train_from_iterator([CORPUS] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=EOS,
        additional_special_tokens=[USER, ASSISTANT], model_max_length=MAX_POSITION_EMBEDDINGS,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(destination)


def _save_model(destination: Path) -> None:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    vocab = Tokenizer.from_file(str(destination / "tokenizer.json")).get_vocab()
    config = AutoConfig.for_model(
        **tiny_config(), bos_token_id=vocab[BOS], eos_token_id=vocab[EOS], pad_token_id=vocab[EOS],
    )
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(destination, safe_serialization=True)
    GenerationConfig(bos_token_id=vocab[BOS], eos_token_id=vocab[EOS], do_sample=True,
                     temperature=0.6, top_p=0.95).save_pretrained(destination)


def build(root: Path | None = None, log=print) -> Path:
    """Return the checkpoint directory on the controller, building it when missing or stale."""
    destination = (root or STATE_DIR / "models") / REPO_ID / checkpoint_key()
    marker = destination / ".complete"
    if marker.exists():
        _write_manifest(destination)  # checkpoints built before manifests existed
        return destination
    log(f"{REPO_ID}: building a random tiny checkpoint in {destination}")
    shutil.rmtree(destination, ignore_errors=True)
    destination.mkdir(parents=True)
    _train_tokenizer(destination)
    _save_model(destination)
    marker.write_text(checkpoint_key() + "\n")
    _write_manifest(destination)
    return destination


def _write_manifest(destination: Path) -> None:
    """The checkpoint's weights manifest: every file, the build marker too, so the weights
    role's verify timer finds no file it does not know."""
    if (destination / MANIFEST_FILENAME).exists():
        return
    manifest = build_manifest(destination, REPO_ID, destination.name, exclude=(MANIFEST_FILENAME,))
    save_manifest(manifest, destination / MANIFEST_FILENAME)


def node_release_dir(key: str) -> str:
    return f"{MODELS_DIR}/{SLUG}/{key}"


def node_current_path() -> str:
    """Where the engine reads the lab model (the weights role's ``<slug>/current`` layout)."""
    return f"{MODELS_DIR}/{SLUG}/{CURRENT_LINK}"


def place(node: str, checkpoint: Path, log=print) -> None:
    """Copy the checkpoint onto a lab node (skipped when that release is already there)."""
    key = checkpoint.name
    release = node_release_dir(key)
    present = subprocess.run(["docker", "exec", node, "test", "-f", f"{release}/{MANIFEST_FILENAME}"],
                             capture_output=True)
    if present.returncode != 0:
        log(f"{node}: placing {REPO_ID} release {key}")
        # A tar stream through `docker exec`: `docker cp` cannot see the node's tmpfs data volume.
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(checkpoint, arcname=".")
        subprocess.run(["docker", "exec", "-i", node, "sh", "-c", f"mkdir -p {release} && tar -xf - -C {release}"],
                       input=archive.getvalue(), check=True)
    # Readable by the engine's account whichever uid it gets; the weights are not secret here.
    script = (
        f"chown -R root:root {MODELS_DIR}/{SLUG} && chmod -R a+rX,go-w {MODELS_DIR}/{SLUG} && "
        f"ln -sfn {key} {node_current_path()}"
    )
    subprocess.run(["docker", "exec", node, "sh", "-c", script], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.tiny_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("build", "place"))
    args = parser.parse_args(argv)
    checkpoint = build(log=lambda text: print(text, file=sys.stderr))
    if args.command == "build":
        print(checkpoint)
        return 0
    nodes = [node.name for node in list_nodes() if node.status == "running"]
    if not nodes:
        print("no running lab node (python -m lab up N)", file=sys.stderr)
        return 1
    for node in nodes:
        place(node, checkpoint)
    print(node_current_path())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
