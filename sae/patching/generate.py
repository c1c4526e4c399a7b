"""Activation patching: clamp one SAE feature while the model generates, row by row in a batch.

The method (docs/protocol.md §3.6, "Exp2"). Let x be the residual stream after block L at the last
position of a forward pass, s the SAE of layer L, f a feature and a_old = s.encode(x)[f] its
current activation. Setting f to a target value a_new changes only that feature:

    x' = x + (a_new - a_old) * W_dec[f] / output_scale

which is what s.decode would give for the edited activations, *plus the SAE's reconstruction
error left in place* (x - s.decode(s.encode(x)) is the same before and after). Replacing x by the
reconstruction, as the authors did, would also delete everything the SAE fails to explain. A
target equal to a_old adds exactly zero: the patch is then a no-op.

Where: at block L's output (`sae.hooks.edit_residual`), at the last position of every forward
pass of `generate`: the prompt's last token in the prefill pass, then each new token as it is
fed back (KV cache on, so each decoding pass has one position). Earlier positions are never
touched; their cached keys and values are those of the unpatched prompt.

Batching: every row of a batch is an independent trial with its own feature, target and seed.
The hook of layer L gets per-row feature ids, targets and a mask (rows patched at L); unmasked
rows (baseline trials, or rows patched at another layer) are left bit for bit as they are.
All rows of one generate call share one prompt: its first n - 1 tokens are computed once,
unpatched (no patch touches them), and their KV cache is copied to every row, so a batch of B
trials costs one prompt plus B decoding streams instead of B prompts.
Sampling is the game harness's (`harness.backends.sampling.PerRowSampler`: one seeded stream per
row), so a trial's answer depends on its seed, not on its batch neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from harness.backends.sampling import PerRowSampler
from harness.config import ModelConfig
from harness.game.parse import parse_decision
from harness.game.prompts import BASE_STOP, DECISION_MAX_TOKENS, DECISION_PATTERN, PromptStyle, cued_answer
from sae.hooks import edit_residual
from sae.model import SAE
from sae.patching.prompts import PatchPrompt


class RowPatch:
    """The edit for one layer: row i's feature `features[i]` set to `targets[i]` where `mask[i]`."""

    def __init__(self, sae: SAE, features: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor):
        self.sae = sae
        self.rows = mask.nonzero().squeeze(1).to(sae.device)
        self.features = features.to(sae.device)[self.rows]
        self.targets = targets.to(device=sae.device, dtype=sae.dtype)[self.rows]
        self.directions = sae.feature_direction(self.features)  # (rows, d_model)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        if self.rows.numel() == 0:
            return h
        rows = self.rows.to(h.device)
        a_old = self.sae.encode(h[rows, -1, :], self.features)
        change = (self.targets - a_old)[:, None] * self.directions
        h[rows, -1, :] += change.to(device=h.device, dtype=h.dtype)  # in place: no copy of the sequence
        return h


@dataclass(frozen=True)
class Row:
    """One trial: a prompt, the patch (None = baseline) and the sampling seed."""

    prompt: str
    seed: int
    layer: int | None = None
    feature: int | None = None
    target: float | None = None


def row_patches(rows: list[Row], saes: dict[int, SAE]) -> dict[int, RowPatch]:
    """One `RowPatch` per layer that any row patches."""
    edits = {}
    for layer in sorted({r.layer for r in rows if r.layer is not None}):
        mask = torch.tensor([r.layer == layer for r in rows])
        features = torch.tensor([r.feature if r.layer == layer else 0 for r in rows], dtype=torch.long)
        targets = torch.tensor([r.target if r.layer == layer else 0.0 for r in rows], dtype=torch.float64)
        edits[layer] = RowPatch(saes[layer], features, targets, mask)
    return edits


@dataclass(frozen=True)
class TrialResult:
    seed: int
    action: str | None
    bet: int | None
    kind: str
    response: str


class Generator:
    """A causal LM behind the game harness's transformers backend; `run` a batch of rows.

    `Generator.load(model_cfg)` loads it the way the games did; `from_model` wraps a model already
    in memory (benchmarks with random weights)."""

    def __init__(self, backend, formatter, style: PromptStyle, name: str, *, max_new_tokens: int = 256,
                 temperature: float = 0.7, top_p: float = 1.0, stop: Sequence[str] = ()):
        self.backend, self.formatter, self.style, self.model_name = backend, formatter, style, name
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.stop = list(stop) + (BASE_STOP if style == "base" else [])

    @classmethod
    def load(cls, model_cfg: ModelConfig, *, device: str = "auto", dtype: str | None = None,
             **options) -> Generator:
        from harness.backends.checkpoints import load_causal_lm, resolve_model_path
        from harness.backends.devices import resolve_device
        from harness.backends.formatter import PromptFormatter

        path = resolve_model_path(model_cfg)
        formatter = PromptFormatter.from_pretrained(path, model_cfg.style, model_cfg.system_prompt)
        lm = load_causal_lm(path, dtype or model_cfg.dtype).to(resolve_device(device))
        return cls.from_model(lm, formatter, model_cfg.style, name=model_cfg.name, **options)

    @classmethod
    def from_model(cls, lm: torch.nn.Module, formatter, style: PromptStyle = "chat", *,
                   name: str | None = None, **options) -> Generator:
        from harness.backends.transformers import TransformersBackend

        backend = TransformersBackend.from_model(lm, formatter)  # no queue: a pass drives batches itself
        return cls(backend, formatter, style, name or type(lm).__name__, **options)

    @property
    def model(self) -> torch.nn.Module:
        return self.backend.model

    @property
    def device(self) -> str:
        return self.backend.device

    def run(self, rows: list[Row], prompts: dict[str, PatchPrompt],
            saes: dict[int, SAE]) -> list[TrialResult]:
        """One answer per row (patched as the row says), parsed as the game would; one generate call
        per prompt among the rows."""
        out: list[TrialResult | None] = [None] * len(rows)
        for name, p in prompts.items():
            idx = [i for i, r in enumerate(rows) if r.prompt == name]
            if not idx:
                continue
            constrained = p.decision == "constrained"
            texts = self.generate([rows[i] for i in idx], self.formatter.encode(p.rendered), saes,
                                  constrained=constrained)
            for i, text in zip(idx, texts, strict=True):
                read = cued_answer(text, self.style) if constrained else text
                d = parse_decision(read, bet_type=p.condition.bet_type, balance=p.balance, style=self.style,
                                   fixed_bet=p.rules.fixed_bet, min_bet=p.rules.min_bet)
                out[i] = TrialResult(rows[i].seed, d.action, d.bet, d.kind, text)
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def generate(self, rows: list[Row], prompt_ids: list[int], saes: dict[int, SAE], *,
                 constrained: bool = False) -> list[str]:
        """Answers of rows that share one prompt. The prompt minus its last token is run once, unpatched
        (no patch ever touches those positions), and its KV cache copied to every row; `generate` then
        feeds the last prompt token (the first patched position) and samples, one seeded stream per row.
        `constrained`: every answer is generated under the decision pattern, as the games of a
        constrained run were (the games' own `DecisionConstraint`)."""
        from transformers import GenerationConfig, LogitsProcessorList

        from harness.backends.transformers import DecisionConstraint

        b, n = self.backend, len(rows)
        ids = torch.tensor([prompt_ids], dtype=torch.long, device=b.device)
        cache = None
        if ids.shape[1] > 1:
            cache = b.model(input_ids=ids[:, :-1], use_cache=True).past_key_values
            cache.batch_repeat_interleave(n)
        processors: list = [PerRowSampler([r.seed for r in rows], [self.temperature] * n, [self.top_p] * n)]
        if constrained:  # the mask first, then the sampler draws among the allowed tokens
            matcher = b.matcher(DECISION_PATTERN)
            processors.insert(0, DecisionConstraint([matcher] * n, b.eos_ids, ids.shape[1]))
        stop = [] if constrained else self.stop
        config = GenerationConfig(
            do_sample=False, max_new_tokens=DECISION_MAX_TOKENS if constrained else self.max_new_tokens,
            pad_token_id=b.pad_id, eos_token_id=b.eos_ids, stop_strings=stop or None,
        )
        with edit_residual(self.model, row_patches(rows, saes)):
            out = b.model.generate(
                input_ids=ids.repeat(n, 1),
                attention_mask=torch.ones((n, ids.shape[1]), dtype=torch.long, device=b.device),
                past_key_values=cache, generation_config=config,
                logits_processor=LogitsProcessorList(processors),
                tokenizer=b.tokenizer if stop else None,
            )
        return [b.decode_answer(toks, stop)[0] for toks in out[:, ids.shape[1]:].tolist()]
