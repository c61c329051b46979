"""Settings for every host. A key left out takes the role's default (README, "Variables").

Only site decisions live here; each role's full list of variables, with a one-line
comment each, is in roles/<role>/defaults.py.
"""

# Model to serve: a Hugging Face repo id or an alias from deepseek_infra/catalog.py.
deepseek_model = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
# Inference engine: vllm (production), sglang, or transformers (small models, CPU, lab).
deepseek_engine = "vllm"
