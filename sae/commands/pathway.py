"""`harness sae pathway`: every decision of selected games at every layer, in sparse shards, and
the bankrupt vs stopped comparison of the pathway."""

from __future__ import annotations

import sys

from harness.errors import RunDirError
from harness.rundir.files import sae_pass_dir
from sae.commands.options import add_pass_args, check_layers, open_run, progress

#: The checks of the flags alone, before anything is read.
validate = check_layers


def register(sub) -> None:
    p = sub.add_parser(
        "pathway", help="Every decision of selected games, every layer: sparse shards + comparison."
    )
    add_pass_args(p)
    p.add_argument(
        "--games", type=int, default=50, help="Games to sample, half bankrupt if possible (default 50)."
    )
    p.add_argument("--all-games", action="store_true", help="Every bankrupt and voluntarily stopped game.")
    p.add_argument("--game-ids", help="Comma-separated game ids (overrides --games).")
    p.add_argument(
        "--seed", type=int, default=0, help="Seed of the sample, stratified by condition (default 0)."
    )
    p.add_argument("--top-k", type=int, default=10, help="Top features per layer to follow (default 10).")
    p.add_argument("--rows-per-shard", type=int, default=8192)
    p.set_defaults(func=run, validate=validate)


def run(args) -> int:
    from sae.pathway.tracking import run_pathway, select_games

    games, reader, saes = open_run(args)
    ids = [s.strip() for s in args.game_ids.split(",")] if args.game_ids else None
    chosen, sample = select_games(games, None if args.all_games else args.games, ids, seed=args.seed)
    if not chosen:
        raise RunDirError(f"{args.run_dir}: no bankrupt or stopped games to track")
    out = args.out or sae_pass_dir(args.run_dir, "pathway")
    with progress(args, "pathway", reader.model_name, args.run_dir) as report:
        done = run_pathway(chosen, saes, reader, out, rows_per_shard=args.rows_per_shard, top_k=args.top_k,
                           progress=report, sample=sample)
    if done.result is not None:
        print(done.result.layers.to_string(index=False))
    else:
        print("comparison skipped: it needs at least 2 bankrupt and 2 stopped games", file=sys.stderr)
    shards = f"{done.store.meta['shards']} shards ({done.shard_bytes / 2**20:.1f} MiB)"
    print(f"{len(chosen)} games, {len(done.index)} rows, {shards} in {out}")
    return 0
