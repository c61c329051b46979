"""The transformers backend: load a checkpoint with ``device_map="auto"`` and generate.

Loading follows the design brief: ``AutoModelForCausalLM.from_pretrained(path,
device_map="auto", offload_folder=...)``, so a model larger than the GPUs spills to CPU
memory and then to the offload folder, and a host without a GPU runs it on the CPU.
Generation is a plain token loop over the model's KV cache, which gives the server
per-token streaming and log-probabilities without depending on ``generate()``'s
internals. Requests interleave step by step; each forward pass holds a lock, so two
streams share the model without sharing state.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .protocol import SamplingParams, TokenLogprob


@dataclass(frozen=True, slots=True)
class Step:
    """One generated token: its id, its log-probability entry and the text it adds."""

    token_id: int
    logprob: TokenLogprob
    text: str  # decoded increment (may be empty while a multi-byte character is incomplete)
    finished: str | None  # "stop" at an end-of-sequence token, "length" at max_tokens, else None


class TransformersBackend:
    """A loaded checkpoint and its tokenizer."""

    def __init__(self, model_path: str, *, device: str = "auto", dtype: str = "auto",
                 offload_folder: str | None = None, max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.9):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{model_path}: no config.json; is the model published there?")
        self.model_path = str(path)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        kwargs: dict = {"local_files_only": True, "dtype": dtype if dtype == "auto" else getattr(torch, dtype)}
        if device == "auto":
            kwargs["device_map"] = "auto"
            if torch.cuda.is_available():  # cap each GPU; what does not fit goes to CPU, then disk
                kwargs["max_memory"] = {
                    index: int(torch.cuda.get_device_properties(index).total_memory * gpu_memory_utilization)
                    for index in range(torch.cuda.device_count())
                }
            if offload_folder:
                kwargs["offload_folder"] = offload_folder
        else:
            kwargs["device_map"] = device
        self.model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        self.model.eval()
        self.device = self.model.get_input_embeddings().weight.device
        limit = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        # Never promise more context than the checkpoint has positions for.
        self.max_model_len = min(max_model_len, limit) if max_model_len and limit else (max_model_len or limit)
        eos = self.model.generation_config.eos_token_id
        eos = eos if eos is not None else self.tokenizer.eos_token_id
        self.eos_ids = frozenset(eos if isinstance(eos, list) else [eos]) - {None}
        self._cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self._lock = threading.Lock()

    # --- prompts -------------------------------------------------------------------------

    def encode_prompt(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt)["input_ids"])

    def encode_chat(self, messages: tuple[dict[str, str], ...]) -> list[int]:
        if not self.tokenizer.chat_template:
            raise ValueError(f"{self.model_path}: the tokenizer has no chat template; use /v1/completions")
        text = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        # The template writes the BOS token itself.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def token_text(self, token_id: int) -> str:
        """A token's text for logprobs; a token that is part of a UTF-8 character shows its raw
        vocabulary entry instead of U+FFFD, so alternatives stay distinct (as in vLLM)."""
        text = self.tokenizer.decode([token_id])
        return self.tokenizer.convert_ids_to_tokens(token_id) if "\ufffd" in text else text

    # --- generation ----------------------------------------------------------------------

    def _forward(self, input_ids: torch.Tensor, cache):
        with self._lock, torch.inference_mode():
            output = self.model(input_ids=input_ids, use_cache=True, **{self._cache_arg: cache})
        next_cache = output.get("cache") if "cache" in output else output.get("past_key_values")
        return output.logits[0, -1].float(), next_cache

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> Iterator[Step]:
        """Yield one Step per generated token until EOS or ``params.max_tokens``."""
        generator = torch.Generator(device="cpu")
        if params.seed is not None:
            generator.manual_seed(params.seed)
        else:
            generator.seed()
        ids = torch.tensor([prompt_ids], device=self.device)
        cache, generated, text = None, [], ""
        for count in range(1, params.max_tokens + 1):
            logits, cache = self._forward(ids, cache)
            logprobs = torch.log_softmax(logits, dim=-1)
            token = self._sample(logits, params, generator)
            generated.append(token)
            decoded = self.tokenizer.decode(generated, skip_special_tokens=True)
            # A partial UTF-8 sequence decodes to U+FFFD; wait for the character to complete.
            piece = "" if decoded.endswith("\ufffd") else decoded[len(text):]
            text = text if decoded.endswith("\ufffd") else decoded
            top: tuple[tuple[str, float], ...] = ()
            if params.logprobs:
                values, indices = torch.topk(logprobs, params.logprobs)
                top = tuple((self.token_text(int(i)), float(v)) for v, i in zip(values, indices, strict=True))
            entry = TokenLogprob(self.token_text(token), float(logprobs[token]), top)
            finished = "stop" if token in self.eos_ids else ("length" if count == params.max_tokens else None)
            yield Step(token, entry, "" if token in self.eos_ids else piece, finished)
            if finished:
                return
            ids = torch.tensor([[token]], device=self.device)

    @staticmethod
    def _sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
        if params.temperature == 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < params.top_p
            sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
            choice = torch.multinomial(sorted_probs.cpu() / sorted_probs.sum(), 1, generator=generator)
            return int(order[int(choice)])
        return int(torch.multinomial(probs.cpu(), 1, generator=generator))
