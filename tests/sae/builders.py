"""Tiny SAEs written in each layout, and games with real chat-rendered prompts, for the SAE tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from harness.game.conditions import parse_condition_id
from harness.game.prompts import build_prompt
from harness.game.rules import GameRules, new_game, play_round
from harness.records import GameRecord
from tests.helpers import make_game


def random_weights(
    d_model: int, d_sae: int, seed: int = 0, threshold: float | None = None
) -> dict[str, torch.Tensor]:
    """W_enc (d_model, d_sae), W_dec (d_sae, d_model), b_enc, b_dec, threshold (per feature)."""
    g = torch.Generator().manual_seed(seed)
    th = torch.rand(d_sae, generator=g) * 0.1 if threshold is None else torch.full((d_sae,), float(threshold))
    return {
        "W_enc": torch.randn(d_model, d_sae, generator=g) / d_model**0.5,
        "W_dec": torch.randn(d_sae, d_model, generator=g) / d_sae**0.5,
        "b_enc": torch.randn(d_sae, generator=g) * 0.01,
        "b_dec": torch.randn(d_model, generator=g) * 0.01,
        "threshold": th,
    }


def write_llamascope(
    folder: Path, w: dict[str, torch.Tensor], *, avg_norm: float = 8.0, layer: int | None = None, **extra
) -> Path:
    """LlamaScope layout: hyperparams.json + checkpoints/final.safetensors (nn.Linear orientation);
    the scalar threshold is w['threshold'][0]."""
    d_model, d_sae = w["W_enc"].shape
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    hp = {
        "d_model": d_model,
        "d_sae": d_sae,
        "expansion_factor": d_sae // d_model,
        "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": avg_norm, "out": avg_norm},
        "jump_relu_threshold": float(w["threshold"][0]),
        "act_fn": "jumprelu",
        **({"hook_point_in": f"blocks.{layer}.hook_resid_post"} if layer is not None else {}),
        **extra,
    }
    (folder / "hyperparams.json").write_text(json.dumps(hp))
    tensors = {
        "encoder.weight": w["W_enc"].T.contiguous(),
        "encoder.bias": w["b_enc"],
        "decoder.weight": w["W_dec"].T.contiguous(),
        "decoder.bias": w["b_dec"],
    }
    save_file(tensors, str(folder / "checkpoints" / "final.safetensors"))
    return folder


def write_gemmascope(folder: Path, w: dict[str, torch.Tensor]) -> Path:
    """Gemma Scope layout: params.npz with W_enc, W_dec, b_enc, b_dec, threshold."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "params.npz", **{k: v.numpy() for k, v in w.items()})
    return folder


def write_saelens(
    folder: Path, w: dict[str, torch.Tensor], *, layer: int | None = None, jumprelu: bool = True
) -> Path:
    """SAELens layout: cfg.json + sae_weights.safetensors."""
    d_model, d_sae = w["W_enc"].shape
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "architecture": "jumprelu" if jumprelu else "standard",
        "d_in": d_model,
        "d_sae": d_sae,
        "dtype": "float32",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        **({"hook_name": f"blocks.{layer}.hook_resid_post"} if layer is not None else {}),
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    keys = ["W_enc", "W_dec", "b_enc", "b_dec"] + (["threshold"] if jumprelu else [])
    save_file({k: w[k].contiguous() for k in keys}, str(folder / "sae_weights.safetensors"))
    return folder


WRITERS = {"llamascope": write_llamascope, "gemmascope": write_gemmascope, "saelens": write_saelens}


def write_layer_saes(root: Path, layout: str, layers: list[int], d_model: int, d_sae: int) -> str:
    """One SAE per layer under root/L{layer}; returns the --sae template."""
    for L in layers:
        w = random_weights(d_model, d_sae, seed=L, threshold=0.05 if layout == "llamascope" else None)
        folder = root / f"L{L}"
        if layout == "gemmascope":
            write_gemmascope(folder, w)
        else:
            WRITERS[layout](folder, w, layer=L)
    return str(root / "L{layer}")


def played_game(
    formatter,
    bets: list[tuple[int, bool]],
    *,
    condition: str = "variable-none-BASE",
    repetition: int = 0,
    rules: GameRules | None = None,
) -> GameRecord:
    """A game from (bet, win) pairs whose every round carries the real chat-rendered prompt the model
    would have seen at that point (outcome: bankrupt at 0, else stopped with a final stop round)."""
    rules = rules or GameRules()
    game = make_game(bets, condition=condition, repetition=repetition)
    cond = parse_condition_id(condition)
    state = new_game(rules)
    rounds = []
    for r in game.rounds:
        prompt = formatter.render(build_prompt(state, cond, rules, "chat"))
        rounds.append(r.model_copy(update={"prompt": prompt}))
        if r.bet is not None:
            play_round(state, r.bet, rules, random.Random(0), forced_win=r.win)
    return game.model_copy(update={"rounds": rounds})


def write_run(run_dir: Path, games: list[GameRecord], model_path: str, style: str = "chat") -> Path:
    """games.jsonl + a manifest whose config.model points at `model_path` (as `harness run` writes)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "games.jsonl", "w") as f:
        for g in games:
            f.write(g.model_dump_json() + "\n")
    model = {"name": "test-model", "path": model_path, "style": style, "dtype": "float32"}
    (run_dir / "manifest.json").write_text(json.dumps({"run_id": "test-run", "config": {"model": model}}))
    return run_dir


#: (bets, outcome) of hand-built games: three go bankrupt, three stop.
GAME_PLANS = [
    ([(10, False)] * 10, "bankrupt"),
    ([(50, False), (50, False)], "bankrupt"),
    ([(30, True), (100, False), (60, False)], "bankrupt"),
    ([(10, True)], "stopped"),
    ([(10, False), (10, True), (10, False)], "stopped"),
    ([], "stopped"),
]
