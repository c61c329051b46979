"""A small OpenAI-compatible server for the transformers engine.

Serves one checkpoint loaded with ``AutoModelForCausalLM.from_pretrained(...,
device_map="auto")`` for small models, CPU-only hosts and the lab, where vLLM and SGLang
do not apply. The package is self-contained (relative imports only, no import of the
rest of ``modules``): the serve role copies it to ``/opt/deepseek/engine/lib/engine_server``
on nodes and runs ``python -m engine_server``. Its pinned dependencies (torch,
transformers, accelerate, safetensors, tokenizers, starlette, uvicorn, prometheus_client)
are ``serve_transformers_requirements`` in roles/serve/defaults.py.
"""
