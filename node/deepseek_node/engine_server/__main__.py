"""Run the transformers engine: ``python -m deepseek_node.engine_server --model DIR --served-model-name NAME``.

The model is loaded before the socket opens, so ``/health`` answering means the engine
can generate. Installed on nodes by the serve role: the deepseek-node wheel in the engine's
venv (/opt/deepseek/engine/venv), beside the pinned transformers runtime.
"""

from __future__ import annotations

import argparse
import logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="deepseek-engine-server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="checkpoint directory (config.json, safetensors, tokenizer)")
    parser.add_argument("--served-model-name", required=True, help="model id clients send and /v1/models lists")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-model-len", type=int, default=None, help="context limit (capped by the checkpoint)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9,
                        help="share of each GPU's memory device_map may fill (the rest spills to CPU, then disk)")
    parser.add_argument("--device", default="auto", help='"auto" (device_map="auto": GPUs, then CPU, then disk), "cpu", "cuda"')
    parser.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    parser.add_argument("--offload-folder", default=None, help='where device_map="auto" offloads what fits nowhere else')
    parser.add_argument("--default-max-tokens", type=int, default=256, help="max_tokens of a chat request that gives none")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    import uvicorn

    from .app import create_app
    from .backend import TransformersBackend

    log = logging.getLogger("engine_server")
    log.info("loading %s (device %s, dtype %s)", args.model, args.device, args.dtype)
    backend = TransformersBackend(args.model, device=args.device, dtype=args.dtype,
                                  offload_folder=args.offload_folder, max_model_len=args.max_model_len,
                                  gpu_memory_utilization=args.gpu_memory_utilization)
    if args.max_model_len and backend.max_model_len < args.max_model_len:
        log.warning("max_model_len %d exceeds the checkpoint's %d positions; serving %d",
                    args.max_model_len, backend.max_model_len, backend.max_model_len)
    log.info("loaded on %s; max_model_len %d; serving %s on %s:%d",
             backend.device, backend.max_model_len, args.served_model_name, args.host, args.port)
    app = create_app(backend, args.served_model_name, default_max_tokens=args.default_max_tokens)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":
    main()
