"""`harness sae train RUN_DIR --layers ...`: prompts -> activation buffer -> one SAE per layer.

See `sae/training/trainer.py` for the method and the resume rule. Torch loads only when the command
runs, so `harness --help` never imports it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, cast

from harness.errors import ConfigError
from sae.commands.options import add_events_flags, add_model_flags, add_run_dir, check_layers

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
    from sae.commands.train_bar import TrainBar
    from sae.games import read_games
    from sae.progress import PassProgress, finishing
    from sae.reader import ResidualReader, run_model_config
    from sae.spec import parse_layers
    from sae.training.data import collect, prompts_by_game, split_games
    from sae.training.trainer import TrainJob, finished_metrics

    cfg = train_config(args)
    layers = parse_layers(args.layers)
    out: Path = args.out or args.run_dir / "sae" / "train"
    by_game = prompts_by_game(read_games(args.run_dir))
    train_ids, heldout_ids = split_games(list(by_game), cfg.holdout, cfg.seed)
    done = {} if args.restart else {L: finished_metrics(out / f"layer_{L}", cfg) for L in layers}
    todo = [L for L in layers if done.get(L) is None]
    if args.restart:
        for L in layers:
            (out / f"layer_{L}" / "checkpoint.pt").unlink(missing_ok=True)
    if todo:
        reader = ResidualReader(run_model_config(args.run_dir, args.model, args.style),
                                device=args.device, dtype=args.dtype, batch_size=args.batch_size)
        if todo[-1] >= reader.n_layers:
            raise ConfigError(
                f"--layers: {todo[-1]} out of range; the model has blocks 0..{reader.n_layers - 1}"
            )
        splits = {name: [reader.encode(p) for gid in ids for p in by_game[gid]]
                  for name, ids in (("train", train_ids), ("heldout", heldout_ids))}
        n_prompts = sum(len(x) for x in splits.values())
        total = n_prompts + len(todo) * cfg.steps
        events = PassProgress(args.run_dir, "train", reader.model_name, events=not args.no_events, echo=False,
                              file=args.events)
        with finishing(events), TrainBar(n_prompts, todo, cfg.steps) as bar:
            def read_report(n: int) -> None:
                bar.prompts(n)
                events(n, total)

            buf = collect(reader, splits, todo, out / "buffer", read_report)
            bar.prompts(n_prompts)
            job = TrainJob(buf, cfg, out, reader.model_name, reader.device,
                           {"train": len(train_ids), "heldout": len(heldout_ids)}, args.checkpoint_every)
            reader.model = None  # free the model (GPU memory) before training
            for i, L in enumerate(todo):
                def on_step(step: int, info: dict, L=L, base=n_prompts + i * cfg.steps) -> None:
                    bar.step(L, step, info)
                    events(base + step, total)

                done[L] = job.run_layer(L, on_step)
        if not args.keep_buffer:
            shutil.rmtree(out / "buffer", ignore_errors=True)
    print_metrics([cast("TrainMetrics", done[L]) for L in layers], out)  # every layer is done by now
    return 0
