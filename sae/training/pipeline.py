"""`harness sae train` after its flags: the layers left to train, the prompts split by game, then
one pass of the model into the activation buffer and each layer's training (`trainer.TrainJob`).

The split comes before the model loads, so a run without enough prompts fails at once. The model
is dropped once the buffer is full: training needs only the buffer.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.records import GameRecord
from sae.training.config import TrainConfig, TrainMetrics
from sae.training.data import collect, prompts_by_game, split_games
from sae.training.trainer import TrainJob, finished_metrics

#: A layer's progress: (layer, step, {"loss", "l0", "dead"}; empty on the resumed first step).
LayerReport = Callable[[int, int, dict], None]


def finished_layers(out: Path, layers: list[int], cfg: TrainConfig, restart: bool = False
                    ) -> dict[int, TrainMetrics]:
    """The metrics of the layers already trained under `cfg` in OUT. With `restart`, none: their
    checkpoints are dropped too, so every layer trains from the start."""
    if restart:
        for L in layers:
            (out / f"layer_{L}" / "checkpoint.pt").unlink(missing_ok=True)
        return {}
    found = {L: finished_metrics(out / f"layer_{L}", cfg) for L in layers}
    return {L: m for L, m in found.items() if m is not None}


@dataclass
class TrainPrompts:
    """The decision prompts of the training and the held-out games, and how many games each holds."""

    prompts: dict[str, list[str]]
    games: dict[str, int]

    @property
    def count(self) -> int:
        return sum(len(p) for p in self.prompts.values())


def split_prompts(games: list[GameRecord], cfg: TrainConfig) -> TrainPrompts:
    """Every game's decision prompts, its game in the training or the held-out split (seeded)."""
    by_game = prompts_by_game(games)
    train_ids, heldout_ids = split_games(list(by_game), cfg.holdout, cfg.seed)
    return TrainPrompts(
        {name: [p for gid in ids for p in by_game[gid]] for name, ids in (("train", train_ids),
                                                                           ("heldout", heldout_ids))},
        {"train": len(train_ids), "heldout": len(heldout_ids)},
    )


def train_layers(
    reader, split: TrainPrompts, layers: list[int], cfg: TrainConfig, out: Path, *,
    checkpoint_every: int = 100, keep_buffer: bool = False,
    on_read: Callable[[int], None] | None = None, on_step: LayerReport | None = None,
) -> dict[int, TrainMetrics]:
    """Read every prompt through `reader` into OUT/buffer (`on_read(prompts done)`), then train each
    layer (`on_step(layer, step, info)`), writing OUT/layer_L/. OUT/buffer is removed at the end
    unless `keep_buffer`."""
    tokens = {name: [reader.encode(p) for p in prompts] for name, prompts in split.prompts.items()}
    buf = collect(reader, tokens, layers, out / "buffer", on_read)
    if on_read:
        on_read(split.count)
    job = TrainJob(buf, cfg, out, reader.model_name, reader.device, split.games, checkpoint_every)
    reader.model = None  # free the model (GPU memory) before training
    done = {}
    for L in layers:
        def step(s: int, info: dict, L: int = L) -> None:
            if on_step:
                on_step(L, s, info)

        done[L] = job.run_layer(L, step)
    if not keep_buffer:
        shutil.rmtree(out / "buffer", ignore_errors=True)
    return done
