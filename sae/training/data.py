"""Training data for `harness sae train`: the residual stream at every token of every decision prompt.

The prompts are the exact strings the model saw (`RoundRecord.prompt`, chat template applied), one
per decision round of every game, tokenized as the harness did when it generated. Games, not
prompts, are split into train and held-out sets (seeded), so held-out figures are measured on games
the SAE never saw. Every position but the first is kept: under causal attention position 0 sees
only itself, so it is the same vector in every prompt, and in SmolLM2 (an attention sink) its norm
is ~150x the others': kept, it would be 99% of the variance and the explained variance would
measure nothing else. The residuals go batch by batch into one float32 `.npy` memmap per split and
layer, sized beforehand from the token counts: memory stays at one batch whatever the model, and an
interrupted collection resumes at the first unwritten batch (`buffer.json` records the progress and
a key of what the buffer holds, so a buffer of other prompts, layers or model is never reused).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from harness.errors import RunDirError
from harness.records import GameRecord
from sae.games import decision_rounds
from sae.hooks import StopForward, capture_residual


def prompts_by_game(games: list[GameRecord]) -> dict[str, list[str]]:
    """{game_id: its decision prompts in order}, games without a saved prompt left out."""
    out = {g.game_id: [r.prompt for r in decision_rounds(g)] for g in games}
    return {gid: ps for gid, ps in sorted(out.items()) if ps}


def split_games(game_ids: list[str], holdout: float, seed: int) -> tuple[list[str], list[str]]:
    """(train ids, held-out ids): a seeded shuffle of the sorted ids, at least one game on each side."""
    ids = sorted(game_ids)
    if len(ids) < 2:
        raise RunDirError(f"sae train needs at least 2 games with decision prompts, found {len(ids)}")
    random.Random(seed).shuffle(ids)
    n_test = min(max(1, round(holdout * len(ids))), len(ids) - 1)
    return sorted(ids[n_test:]), sorted(ids[:n_test])


def buffer_key(model: str, layers: list[int], splits: dict[str, list[list[int]]]) -> str:
    """A digest of what a buffer holds: model, layers and every split's token ids."""
    h = hashlib.sha256(json.dumps({"model": model, "layers": layers}).encode())
    for name in sorted(splits):
        h.update(name.encode())
        for ids in splits[name]:
            h.update(np.asarray(ids, dtype=np.int64).tobytes() + b"|")
    return h.hexdigest()[:16]


class ActivationBuffer:
    """`folder/{split}-layer_{L}.npy` (tokens x d_model, float32) plus `buffer.json` (key, progress)."""

    def __init__(self, folder: Path, key: str, d_model: int, layers: list[int], rows: dict[str, int]):
        self.folder, self.key, self.d_model, self.layers, self.rows = folder, key, d_model, layers, rows
        self.state_file = folder / "buffer.json"

    def path(self, split: str, layer: int) -> Path:
        return self.folder / f"{split}-layer_{layer}.npy"

    def state(self) -> dict:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return state if state.get("key") == self.key else {}

    def save_state(self, done: dict[str, int]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": self.key, "rows": self.rows, "done": done}))
        os.replace(tmp, self.state_file)  # atomic: progress never runs ahead of the flushed rows

    def open(self, split: str, layer: int, mode: Literal["r", "r+", "w+"] = "r") -> np.memmap:
        if mode == "w+":
            return np.lib.format.open_memmap(self.path(split, layer), mode="w+", dtype=np.float32,
                                             shape=(self.rows[split], self.d_model))
        return np.load(self.path(split, layer), mmap_mode=mode)

    def complete(self) -> bool:
        done = self.state().get("done", {})
        return all(done.get(s, -1) >= n for s, n in self.rows.items())


@torch.inference_mode()
def forward_all(reader, ids: list[list[int]], layers: list[int]) -> dict[int, list[torch.Tensor]]:
    """{layer: [(len_i - 1, d_model) residuals of each prompt]}: one pass; padding and position 0 dropped."""
    with capture_residual(reader.model, layers, stop_after_last=True) as got:
        try:
            reader.model(**reader.batch_tensors(ids), use_cache=False)
        except StopForward:
            pass
    return {
        L: [got[L][i, got[L].shape[1] - len(x) + 1:].float().cpu() for i, x in enumerate(ids)] for L in layers
    }


def collect(reader, splits: dict[str, list[list[int]]], layers: list[int], folder: Path,
            report: Callable[[int], None] | None = None) -> ActivationBuffer:
    """Fill (or finish filling) the buffer of every split; `report(prompts_done)` after each batch."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = {s: sum(len(x) - 1 for x in ids) for s, ids in splits.items()}
    buf = ActivationBuffer(
        folder, buffer_key(reader.model_name, layers, splits), reader.d_model, layers, rows
    )
    done = buf.state().get("done") or {}
    finished = sum(len(splits[s]) for s in splits if done.get(s, -1) >= rows[s])
    for split, ids in splits.items():
        if done.get(split, -1) >= rows[split]:
            continue
        mode: Literal["r+", "w+"] = "r+" if split in done else "w+"
        arrays = {L: buf.open(split, L, mode) for L in layers}
        row = done.get(split, 0)
        # Fixed, length-sorted order: a resumed collection meets the prompts exactly where it left off.
        order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
        offsets = np.cumsum([0] + [len(ids[i]) - 1 for i in order])
        start = int(np.searchsorted(offsets, row))
        for b in range(start, len(order), reader.batch_size):
            chunk = [ids[i] for i in order[b: b + reader.batch_size]]
            got = forward_all(reader, chunk, layers)
            end = int(offsets[b + len(chunk)])
            for L in layers:
                arrays[L][offsets[b]:end] = torch.cat(got[L]).numpy()
                arrays[L].flush()
            done[split] = end
            buf.save_state(done)
            if report:
                report(finished + b + len(chunk))
        done[split] = rows[split]
        buf.save_state(done)
        finished += len(ids)
    return buf
