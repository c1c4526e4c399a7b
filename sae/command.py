"""`harness sae ...`: SAE analysis of a finished run.

Each sub-command is a registrar in `SUBCOMMANDS` (a function adding one parser to the `sae`
sub-parsers and setting `func`); a new one (e.g. `patch`, `words`) is one function and one line in
that list. Heavy imports (torch, transformers) happen inside the `run_*` functions only.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path

SAE_SPEC_HELP = (
    "SAE folder per layer: a template like 'saes/L{layer}R-8x', a folder with layer_{L} "
    "subfolders, or one SAE folder (with one layer). See docs/sae.md."
)


def dtype_name(value: str) -> str:
    """An argparse type: one of `harness.backends.devices.DTYPE_NAMES`, checked when parsed so that
    building the parser (`harness --help`) does not import the backends."""
    from harness.backends.devices import DTYPE_NAMES

    if value not in DTYPE_NAMES:
        raise argparse.ArgumentTypeError(f"{value!r} not one of {', '.join(DTYPE_NAMES)}")
    return value


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """--sae, --model, --style, --device, --dtype, --sae-dtype and --out: every SAE command's."""
    p.add_argument("--sae", required=True, metavar="SPEC", help=SAE_SPEC_HELP)
    p.add_argument("--model", help="Model path (default: the run manifest's config.model.path).")
    p.add_argument("--style", choices=["chat", "base"], help="Prompt style (default: from the manifest).")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ... (default auto).")
    p.add_argument("--dtype", help="Model dtype (default: the manifest's config.model.dtype).")
    p.add_argument(
        "--sae-dtype", default="float32", type=dtype_name, metavar="DTYPE",
        help="SAE dtype: float32, bfloat16 or float16 (default float32)."
    )
    p.add_argument("--out", type=Path, help="Output folder (default RUN_DIR/sae/<command>).")


def add_events_flags(p: argparse.ArgumentParser) -> None:
    """--events and --no-events: where the pass's progress events go."""
    p.add_argument(
        "--events", type=Path, metavar="PATH",
        help="Append progress events to PATH instead of RUN_DIR/events.jsonl (a study's own stream).",
    )
    p.add_argument(
        "--no-events", action="store_true", help="Do not append progress events to RUN_DIR/events.jsonl."
    )


def add_model_args(p: argparse.ArgumentParser) -> None:
    """RUN_DIR, --layers and the model / device flags every SAE pass shares."""
    p.add_argument(
        "run_dir", type=Path, metavar="RUN_DIR", help="Run directory (games.jsonl, manifest.json)."
    )
    p.add_argument("--layers", required=True, help="Block indices, e.g. '25-31' or '1,5,9'.")
    add_model_flags(p)
    p.add_argument("--batch-size", type=int, default=16, help="Prompts per forward pass (default 16).")
    add_events_flags(p)


def open_run(args):
    """(games, reader, saes) for a command's args; every user error is a HarnessError, and the
    cheap checks (layers, SAE folders, games file) come before the model is loaded."""
    from sae.games import read_games
    from sae.reader import ResidualReader, run_model_config
    from sae.spec import load_folders, parse_layers, resolve_spec

    layers = parse_layers(args.layers)
    folders = resolve_spec(args.sae, layers)
    games = read_games(args.run_dir)
    reader = ResidualReader(
        run_model_config(args.run_dir, args.model, args.style),
        device=args.device, dtype=args.dtype, batch_size=args.batch_size,
    )
    if layers[-1] >= reader.n_layers:
        from harness.errors import ConfigError

        last = reader.n_layers - 1
        raise ConfigError(f"--layers: {layers[-1]} out of range; the model has blocks 0..{last}")
    saes = load_folders(folders, device=reader.device, dtype=args.sae_dtype, d_model=reader.d_model)
    return games, reader, saes


@contextmanager
def progress(args, kind: str, reader):
    """A `PassProgress` for the pass; its run_end event says how the pass ended."""
    from sae.progress import PassProgress, finishing

    with finishing(PassProgress(
        args.run_dir, kind, reader.model_name, events=not args.no_events, file=args.events
    )) as report:
        yield report


# --- features ------------------------------------------------------------------------------------


def register_features(sub) -> None:
    p = sub.add_parser("features", help="Bankrupt vs stopped games: SAE features at the last decision.")
    add_model_args(p)
    p.add_argument("--min-d", type=float, default=0.3, help="Minimum |Cohen's d| (default 0.3).")
    p.add_argument("--max-p", type=float, default=1e-3, help="Maximum Welch p (default 0.001).")
    p.add_argument("--max-q", type=float, default=0.05, help="Maximum BH q over all layers (default 0.05).")
    p.set_defaults(func=run_features)


def run_features(args) -> int:
    from sae.features import extract_features, write_result
    from sae.stats import Thresholds

    games, reader, saes = open_run(args)
    with progress(args, "features", reader) as report:
        result = extract_features(games, saes, reader, Thresholds(args.min_d, args.max_p, args.max_q), report)
    result.meta.update(run_dir=str(args.run_dir), sae_spec=args.sae)
    paths = write_result(result, args.out or args.run_dir / "sae" / "features")
    print(result.summary.to_string(index=False))
    significant = int(result.table["significant"].sum())
    print(f"{significant} significant features; wrote {paths['table']} and {paths['csv']}")
    return 0


# --- pathway -------------------------------------------------------------------------------------


def register_pathway(sub) -> None:
    p = sub.add_parser(
        "pathway", help="Every decision of selected games, every layer: sparse shards + comparison."
    )
    add_model_args(p)
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
    p.set_defaults(func=run_pathway)


def run_pathway(args) -> int:
    from sae.pathway.shards import ShardStore
    from sae.pathway.tracking import compare_pathway, extract_pathway, select_games, write_pathway

    games, reader, saes = open_run(args)
    ids = [s.strip() for s in args.game_ids.split(",")] if args.game_ids else None
    chosen, sample = select_games(games, None if args.all_games else args.games, ids, seed=args.seed)
    if not chosen:
        from harness.errors import RunDirError

        raise RunDirError(f"{args.run_dir}: no bankrupt or stopped games to track")
    out = args.out or args.run_dir / "sae" / "pathway"
    with progress(args, "pathway", reader) as report:
        index = extract_pathway(chosen, saes, reader, out / "shards", args.rows_per_shard, report, sample)
    store = ShardStore(out / "shards")
    size = sum(f.stat().st_size for f in (out / "shards").glob("shard-*.safetensors"))
    per_group = index.groupby("group")["game_id"].nunique() if len(index) else {}
    if all(per_group.get(g, 0) >= 2 for g in ("bankrupt", "stopped")):
        result = compare_pathway(store, top_k=args.top_k)
        write_pathway(result, out)
        print(result.layers.to_string(index=False))
    else:
        print("comparison skipped: it needs at least 2 bankrupt and 2 stopped games", file=sys.stderr)
    shards = f"{store.meta['shards']} shards ({size / 2**20:.1f} MiB)"
    print(f"{len(chosen)} games, {len(index)} rows, {shards} in {out}")
    return 0


# --- convert -------------------------------------------------------------------------------------


def register_convert(sub) -> None:
    p = sub.add_parser(
        "convert", help="Write Gemma Scope params.npz as params.safetensors (once) for fast loads."
    )
    p.add_argument("--sae", required=True, metavar="SPEC", help=SAE_SPEC_HELP)
    p.add_argument("--layers", required=True, help="Block indices, e.g. '25-31' or '1,5,9'.")
    p.set_defaults(func=run_convert)


def run_convert(args) -> int:
    from sae.loading import convert_npz
    from sae.spec import parse_layers, resolve_spec

    for layer, folder in resolve_spec(args.sae, parse_layers(args.layers)).items():
        if (folder / "params.npz").is_file():
            print(f"layer {layer}: {convert_npz(folder)}")
    return 0


# --- patch, words (sae/patching/command.py) -----------------------------------------------------------


def _add_selection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target", type=Path, metavar="RUN_DIR_OR_FEATURES",
        help="Run directory (model, rules, games) or a features table (then --model is needed)."
    )
    p.add_argument(
        "--features", type=Path, metavar="TABLE",
        help="Features table (default RUN_DIR/sae/features/features.parquet)."
    )
    p.add_argument("--top", type=int, help="At most N features per layer, by |d| (default: all selected).")
    p.add_argument("--layers", help="Only these layers, e.g. '25-31'.")
    p.add_argument("--ids", help="Exactly these features, 'layer:feature,...' (overrides the selection).")
    p.add_argument("--all-features", action="store_true", help="Not only the table's significant features.")
    add_model_flags(p)


def register_patch(sub) -> None:
    p = sub.add_parser(
        "patch", help="Activation patching: clamp each feature while generating (batched, resumable)."
    )
    _add_selection_args(p)
    p.add_argument("--trials", type=int, default=50, help="Trials per condition (default 50).")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument(
        "--max-new-tokens", type=int, help="Default: the run's generation.max_new_tokens (else 256)."
    )
    p.add_argument(
        "--decision", choices=("free", "constrained"),
        help="How answers are generated and read (default: the run's game.decision, else free).",
    )
    p.add_argument("--seed", type=int, help="Trial seeds derive from it (default: the run's seed).")
    p.add_argument("--batch-size", type=int, default=200, help="Trials per generate call (default 200).")
    p.add_argument("--alpha", type=float, default=0.05, help="BH-FDR level over all tests (default 0.05).")
    p.add_argument("--min-effect", type=float, default=0.1, help="Minimum |rate change| (default 0.1).")
    for name in ("safe", "risky"):
        p.add_argument(f"--{name}-condition", help=f"Condition id of the {name} prompt.")
        p.add_argument(f"--{name}-history", help=f"Rounds before the {name} prompt, e.g. '10L,20W'.")
    p.add_argument("--restart", action="store_true", help="Discard earlier results in the output folder.")
    add_events_flags(p)
    p.set_defaults(func=lambda args: _patch_command("run_patch", args))


def register_words(sub) -> None:
    p = sub.add_parser(
        "words", help="Feature words: tokens a feature promotes, answer words where it is high."
    )
    _add_selection_args(p)
    p.add_argument(
        "--causal", type=Path, help="Only features classified safe/risky in this patch_features.parquet."
    )
    p.add_argument(
        "--k-tokens", type=int, default=10, help="Promoted / suppressed tokens per feature (default 10)."
    )
    p.add_argument(
        "--k-words", type=int, default=10, help="High / low answer words per feature (default 10)."
    )
    p.add_argument("--batch-size", type=int, default=16, help="Prompts per forward pass (default 16).")
    add_events_flags(p)
    p.set_defaults(func=lambda args: _patch_command("run_words", args))


def _patch_command(name: str, args) -> int:
    from sae.patching import command as patch_command

    return getattr(patch_command, name)(args)


# --- train (sae/train_command.py) -----------------------------------------------------------------


def register_train(sub) -> None:
    p = sub.add_parser(
        "train", help="Train an SAE per layer on the residual stream of a run's prompts (resumable)."
    )
    p.add_argument(
        "run_dir", type=Path, metavar="RUN_DIR", help="Run directory (games.jsonl, manifest.json)."
    )
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
    p.add_argument("--model", help="Model path (default: the run manifest's config.model.path).")
    p.add_argument("--style", choices=["chat", "base"], help="Prompt style (default: from the manifest).")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ... (default auto).")
    p.add_argument("--dtype", help="Model dtype (default: the manifest's config.model.dtype).")
    p.add_argument("--batch-size", type=int, default=8, help="Prompts per forward pass (default 8).")
    p.add_argument("--out", type=Path, help="Output folder (default RUN_DIR/sae/train).")
    p.add_argument("--restart", action="store_true", help="Retrain: ignore checkpoints and finished layers.")
    p.add_argument(
        "--keep-buffer", action="store_true", help="Keep OUT/buffer (the residuals) after training."
    )
    add_events_flags(p)
    p.set_defaults(func=_train_command)


def _train_command(args) -> int:
    from sae.train_command import run_train

    return run_train(args)


#: `harness sae` sub-commands; append a registrar to add one.
SUBCOMMANDS = [
    register_features, register_pathway, register_convert, register_patch, register_words, register_train,
]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sae", help="SAE analysis of a run: features, pathway, patch, words, convert, train."
    )
    sub = parser.add_subparsers(dest="sae_command", metavar="SAE_COMMAND", required=True)
    for registrar in SUBCOMMANDS:
        registrar(sub)
