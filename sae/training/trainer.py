"""`harness sae train`: train a sparse autoencoder per layer on the residual stream of a run's prompts.

One pass reads every decision prompt of the run through the model (`sae.training.data`: every
token position, all chosen layers, into a disk buffer), then each layer's SAE
(`sae.training.trainable`) is trained on the training games' tokens and measured on the held-out
games' tokens. Each layer writes `OUT/layer_{L}/` in the SAELens layout (`cfg.json`,
`sae_weights.safetensors`) with `metrics.json` beside it, so `--sae OUT` serves `features`,
`patch` and `words` directly.

Resuming: a layer checkpoints (`checkpoint.pt`: weights, Adam state, dead-feature counters, step)
every `checkpoint_every` steps and on Ctrl-C. Batches are drawn from a generator seeded by
(seed, step), so a run killed at any point and rerun with the same command continues from its last
checkpoint and draws the very batches the uninterrupted run would have: the result is the same up
to the non-determinism of torch's kernels. A finished layer is skipped on rerun.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sae.training.config import TrainConfig, TrainMetrics
from sae.training.data import ActivationBuffer
from sae.training.trainable import TrainableSAE, saelens_cfg, write_saelens

StepReport = Callable[[int, dict], None]


@dataclass
class LayerState:
    """What a checkpoint holds besides the module and optimizer."""

    step: int = 0
    scale: float = 1.0
    since_fired: torch.Tensor | None = None
    losses: list[float] = field(default_factory=list)
    wall_s: float = 0.0


def batch_rows(n: int, cfg: TrainConfig, step: int) -> np.ndarray:
    """Sorted row indices of step `step`'s batch: a function of (seed, step) only."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    return np.sort(torch.randint(0, n, (cfg.batch_tokens,), generator=g).numpy())


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up over the first 5% (at most 100 steps), linear decay to 0 over the last 20%."""
    warm = max(1, min(100, cfg.steps // 20))
    decay_from = int(cfg.steps * 0.8)
    factor = min(1.0, (step + 1) / warm)
    if step >= decay_from:
        factor *= (cfg.steps - step) / max(1, cfg.steps - decay_from)
    return cfg.lr * factor


def input_scale(data: np.ndarray, seed: int, rows: int = 16384) -> float:
    """sqrt(d_model) / mean row norm, on a seeded sample: scaled inputs have mean squared norm ~ d_model."""
    idx = np.sort(np.random.default_rng(seed).choice(len(data), size=min(rows, len(data)), replace=False))
    norms = np.linalg.norm(np.asarray(data[idx], dtype=np.float64), axis=1)
    return float(math.sqrt(data.shape[1]) / max(norms.mean(), 1e-12))


def save_checkpoint(
    file: Path, sae: TrainableSAE, opt: torch.optim.Optimizer, st: LayerState, key: str
) -> None:
    tmp = file.with_suffix(".tmp")
    torch.save({"config": sae.cfg.model_dump(), "buffer_key": key, "model": sae.state_dict(),
                "optim": opt.state_dict(), "state": st.__dict__}, tmp)
    os.replace(tmp, file)  # atomic: a kill during the save leaves the previous checkpoint


def start_layer(data: np.ndarray, cfg: TrainConfig, layer: int, file: Path, key: str, device: str):
    """(sae, optimizer, state): from `file` when it was written for the same settings and data, else fresh."""
    sae = TrainableSAE(data.shape[1], cfg, torch.Generator().manual_seed(cfg.seed + layer)).to(device)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr)
    ckpt = torch.load(file, map_location=device, weights_only=True) if file.is_file() else None
    if ckpt and ckpt["config"] == cfg.model_dump() and ckpt["buffer_key"] == key:
        sae.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optim"])
        return sae, opt, LayerState(**ckpt["state"])
    st = LayerState(scale=input_scale(data, cfg.seed), since_fired=torch.zeros(sae.d_sae, dtype=torch.long))
    # start b_dec at the data mean: the first steps then learn directions, not the offset
    with torch.no_grad():
        sample = torch.from_numpy(np.asarray(data[batch_rows(len(data), cfg, -1)])).to(device)
        sae.b_dec.copy_(sample.mean(0) * st.scale)
    return sae, opt, st


def train_steps(sae, opt, st: LayerState, data: np.ndarray, cfg: TrainConfig, save: Callable[[], None],
                every: int, on_step: StepReport) -> None:
    """Optimise from `st.step` to `cfg.steps`; checkpoint every `every` steps and on Ctrl-C."""
    device = sae.W_dec.device
    t0, base_wall = time.time(), st.wall_s
    assert st.since_fired is not None  # set by every fresh or resumed state
    try:
        while st.step < cfg.steps:
            x = torch.from_numpy(np.asarray(data[batch_rows(len(data), cfg, st.step)])).to(device) * st.scale
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, st.step)
            l0_weight = cfg.l0_coef * min(1.0, st.step / max(1.0, 0.1 * cfg.steps))
            loss, parts = sae.loss(x, (st.since_fired >= cfg.dead_tokens).to(device), l0_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            sae.project_decoder_grad()
            opt.step()
            sae.normalize_decoder()
            st.since_fired += len(x)
            st.since_fired[parts["fired"].cpu()] = 0
            st.losses = (st.losses + [float(loss.detach())])[-50:]
            st.step += 1
            st.wall_s = base_wall + time.time() - t0
            if st.step % every == 0 or st.step == cfg.steps:
                save()
            on_step(st.step, {"loss": st.losses[-1], "l0": parts["l0"],
                              "dead": int((st.since_fired >= cfg.dead_tokens).sum())})
    except KeyboardInterrupt:
        save()
        raise


@torch.no_grad()
def evaluate(sae: TrainableSAE, scale: float, data: np.ndarray, chunk: int = 4096) -> dict:
    """Explained variance, mean L0, MSE and never-active features over all rows of `data` (raw units)."""
    device = sae.W_dec.device
    sse, l0, n = 0.0, 0.0, 0
    s1 = torch.zeros(data.shape[1], dtype=torch.float64)
    s2 = 0.0
    fired = torch.zeros(sae.d_sae, dtype=torch.bool, device=device)
    for i in range(0, len(data), chunk):
        x = torch.from_numpy(np.array(data[i: i + chunk])).to(device)  # a copy: the memmap is read-only
        x_hat, active, fired_here, _ = sae(x * scale)
        sse += float((x - x_hat / scale).double().pow(2).sum())
        l0 += float(active.sum())
        fired |= fired_here
        s1 += x.double().sum(0).cpu()
        s2 += float(x.double().pow(2).sum())
        n += len(x)
    sst = s2 - float(s1.pow(2).sum()) / n
    return {"explained_variance": 1.0 - sse / max(sst, 1e-12), "mean_l0": l0 / n,
            "mse": sse / (n * data.shape[1]), "dead_features": int((~fired).sum())}


@dataclass
class TrainJob:
    """One `harness sae train` pass over the layers of a filled buffer."""

    buf: ActivationBuffer
    cfg: TrainConfig
    out: Path
    model_name: str
    device: str
    games: dict[str, int]
    checkpoint_every: int = 100

    def run_layer(self, layer: int, on_step: StepReport) -> TrainMetrics:
        """Train (or resume) one layer, write its SAELens folder and metrics.json; return the metrics."""
        folder = self.out / f"layer_{layer}"
        folder.mkdir(parents=True, exist_ok=True)
        ckpt = folder / "checkpoint.pt"
        data = self.buf.open("train", layer)
        sae, opt, st = start_layer(data, self.cfg, layer, ckpt, self.buf.key, self.device)
        on_step(st.step, {})
        train_steps(sae, opt, st, data, self.cfg, lambda: save_checkpoint(ckpt, sae, opt, st, self.buf.key),
                    self.checkpoint_every, on_step)
        metrics = TrainMetrics(
            layer=layer, **evaluate(sae, st.scale, self.buf.open("heldout", layer)),
            dead_in_training=int((st.since_fired >= self.cfg.dead_tokens).sum()), d_sae=sae.d_sae,
            train_tokens=self.buf.rows["train"], heldout_tokens=self.buf.rows["heldout"],
            train_games=self.games["train"], heldout_games=self.games["heldout"], steps=st.step,
            final_loss=float(np.mean(st.losses)) if st.losses else float("nan"), scale=st.scale,
            train_wall_s=st.wall_s,
        )
        cfg_json = saelens_cfg(self.cfg, sae.d_model, layer, self.model_name, metrics.model_dump())
        write_saelens(folder, sae.exported(st.scale), cfg_json)
        (folder / "metrics.json").write_text(metrics.model_dump_json(indent=2) + "\n")
        ckpt.unlink(missing_ok=True)  # the SAE is written; the checkpoint has served its purpose
        return metrics


def finished_metrics(folder: Path, cfg: TrainConfig) -> TrainMetrics | None:
    """The metrics of a layer already trained with these settings, else None."""
    import json

    try:
        saved = json.loads((folder / "cfg.json").read_text())["metadata"]["training"]
        metrics = TrainMetrics.model_validate_json((folder / "metrics.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return metrics if saved == cfg.model_dump() and (folder / "sae_weights.safetensors").is_file() else None
