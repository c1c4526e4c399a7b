"""Where a model's files are, and loading a transformers checkpoint from them (never downloads)."""

from __future__ import annotations

from pathlib import Path

from harness.config import ModelConfig
from harness.errors import ConfigError


def local_model_path(config) -> str | None:
    """The local model directory the run's backend needs (`resolve_model_path`), or None when it needs
    none: the scripted backend, and an endpoint that renders prompts itself (the chat API, or the
    completions API for a base model)."""
    kind = config.backend.kind
    if kind == "scripted":
        return None
    if kind == "openai" and (config.backend.api == "chat" or config.model.style == "base"):
        return None
    return resolve_model_path(config.model)


def resolve_model_path(model: ModelConfig) -> str:
    """A local directory for `model.path`; never downloads. ConfigError if not found."""
    if model.path.startswith("embedded:"):
        from harness.backends.embedded import ensure_checkpoint

        return str(ensure_checkpoint(model.path))
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
    from transformers import AutoConfig, AutoModelForCausalLM

    from harness.backends.devices import torch_dtype

    extra = {}
    if AutoConfig.from_pretrained(path, local_files_only=True).model_type.startswith("gemma2"):
        extra["attn_implementation"] = "eager"
    loaded_dtype = "auto" if dtype == "auto" else torch_dtype(dtype)
    return AutoModelForCausalLM.from_pretrained(path, dtype=loaded_dtype, local_files_only=True, **extra)
