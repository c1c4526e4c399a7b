"""`harness sae train RUN_DIR --layers ...`: prompts -> activation buffer -> one SAE per layer.

The flags are registered in `sae/command.py` (`register_train`); this module does the work, so
`harness --help` never imports torch. See `sae/training/trainer.py` for the method and the resume rule.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import cast

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.errors import ConfigError
from sae.training.config import TrainConfig, TrainMetrics


def train_config(args) -> TrainConfig:
    """The TrainConfig of the command's flags (ConfigError naming the flag when one is out of range)."""
    fields = ("architecture", "expansion", "k", "l0_coef", "init_threshold", "bandwidth", "lr", "steps",
              "batch_tokens", "seed", "holdout", "dead_tokens")
    try:
        return TrainConfig(**{f: getattr(args, f) for f in fields if getattr(args, f, None) is not None})
    except ValueError as e:
        err = e.errors()[0]  # type: ignore[attr-defined]
        raise ConfigError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None


class TrainBar:
    """A rich bar for reading the prompts and one per layer, with loss, L0 and dead features."""

    def __init__(self, prompts: int, layers: list[int], steps: int):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.read = self.progress.add_task("prompts", total=prompts, info="")
        self.layers = {
            L: self.progress.add_task(f"layer {L}", total=steps, info="", start=False) for L in layers
        }

    def __enter__(self) -> TrainBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def prompts(self, done: int) -> None:
        self.progress.update(self.read, completed=done)

    def step(self, layer: int, step: int, info: dict) -> None:
        task = self.layers[layer]
        self.progress.start_task(task)
        text = f"loss {info['loss']:.4f} L0 {info['l0']:.1f} dead {info['dead']}" if info else "resumed"
        self.progress.update(task, completed=step, info=text)


def print_metrics(metrics: list[TrainMetrics], out: Path) -> None:
    for m in metrics:
        print(f"layer {m.layer}: explained variance {m.explained_variance:.3f}  mean L0 {m.mean_l0:.1f}  "
              f"dead {m.dead_features}/{m.d_sae}  "
              f"({m.heldout_tokens} held-out tokens of {m.heldout_games} games; "
              f"{m.steps} steps, {m.train_wall_s:.0f} s)")
    print(f"wrote {out}/layer_{{L}}/ (cfg.json, sae_weights.safetensors, metrics.json); use --sae {out}")


def run_train(args) -> int:
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
    print_metrics([cast(TrainMetrics, done[L]) for L in layers], out)  # every layer is done by now
    return 0
