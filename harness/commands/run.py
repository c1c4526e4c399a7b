"""`harness run games`: play a condition grid into a run directory (resumable)."""

from __future__ import annotations

import argparse
import sys

from harness.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    parent = sub.add_parser("run", help="Run experiments.", description="Run experiments.")
    run_sub = parent.add_subparsers(dest="what", metavar="WHAT", required=True)
    games = run_sub.add_parser(
        "games",
        help="Play slot-machine games (resumes an existing run directory).",
        description="Play the slot-machine games of a condition grid. Rerunning the same command on the "
        "same --out plays only the games not yet complete.",
    )
    games.add_argument("--config", help="TOML config (default: the embedded SmolLM2 demo model).")
    games.add_argument("--out", help="Run directory (config: out).")
    games.add_argument("--reps", type=int, help="Games per condition (config: repetitions).")
    games.add_argument(
        "--conditions",
        help="Comma-separated condition ids such as 'variable-L-GMP,fixed-none-BASE' "
        "(BETTYPE-FIRST-COMPONENTS; FIRST is W, L or none), or 'grid64' / 'grid128'.",
    )
    games.add_argument("--seed", type=int, help="Run seed (config: seed).")
    games.add_argument("--max-rounds", type=int, help="Rounds per game at most (config: game.max_rounds).")
    games.add_argument("--max-new-tokens", type=int, help="config: generation.max_new_tokens.")
    games.add_argument(
        "--decision", choices=["free", "constrained"],
        help="config: game.decision. free: free text, then parsed; constrained: only 'Bet $N' or 'Stop' "
        "after the 'Final Decision:' cue.",
    )
    games.add_argument("--concurrency", type=int, help="Games in flight at once (config: concurrency).")
    games.add_argument("--backend", choices=["transformers", "vllm", "openai", "scripted", "auto"],
                       help="config: backend.kind (auto: vllm when installed, else transformers).")
    games.add_argument("--device", help="config: backend.device, e.g. cpu, cuda, cuda:1.")
    games.add_argument(
        "--gpus",
        help="One worker process per GPU: ids such as '0,1,2,3', or 'all' (config: gpus). "
        "Conditions are split between the workers; see docs/workers.md.",
    )
    games.add_argument("--workers", type=int, metavar="N", help="N worker processes on CPU (no GPU).")
    games.add_argument(
        "--ray", metavar="ADDRESS",
        help="Run the workers as Ray actors: 'auto' (a cluster started with `ray start`), 'local' "
        "(a throwaway one-machine Ray) or a cluster address. Actors are fed conditions as they free up "
        "and send their results back; only this process writes --out. See docs/workers.md.",
    )
    games.add_argument("--quiet", action="store_true", help="No progress bar.")
    games.add_argument(
        "--dry-run", action="store_true",
        help="Start nothing, write nothing: print the requests, prompt and output tokens the run would "
        "take (first decision, reference, upper bound), and their cost when the config has [pricing].",
    )
    games.add_argument("--json", action="store_true", help="With --dry-run: the estimate as JSON.")
    games.set_defaults(func=run, validate=validate)


def validate(args: argparse.Namespace) -> None:
    if args.gpus is not None and args.workers is not None:
        raise ConfigError("--gpus and --workers: give one (GPU workers, or N CPU workers)")
    if args.workers is not None and not 1 <= args.workers <= 1024:
        raise ConfigError(f"--workers: need 1 to 1024, got {args.workers}")


def overrides_from_args(args: argparse.Namespace) -> dict:
    over = {
        "out": args.out,
        "repetitions": args.reps,
        "seed": args.seed,
        "game.max_rounds": args.max_rounds,
        "generation.max_new_tokens": args.max_new_tokens,
        "game.decision": args.decision,
        "concurrency": args.concurrency,
        "backend.kind": args.backend,
        "backend.device": args.device,
    }
    if args.workers is not None:
        over["gpus"] = ["cpu"] * args.workers
    elif args.gpus is not None and getattr(args, "ray", None):
        over["gpus"] = [g for g in args.gpus.split(",") if g.strip()]  # Ray counts the cluster's GPUs
    elif args.gpus is not None:
        from harness.workers.gpus import resolve_gpus

        over["gpus"] = resolve_gpus(args.gpus)  # 'all' fails here, before the run directory is touched
    if args.conditions is not None:  # every entry kept, so the config refuses an empty or repeated one
        text = args.conditions.strip()
        if text in ("grid64", "grid128"):
            over["conditions"] = {"grid": text.removeprefix("grid")}
        else:
            over["conditions"] = {"ids": text.split(",")}
    return over


def run(args: argparse.Namespace) -> int:
    from harness.backends.checkpoints import local_model_path
    from harness.config import load_config
    from harness.rundir.lock import RunLock
    from harness.rundir.store import RunDir

    config = load_config(args.config, overrides_from_args(args))
    try:  # a missing model or key is a config error, found before anything is written
        local_model_path(config)
        if config.backend.kind == "openai" and not args.dry_run:  # a dry run needs no key
            from harness.backends.openai import api_key

            api_key(config.backend.api_key_env)
        if config.backend.engine_args and config.backend.kind == "vllm":
            from harness.backends.vllm import check_engine_args, engine_fields

            check_engine_args(config.backend.engine_args, engine_fields())
    except ConfigError as e:
        raise ConfigError(f"{args.config or 'defaults'}: {e}") from None
    run_dir = RunDir(config.out)
    run_dir.check_compatible(config.model_dump(mode="json"))  # refused before the lock file is made
    if args.dry_run:
        return dry_run(config, run_dir, as_json=args.json)
    if config.backend_note:  # after the checks: a refused run prints its one line only
        print(config.backend_note, file=sys.stderr)
    with RunLock(run_dir.path):  # one driver per run directory; workers write under its lock
        return _run_locked(config, run_dir, args)


def dry_run(config, run_dir, *, as_json: bool) -> int:
    """Print what the run would ask of its model; nothing is started or written."""
    from harness.backends.checkpoints import resolve_model_path
    from harness.commands.console import print_estimate
    from harness.run.estimate import approximate_count, estimate
    from harness.run.worker_run import make_formatter
    from harness.rundir.reader import RunFiles

    games = [line.game for line in RunFiles(run_dir.path).games().lines]
    decided = [[r for r in g.rounds if not r.forced] for g in games]
    measured = [(len(rounds), sum(1 + r.retries for r in rounds)) for rounds in decided]
    try:  # the model's own tokenizer where it is local (an endpoint's model may not be)
        path = None if config.backend.kind == "scripted" else resolve_model_path(config.model)
    except ConfigError:
        path = None
    if path is not None:
        formatter = make_formatter(config, path)

        def count(text: str) -> int:
            return len(formatter.encode(formatter.render(text)) or [])
        counted_by = "the model's tokenizer"
    else:
        count = approximate_count
        counted_by = f"about 4 characters a token (no local tokenizer for {config.model.path})"
    result = estimate(config, count, counted_by, games_done=len(games), measured=measured)
    print_estimate(config.out, result, as_json=as_json)
    return 0


def _run_locked(config, run_dir, args: argparse.Namespace) -> int:
    import asyncio

    from harness.commands.console import GameProgress, print_summary
    from harness.run.worker_run import pending_games, run_worker

    todo, done = pending_games(config, run_dir)
    manifest = run_dir.prepare(config.model_dump(mode="json"), done + len(todo), sys.argv)
    if not todo:
        print(f"{config.out}: all {done} games already complete")
        return 0
    if args.ray or config.gpus:
        return _run_workers(config, manifest, todo, done, args)
    with GameProgress(total=done + len(todo), done=done, enabled=not args.quiet) as progress:
        try:
            result = asyncio.run(run_worker(config, todo, run_id=manifest.run_id, already_done=done,
                                            on_game=progress.update))
        except asyncio.CancelledError:  # Ctrl-C or SIGTERM: run_end "interrupted" is written
            raise KeyboardInterrupt from None
    print_summary(config.out, result, config.pricing)
    return 0 if result.status == "complete" else 1


def _run_workers(config, manifest, todo, done: int, args: argparse.Namespace) -> int:
    """Several worker processes (--gpus, --workers) or Ray actors (--ray), with a live view of each."""
    from functools import partial

    from harness.commands.console import MultiProgress, print_multi_summary

    view = partial(MultiProgress, enabled=not args.quiet)
    if args.ray:
        from harness.workers.ray_launcher import run_ray

        result = run_ray(config, manifest, todo, done, address=args.ray, view=view)
    else:
        from harness.workers.scheduler import run_multi_worker

        result = run_multi_worker(config, manifest, todo, done, view=view)
    print_multi_summary(config.out, result)
    return 0 if result.complete else 1
