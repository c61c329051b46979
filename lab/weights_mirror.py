"""The lab's weights mirror: a ``<fleet>-weights`` container serving checkpoints over HTTP.

    python -m lab weights-mirror up [--revision lab-1 --revision lab-2] [--shard-mib 8] [--bench-gib 0]
    python -m lab weights-mirror generate DIR --revision R [--shard-mib 8]
    python -m lab weights-mirror down

``up`` generates small synthetic checkpoints (a few JSON files, one multi-MB shard of
random bytes, a small second shard, a nested file) with their SHA-384 manifest, and with
``--loadable-revision R`` publishes lab/tiny_model.py's DeepSeek-V3-layout checkpoint, which
the engines load, as the lab model at revision R (so the weights role places what the engine
serves: DEEPSEEK_LAB_WEIGHTS=role in inventories/lab_settings.py); it builds the
weights tool's wheelhouse, and runs ``lab/weights_mirror_server.py`` in a container from
the lab node image on the fleet's network, so nodes reach it as
``http://<fleet>-weights:8080``: plain layout ``/<repo>/<revision>/<file>`` and Hugging
Face layout ``/<repo>/resolve/<revision>/<file>``. The checkpoint stands in for a real
one (the serving engineer's tiny DeepSeek-architecture checkpoint comes later); its files
live on the lab host under ``.lab/fleets/<fleet>/weights-mirror/data``, so tests can
corrupt or inject faults into what the mirror serves.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

from lab.constants import FLEET, FLEET_DIR, LABEL_NODE, NETWORK, STATE_DIR
from lab.docker import LabError, docker, ensure_daemon, run
from lab.image import ensure_image
from deepseek_node.weights.manifest import MANIFEST_FILENAME, build_manifest, save_manifest

MIRROR_NAME = f"{FLEET}-weights"
PORT = 8080
DATA_DIR = FLEET_DIR / "weights-mirror" / "data"
LABEL_SERVICE = "deepseek-lab.service"  # value: the fleet's name (`python -m lab down` removes these)
SERVER_SCRIPT = Path(__file__).with_name("weights_mirror_server.py")
# The lab inventory's model (inventories/lab_settings.py deepseek_model).
LAB_MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
LAB_REVISIONS = ("lab-1",)


def url() -> str:
    """The mirror as nodes of this fleet reach it."""
    return f"http://{MIRROR_NAME}:{PORT}"


def checkpoint_dir(model: str, revision: str) -> Path:
    """Where ``up`` puts a revision on the lab host (the plain mirror layout)."""
    return DATA_DIR / model / revision


def manifest_path(model: str = LAB_MODEL, revision: str = LAB_REVISIONS[0]) -> Path:
    return checkpoint_dir(model, revision) / MANIFEST_FILENAME


def generate_checkpoint(dest: Path, model: str, revision: str, shard_mib: int = 8) -> Path:
    """Write a small synthetic checkpoint and its manifest to ``dest``; same inputs, same bytes."""
    rng = random.Random(f"{model}@{revision}")
    dest.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": 256,
        "num_hidden_layers": 2, "num_attention_heads": 4, "kv_lora_rank": 64, "qk_rope_head_dim": 16,
        "vocab_size": 1024, "torch_dtype": "bfloat16", "_lab_revision": revision,
    }
    shards = {
        "model-00001-of-00002.safetensors": shard_mib * 1024 * 1024,
        "model-00002-of-00002.safetensors": 1024 * 1024 + 123,
    }
    index = {"metadata": {"total_size": sum(shards.values())},
             "weight_map": {f"model.layers.{i}.weight": name for i, name in enumerate(sorted(shards))}}
    texts = {
        "config.json": json.dumps(config, indent=2),
        "generation_config.json": json.dumps({"max_new_tokens": 64, "temperature": 0.6}),
        "tokenizer_config.json": json.dumps({"model_max_length": 4096, "tokenizer_class": "LlamaTokenizerFast"}),
        "tokenizer.json": json.dumps({"model": {"vocab": {f"tok{i}": i for i in range(1024)}}}),
        "model.safetensors.index.json": json.dumps(index, indent=2),
        "original/README.md": f"Synthetic lab checkpoint {model}@{revision}; not a real model.\n",
    }
    for name, text in texts.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(text + "\n")
    for name, size in shards.items():
        (dest / name).write_bytes(rng.randbytes(size))
    save_manifest(build_manifest(dest, model, revision), dest / MANIFEST_FILENAME)
    return dest


def publish_loadable(dest: Path, model: str, revision: str, log=print) -> Path:
    """Publish the tiny V3-layout checkpoint (its files as built, its own manifest for
    ``model@revision``) at ``dest``: a release an engine really loads."""
    import shutil

    from lab import tiny_model

    source = tiny_model.build(log=log)
    marker = dest / ".tiny-source"
    if (dest / MANIFEST_FILENAME).exists() and marker.exists() and marker.read_text().strip() == source.name:
        return dest  # this build, published already (a synthetic checkpoint of the same revision is replaced)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(MANIFEST_FILENAME, ".complete"))
    (dest / ".tiny-source").write_text(source.name + "\n")  # which build, listed in the manifest like the rest
    save_manifest(build_manifest(dest, model, revision), dest / MANIFEST_FILENAME)
    return dest


def generate_large(dest: Path, model: str, revision: str, total_gib: float, shards: int = 8) -> Path:
    """Benchmark data: ``shards`` random shards totalling ``total_gib`` GiB, plus manifest."""
    dest.mkdir(parents=True, exist_ok=True)
    per = int(total_gib * 1024**3) // shards
    block = 16 * 1024 * 1024
    for i in range(shards):
        path = dest / f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        if path.exists() and path.stat().st_size == per:
            continue
        with open(path, "wb") as fh:
            left = per
            while left:
                n = min(block, left)
                fh.write(os.urandom(n))
                left -= n
    (dest / "config.json").write_text(json.dumps({"model_type": "deepseek_v3", "_bench": True}) + "\n")
    save_manifest(build_manifest(dest, model, revision), dest / MANIFEST_FILENAME)
    return dest


def _running() -> bool:
    result = run(["docker", "inspect", "--format", "{{.State.Running}}", MIRROR_NAME], check=False)
    return result.returncode == 0 and result.stdout.decode().strip() == "true"


def _wait_ready(timeout_s: float = 30) -> None:
    probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{PORT}/', timeout=2)"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = run(["docker", "exec", MIRROR_NAME, "python3", "-c", probe], check=False)
        if result.returncode == 0 or b"HTTP Error 404" in result.stderr:
            return
        time.sleep(0.3)
    raise LabError(f"{MIRROR_NAME}: the mirror did not answer on port {PORT} within {timeout_s:.0f}s")


def wheelhouse_dir(log=print) -> Path:
    """The weights tool's wheels (the role's pinned requirements), downloaded once."""
    from lab.wheelhouse import wheelhouse
    from roles.weights.defaults import WeightsDefaults

    return wheelhouse("weights", WeightsDefaults.model_fields["weights_pip_requirements"].default, log=log)


def up(revisions: tuple[str, ...] = LAB_REVISIONS, model: str = LAB_MODEL, shard_mib: int = 8,
       bench_gib: float = 0, log=print, loadable: tuple[str, ...] = ()) -> str:
    """Generate the checkpoints and run the mirror container; return its URL."""
    ensure_daemon(STATE_DIR)
    image = ensure_image(log=log)
    if run(["docker", "network", "inspect", NETWORK], check=False).returncode != 0:
        docker("network", "create", "--label", f"{LABEL_NODE}={FLEET}", NETWORK)
    for revision in revisions:
        generate_checkpoint(checkpoint_dir(model, revision), model, revision, shard_mib)
        log(f"{MIRROR_NAME}: {model}@{revision} at {checkpoint_dir(model, revision)}")
    for revision in loadable:
        publish_loadable(checkpoint_dir(model, revision), model, revision, log=log)
        log(f"{MIRROR_NAME}: {model}@{revision} (the tiny V3-layout checkpoint) at {checkpoint_dir(model, revision)}")
    if bench_gib:
        generate_large(checkpoint_dir(model, "bench"), model, "bench", bench_gib)
    wheelhouse_dir(log=log)
    if not _running():
        docker("rm", "-f", MIRROR_NAME, check=False)
        docker(
            "run", "-d", "--name", MIRROR_NAME, "--hostname", MIRROR_NAME, "--network", NETWORK,
            "--label", f"{LABEL_SERVICE}={FLEET}",
            "-v", f"{DATA_DIR.resolve()}:/srv/data", "-v", f"{SERVER_SCRIPT.resolve()}:/srv/server.py:ro",
            image, "python3", "/srv/server.py", "--root", "/srv/data", "--port", str(PORT),
        )
    _wait_ready()
    log(f"{MIRROR_NAME}: serving {url()} (plain /<repo>/<revision>/<file>, HF /<repo>/resolve/<revision>/<file>)")
    return url()


def down(log=print) -> None:
    if run(["docker", "inspect", MIRROR_NAME], check=False).returncode == 0:
        log(f"{MIRROR_NAME}: removing")
        docker("rm", "-f", MIRROR_NAME)


def requests() -> list[dict]:
    """Every request the mirror served so far, oldest first (its JSON log lines)."""
    out = []
    for line in docker("logs", MIRROR_NAME).splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if "method" in doc:
            out.append(doc)
    return out
