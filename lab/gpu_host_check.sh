#!/usr/bin/env bash
# Checks that need a real NVIDIA GPU, run ON a GPU host from the repository root:
#   lab/gpu_host_check.sh OUTDIR [CHECKPOINT_DIR]
# 1. capture the hardware outputs and NVML's view (lab/capture.py), the fixtures the
#    parsers are tested against (tests/fixtures/hw/gpu-host/);
# 2. the driver and CUDA verify suites against this host (testinfra local backend);
# 3. the transformers engine server on the GPU with a small checkpoint (when given),
#    answering a real completion, with nvidia-smi showing it on the GPU.
# Needs the collection's Python dependencies importable (pyinfra, pydantic, testinfra,
# starlette, uvicorn, torch, transformers).
set -u
out=${1:?usage: lab/gpu_host_check.sh OUTDIR [CHECKPOINT_DIR]}
checkpoint=${2:-}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

echo "== capture"
python3 -m lab.capture "$out/capture" >"$out/nvml.json" 2>"$out/capture.log"; echo "capture rc=$?"
cat "$out/capture.log"; cat "$out/nvml.json"

echo "== verify (nvidia_driver, cuda) against this host"
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)
DEEPSEEK_NVIDIA_DRIVER_VERSION=$driver timeout 300 python3 -m pytest -p no:cacheprovider \
  tests/verify/nvidia_driver tests/verify/cuda --hosts=local:// -rA -q \
  --junitxml="$out/verify.xml" >"$out/verify.log" 2>&1; echo "verify rc=$?"
tail -40 "$out/verify.log"

if [ -n "$checkpoint" ]; then
  echo "== transformers engine on the GPU"
  port=18000
  python3 -m deepseek_node.engine_server --model "$checkpoint" --served-model-name tiny --port $port \
    --device auto >"$out/engine.log" 2>&1 &
  engine=$!
  for _ in $(seq 120); do curl -sf localhost:$port/health >/dev/null && break; sleep 1; done
  curl -s localhost:$port/v1/models; echo
  curl -s localhost:$port/v1/chat/completions -H 'content-type: application/json' \
    -d '{"model":"tiny","messages":[{"role":"user","content":"hello"}],"max_tokens":16,"logprobs":true,"top_logprobs":2}' \
    >"$out/completion.json"; echo "completion: $(head -c 600 "$out/completion.json")"
  nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv >"$out/compute-apps.csv"
  cat "$out/compute-apps.csv"
  curl -s localhost:$port/metrics | grep model_info | head -5
  kill $engine; wait $engine 2>/dev/null
  tail -15 "$out/engine.log"
fi
