"""Settings for the lab fleet (group `lab`): a model and engine that run without a GPU."""

# The smallest DeepSeek model: its weights fit the lab's disk and CPU.
deepseek_model = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
# transformers serves on CPU, so the lab exercises the real serving path without a GPU.
deepseek_engine = "transformers"
# A 1.5B model needs far fewer cores than the brief's 32-core bar for production models.
preflight_min_cpu_cores = 16
