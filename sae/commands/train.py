"""`harness sae train RUN_DIR --layers ...`: prompts -> activation buffer -> one SAE per layer.

See `sae/training/trainer.py` for the method and the resume rule. Torch loads only when the command
runs, so `harness --help` never imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ConfigError
from harness.rundir.files import sae_pass_dir
from sae.commands.options import (
    add_events_flags,
    add_model_flags,
    add_run_dir,
    check_layer_range,
    check_layers,
    progress,
    run_games,
)

if TYPE_CHECKING:
    from sae.training.config import TrainConfig, TrainMetrics


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="Train an SAE per layer on the residual stream of a run's prompts (resumable)."
    )
    add_run_dir(p)
    p.add_argument("--layers", required=True, help="Block indices, e.g. '15' or '10,15,20'.")
    p.add_argument("--architecture", choices=["topk", "jumprelu"], help="Activation (default topk).")
    p.add_argument("--expansion", type=int, help="d_sae = expansion x d_model (default 8).")
    p.add_argument("--k", type=int, help="TopK: active features per token (default 32).")
    p.add_argument("--l0-coef", type=float, help="JumpReLU: L0 penalty per active feature (default 0.001).")
    p.add_argument("--init-threshold", type=float, help="JumpReLU: initial threshold (default 0.5).")
    p.add_argument("--bandwidth", type=float, help="JumpReLU: straight-through kernel width (default 0.1).")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 0.003).")
    p.add_argument("--steps", type=int, help="Optimizer steps per layer (default 400).")
    p.add_argument("--batch-tokens", type=int, help="Token positions per step (default 2048).")
    p.add_argument(
        "--dead-tokens", type=int, help="Inactive this many training tokens = dead (default 50000)."
    )
    p.add_argument("--seed", type=int, help="Seeds init, game split and batches (default 0).")
    p.add_argument("--holdout", type=float, help="Share of games held out for the metrics (default 0.2).")
    p.add_argument(
        "--checkpoint-every", type=int, default=100, help="Steps between checkpoints (default 100)."
    )
    add_model_flags(p, out="RUN_DIR/sae/train")
    p.add_argument("--batch-size", type=int, default=8, help="Prompts per forward pass (default 8).")
    p.add_argument("--restart", action="store_true", help="Retrain: ignore checkpoints and finished layers.")
    p.add_argument(
        "--keep-buffer", action="store_true", help="Keep OUT/buffer (the residuals) after training."
    )
    add_events_flags(p)
    p.set_defaults(func=run, validate=validate)


def validate(args) -> None:
    """--layers and the training settings, checked before the run's games are read."""
    check_layers(args)
    train_config(args)


def train_config(args) -> TrainConfig:
    """The TrainConfig of the command's flags (ConfigError naming the flag when one is out of range)."""
    from sae.training.config import TrainConfig

    fields = ("architecture", "expansion", "k", "l0_coef", "init_threshold", "bandwidth", "lr", "steps",
              "batch_tokens", "seed", "holdout", "dead_tokens")
    try:
        return TrainConfig(**{f: getattr(args, f) for f in fields if getattr(args, f, None) is not None})
    except ValueError as e:
        err = e.errors()[0]  # type: ignore[attr-defined]
        raise ConfigError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None


def print_metrics(metrics: list[TrainMetrics], out: Path) -> None:
    for m in metrics:
        print(f"layer {m.layer}: explained variance {m.explained_variance:.3f}  mean L0 {m.mean_l0:.1f}  "
              f"dead {m.dead_features}/{m.d_sae}  "
              f"({m.heldout_tokens} held-out tokens of {m.heldout_games} games; "
              f"{m.steps} steps, {m.train_wall_s:.0f} s)")
    print(f"wrote {out}/layer_{{L}}/ (cfg.json, sae_weights.safetensors, metrics.json); use --sae {out}")


def run(args) -> int:
    from harness.commands.console import TrainBar
    from sae.reader import ResidualReader, run_model_config
    from sae.spec import parse_layers
    from sae.training.pipeline import finished_layers, split_prompts, train_layers

    cfg = train_config(args)
    layers = parse_layers(args.layers)
    out: Path = args.out or sae_pass_dir(args.run_dir, "train")
    split = split_prompts(run_games(args.run_dir), cfg)
    done = finished_layers(out, layers, cfg, restart=args.restart)
    todo = [L for L in layers if L not in done]
    if todo:
        reader = ResidualReader(run_model_config(args.run_dir, args.model, args.style),
                                device=args.device, dtype=args.dtype, batch_size=args.batch_size)
        check_layer_range(todo, reader)
        total = split.count + len(todo) * cfg.steps
        with progress(args, "train", reader.model_name, args.run_dir, echo=False) as events, \
                TrainBar(split.count, todo, cfg.steps) as bar:
            def on_read(n: int) -> None:
                bar.prompts(n)
                events(n, total)

            def on_step(layer: int, step: int, info: dict) -> None:
                bar.step(layer, step, info)
                events(split.count + todo.index(layer) * cfg.steps + step, total)

            done |= train_layers(reader, split, todo, cfg, out, checkpoint_every=args.checkpoint_every,
                                 keep_buffer=args.keep_buffer, on_read=on_read, on_step=on_step)
    print_metrics([done[L] for L in layers], out)
    return 0
