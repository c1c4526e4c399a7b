"""Last-token residuals of many prompts at many layers: batched, one forward pass per batch.

The prompts are the exact strings the model saw in the game (chat template already applied), so
they are tokenized the way the harness did when it generated (`PromptFormatter.encode`: no second
BOS for chat-styled runs). Batches are sorted by length to keep padding small, left-padded with
explicit position ids (a padded row then gives the same last-token residual as the prompt alone),
and the forward pass runs the base model only (no LM head) and stops after the deepest chosen
block.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from harness.backends.devices import DTYPE_NAMES, resolve_device
from harness.config import ModelConfig
from harness.errors import ConfigError, RunDirError
from harness.rundir.manifest import manifest_path, read_manifest
from sae.hooks import StopForward, capture_residual, last_position


def run_model_config(run_dir: Path, model: str | None = None, style: str | None = None) -> ModelConfig:
    """The model a run played with (manifest's config.model), or `model` (a path) when given."""
    manifest_file = manifest_path(run_dir)
    manifest = read_manifest(run_dir)
    cfg: dict = manifest.model_section() if manifest is not None else {}
    if model is not None:
        cfg = {**cfg, "name": cfg.get("name", Path(model).name), "path": model}
    if style is not None:
        cfg = {**cfg, "style": style}
    if "path" not in cfg:
        raise RunDirError(f"{manifest_file}: no config.model.path; pass --model PATH")
    try:
        return ModelConfig.model_validate({"name": cfg.get("name", "model"), **cfg})
    except Exception as e:
        raise RunDirError(f"{manifest_file}: config.model: {e}") from None


class ResidualReader:
    """A causal LM loaded for reading residuals; `last_token(prompts, layers)` does the work."""

    def __init__(self, model_cfg: ModelConfig, *, device: str = "auto", dtype: str | None = None,
                 batch_size: int = 16):
        from transformers.utils import logging as hf_logging

        from harness.backends.checkpoints import load_causal_lm, resolve_model_path
        from harness.backends.formatter import PromptFormatter

        path = resolve_model_path(model_cfg)
        dtype = dtype or model_cfg.dtype
        if dtype != "auto" and dtype not in DTYPE_NAMES:
            raise ConfigError(f"--dtype: {dtype!r} not one of {', '.join(DTYPE_NAMES)}")
        self.model_name = model_cfg.name
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.formatter = PromptFormatter.from_pretrained(path, model_cfg.style, model_cfg.system_prompt)
        hf_logging.disable_progress_bar()  # the CLI prints its own progress
        lm = load_causal_lm(path, dtype)
        self.model = getattr(lm, "model", lm).to(self.device).eval()  # base model: no LM head
        self.d_model = int(lm.config.hidden_size)
        self.n_layers = int(lm.config.num_hidden_layers)
        tok = self.formatter.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)

    @classmethod
    def from_model(cls, model: torch.nn.Module, formatter, *, batch_size: int = 16) -> ResidualReader:
        """Wrap an already loaded base model (tests, benchmarks)."""
        self = cls.__new__(cls)
        self.model, self.formatter, self.batch_size = model.eval(), formatter, batch_size
        self.model_name = type(model).__name__
        self.device = str(next(model.parameters()).device)
        config: Any = model.config  # a transformers PretrainedConfig
        self.d_model = int(config.hidden_size)
        self.n_layers = int(config.num_hidden_layers)
        self.pad_id = 0
        return self

    def encode(self, prompt: str) -> list[int]:
        ids = self.formatter.encode(prompt)
        if ids is None:
            raise ConfigError("the model's prompt formatter has no tokenizer")
        return ids

    def batch_tensors(self, ids: list[list[int]]) -> dict[str, torch.Tensor]:
        """Left-padded input_ids, attention_mask and position_ids (0 at each row's first real token)."""
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, x in enumerate(ids):
            input_ids[i, width - len(x) :] = torch.tensor(x, dtype=torch.long)
            mask[i, width - len(x) :] = 1
        position_ids = (mask.cumsum(-1) - 1).clamp_min(0)
        return {
            "input_ids": input_ids.to(self.device),
            "attention_mask": mask.to(self.device),
            "position_ids": position_ids.to(self.device),
        }

    @torch.inference_mode()
    def forward_last(self, ids: list[list[int]], layers: list[int]) -> dict[int, torch.Tensor]:
        """{layer: (batch, d_model)} last-token residuals after each block in `layers`, one pass."""
        with capture_residual(self.model, layers, select=last_position, stop_after_last=True) as got:
            try:
                self.model(**self.batch_tensors(ids), use_cache=False)
            except StopForward:
                pass
        return {L: got[L] for L in layers}

    def last_token(
        self, prompts: list[str], layers: list[int]
    ) -> Iterator[tuple[list[int], dict[int, torch.Tensor]]]:
        """Yield (positions in `prompts`, {layer: (batch, d_model)}) batch by batch, shortest first."""
        ids = [self.encode(p) for p in prompts]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            yield chunk, self.forward_last([ids[i] for i in chunk], layers)
