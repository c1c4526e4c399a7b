"""`harness sae features`: bankrupt vs stopped games, SAE features at the last decision."""

from __future__ import annotations

from harness.rundir.files import sae_pass_dir
from sae.commands.options import add_pass_args, check_layers, open_run, progress

#: The checks of the flags alone, before anything is read.
validate = check_layers


def register(sub) -> None:
    p = sub.add_parser("features", help="Bankrupt vs stopped games: SAE features at the last decision.")
    add_pass_args(p)
    p.add_argument("--min-d", type=float, default=0.3, help="Minimum |Cohen's d| (default 0.3).")
    p.add_argument("--max-p", type=float, default=1e-3, help="Maximum Welch p (default 0.001).")
    p.add_argument("--max-q", type=float, default=0.05, help="Maximum BH q over all layers (default 0.05).")
    p.set_defaults(func=run, validate=validate)


def run(args) -> int:
    from harness.rundir.files import FEATURES_FIGURE
    from sae.features import extract_features, write_result
    from sae.figures import features_effects
    from sae.releases import neuronpedia_ids, with_neuronpedia
    from sae.stats import Thresholds

    games, reader, saes = open_run(args)
    with progress(args, "features", reader.model_name, args.run_dir) as report:
        result = extract_features(games, saes, reader, Thresholds(args.min_d, args.max_p, args.max_q), report)
    result.meta.update(run_dir=str(args.run_dir), sae_spec=args.sae)
    result.table = with_neuronpedia(result.table, neuronpedia_ids(saes))
    out = args.out or sae_pass_dir(args.run_dir, "features")
    paths = write_result(result, out)
    figure = features_effects(result.table, out / FEATURES_FIGURE)
    print(result.summary.to_string(index=False))
    significant = int(result.table["significant"].sum())
    print(f"{significant} significant features; wrote {paths['table']}, {paths['csv']} and {figure}")
    return 0
