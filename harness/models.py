"""Where a model's files are, and the prompt formatter that every backend shares.

The harness applies the chat template and tokenizes itself, so every engine sees the same
token ids for the same prompt (no engine adds a second BOS, none cuts the answer by the
prompt's length: backends return only the new tokens).
"""

from __future__ import annotations

from pathlib import Path

from harness.config import EMBEDDED_MODEL, ModelConfig
from harness.errors import ConfigError


def resolve_model_path(model: ModelConfig) -> str:
    """A local directory for `model.path`; never downloads. ConfigError if not found."""
    if model.path == EMBEDDED_MODEL:
        from harness.embedded import ensure_checkpoint

        return str(ensure_checkpoint())
    if model.path.startswith("embedded:"):
        raise ConfigError(f"model.path: unknown embedded model {model.path!r}; allowed: {EMBEDDED_MODEL!r}")
    local = Path(model.path).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ConfigError(f"model.path: {local} has no config.json (not a model directory)")
        return str(local)
    if model.path.count("/") == 1 and not model.path.startswith(("/", ".")):
        try:
            from huggingface_hub import snapshot_download

            return snapshot_download(model.path, local_files_only=True)
        except Exception:
            pass
    raise ConfigError(
        f"model.path: {model.path!r} is not a local directory nor a model in the local Hugging Face cache "
        "(the harness never downloads models)"
    )


def load_causal_lm(path: str, dtype: str = "auto"):
    """A transformers causal LM from a local directory, in `dtype` ('bfloat16', ..., 'auto').

    Gemma-2 gets eager attention: its attention logit soft-capping is not in SDPA."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    extra = {}
    if AutoConfig.from_pretrained(path, local_files_only=True).model_type.startswith("gemma2"):
        extra["attn_implementation"] = "eager"
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, local_files_only=True, **extra)


class PromptFormatter:
    """Turns the game's prompt text into what the model sees, and into token ids."""

    def __init__(self, tokenizer, style: str, system_prompt: str | None = None):
        """`tokenizer` None: plain text, no template (the scripted backend)."""
        self.tokenizer = tokenizer
        self.style = style
        self.system_prompt = system_prompt
        if tokenizer is not None and style == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ConfigError("model.style: 'chat' but the tokenizer has no chat template; use style = 'base'")

    @classmethod
    def from_pretrained(cls, path: str, style: str, system_prompt: str | None = None) -> PromptFormatter:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(path, local_files_only=True), style, system_prompt)

    def render(self, prompt_text: str) -> str:
        """The full text the model sees: chat template applied for chat models."""
        if self.style == "base" or self.tokenizer is None:
            return prompt_text
        messages = [{"role": "user", "content": prompt_text}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, rendered: str) -> list[int] | None:
        if self.tokenizer is None:
            return None
        # A chat template writes its own BOS; a base prompt gets the tokenizer's.
        return list(self.tokenizer(rendered, add_special_tokens=self.style == "base")["input_ids"])
