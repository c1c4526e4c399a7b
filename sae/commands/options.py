"""Flags and argument helpers shared by the `harness sae` sub-commands: the flags, the checks of the
flags (`validate`), and what turns them into a pass's inputs (games, model, SAEs, features, events).
Only argparse and light harness modules at import time; the rest loads inside the helpers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ConfigError, RunDirError
from harness.rundir.files import EVENTS_FILE, FEATURES_TABLE, GAMES_FILE, MANIFEST_FILE, sae_pass_dir

if TYPE_CHECKING:
    from harness.records import PassKind

SAE_SPEC_HELP = (
    "SAE folder per layer: a template like 'saes/L{layer}R-8x', a folder with layer_{L} "
    "subfolders, one SAE folder (with one layer), or saelens:RELEASE[/SAE_ID] (a SAELens release "
    "already in the local Hugging Face cache). See docs/sae.md."
)


def dtype_name(value: str) -> str:
    """An argparse type: one of `harness.backends.devices.DTYPE_NAMES`, checked when parsed so that
    building the parser (`harness --help`) does not import the backends."""
    from harness.backends.devices import DTYPE_NAMES

    if value not in DTYPE_NAMES:
        raise argparse.ArgumentTypeError(f"{value!r} not one of {', '.join(DTYPE_NAMES)}")
    return value


# --- flags ---------------------------------------------------------------------------------------


def add_run_dir(p: argparse.ArgumentParser) -> None:
    """RUN_DIR, the run a pass reads."""
    p.add_argument(
        "run_dir", type=Path, metavar="RUN_DIR", help=f"Run directory ({GAMES_FILE}, {MANIFEST_FILE})."
    )


def add_model_flags(p: argparse.ArgumentParser, out: str = "RUN_DIR/sae/<command>") -> None:
    """--model, --style, --device, --dtype and --out (default `out`): every command's that runs the
    model. Apart from the SAE flags, so that `train` (which writes SAEs) shares them too."""
    p.add_argument("--model", help="Model path (default: the run manifest's config.model.path).")
    p.add_argument("--style", choices=["chat", "base"], help="Prompt style (default: from the manifest).")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ... (default auto).")
    p.add_argument("--dtype", help="Model dtype (default: the manifest's config.model.dtype).")
    p.add_argument("--out", type=Path, help=f"Output folder (default {out}).")


def add_sae_flags(p: argparse.ArgumentParser) -> None:
    """--sae and --sae-dtype: every SAE command's that reads SAEs."""
    p.add_argument("--sae", required=True, metavar="SPEC", help=SAE_SPEC_HELP)
    p.add_argument(
        "--sae-dtype", default="float32", type=dtype_name, metavar="DTYPE",
        help="SAE dtype: float32, bfloat16 or float16 (default float32)."
    )


def add_events_flags(p: argparse.ArgumentParser) -> None:
    """--events and --no-events: where the pass's progress events go."""
    p.add_argument(
        "--events", type=Path, metavar="PATH",
        help=f"Append progress events to PATH instead of RUN_DIR/{EVENTS_FILE} (a study's own stream).",
    )
    p.add_argument(
        "--no-events", action="store_true", help=f"Do not append progress events to RUN_DIR/{EVENTS_FILE}."
    )


def add_pass_args(p: argparse.ArgumentParser) -> None:
    """RUN_DIR, --layers, the SAE and model flags, --batch-size and the events flags of a pass that
    reads the residual stream (features, pathway)."""
    add_run_dir(p)
    p.add_argument("--layers", required=True, help="Block indices, e.g. '25-31' or '1,5,9'.")
    add_sae_flags(p)
    add_model_flags(p)
    p.add_argument("--batch-size", type=int, default=16, help="Prompts per forward pass (default 16).")
    add_events_flags(p)


def add_selection_args(p: argparse.ArgumentParser) -> None:
    """RUN_DIR_OR_FEATURES and the flags that pick features from a features table (patch, words)."""
    p.add_argument(
        "target", type=Path, metavar="RUN_DIR_OR_FEATURES",
        help="Run directory (model, rules, games) or a features table (then --model is needed)."
    )
    p.add_argument(
        "--features", type=Path, metavar="TABLE",
        help=f"Features table (default RUN_DIR/sae/features/{FEATURES_TABLE})."
    )
    p.add_argument("--top", type=int, help="At most N features per layer, by |d| (default: all selected).")
    p.add_argument("--layers", help="Only these layers, e.g. '25-31'.")
    p.add_argument("--ids", help="Exactly these features, 'layer:feature,...' (overrides the selection).")
    p.add_argument("--all-features", action="store_true", help="Not only the table's significant features.")
    add_sae_flags(p)
    add_model_flags(p)


# --- checks of the flags alone (a command's `validate`) ------------------------------------------


def check_layers(args) -> None:
    """--layers reads as block indices, --device is a device of this machine, --events is no
    directory (ConfigError otherwise)."""
    from harness.backends.devices import check_device
    from sae.spec import parse_layers

    if args.layers is not None:
        parse_layers(args.layers)
    if getattr(args, "device", None) is not None:
        check_device(args.device)
    events = getattr(args, "events", None)
    if events is not None and Path(events).is_dir():
        raise ConfigError(f"--events {events}: a directory, not an events file")


def check_selection(args) -> None:
    """--layers and --ids read (ConfigError otherwise)."""
    from sae.patching.stats import parse_ids

    check_layers(args)
    if args.ids:
        parse_ids(args.ids)


# --- a pass's inputs -----------------------------------------------------------------------------


def warn(lines: list[str]) -> None:
    """Print a pass's warnings (an SAE made for another model) on stderr."""
    for line in lines:
        print(line, file=sys.stderr)


def run_games(run_dir: Path) -> list:
    """The run's games as every reader of a run reads them (`sae.games.read_run`), with a warning
    line for what the reader skipped, recovered or dropped."""
    from sae.games import read_run

    read = read_run(run_dir)
    note = read.note()
    if note:
        warn([f"{run_dir / GAMES_FILE}: {note}"])
    return read.games


def check_layer_range(layers: list[int], reader) -> None:
    """ConfigError when the deepest of `layers` is not a block of the loaded model."""
    if layers and layers[-1] >= reader.n_layers:
        last = reader.n_layers - 1
        raise ConfigError(f"--layers: {layers[-1]} out of range; the model has blocks 0..{last}")


def open_run(args):
    """(games, reader, saes) for a command's args; every user error is a HarnessError, and the
    cheap checks (layers, SAE folders, games file) come before the model is loaded. A warning for
    an SAE made for another model is printed."""
    from sae.reader import ResidualReader, run_model_config
    from sae.spec import (
        check_folders,
        load_folders,
        model_warnings,
        parse_layers,
        reader_model_names,
        resolve_spec,
    )

    layers = parse_layers(args.layers)
    folders = resolve_spec(args.sae, layers)
    check_folders(folders)
    games = run_games(args.run_dir)
    reader = ResidualReader(
        run_model_config(args.run_dir, args.model, args.style),
        device=args.device, dtype=args.dtype, batch_size=args.batch_size,
    )
    check_layer_range(layers, reader)
    saes = load_folders(folders, device=reader.device, dtype=args.sae_dtype, d_model=reader.d_model)
    warn(model_warnings(saes, reader_model_names(reader)))
    return games, reader, saes


@contextmanager
def progress(args, kind: PassKind, model: str, run_dir: Path | None, *, echo: bool = True) -> Iterator:
    """The pass's `PassProgress`: events to --events, else RUN_DIR/events.jsonl (none with
    --no-events, or with neither a run directory nor --events); its run_end says how the pass ended."""
    from harness.commands.console import PassLine
    from sae.progress import PassProgress, finishing

    wanted = not args.no_events and (run_dir is not None or args.events is not None)
    report = PassProgress(run_dir or Path("."), kind, model, events=wanted, file=args.events,
                          display=PassLine(kind) if echo else None)
    with finishing(report):
        yield report


def find_run_dir(path: Path) -> Path | None:
    """The run directory at `path` or up to three folders above it (where a features table lies)."""
    for p in (path, *path.parents[:3]):
        if (p / MANIFEST_FILE).is_file() or (p / GAMES_FILE).is_file():
            return p
    return None


def manifest_config(run_dir: Path | None) -> dict:
    """The run's config as its manifest records it ({} without a readable manifest)."""
    from harness.rundir.manifest import read_manifest

    try:
        manifest = None if run_dir is None else read_manifest(run_dir)
    except RunDirError:
        return {}
    return manifest.config if manifest is not None else {}


def resolve_inputs(args) -> tuple[Path | None, Path]:
    """(run dir or None, features table) from RUN_DIR_OR_FEATURES and --features."""
    target: Path = args.target
    if target.is_file():
        return find_run_dir(target.parent), args.features or target
    if not target.is_dir():
        raise ConfigError(f"{target}: neither a run directory nor a features table")
    return target, args.features or sae_pass_dir(target, "features") / FEATURES_TABLE


def selected(args, table_path: Path):
    """The features the flags pick from the table (with --causal: only those it classed safe or
    risky); ConfigError when none is left."""
    from sae.patching.stats import parse_ids, read_feature_table, select_features
    from sae.spec import parse_layers

    table = read_feature_table(table_path)
    chosen = select_features(
        table, top=args.top, layers=parse_layers(args.layers) if args.layers else None,
        ids=parse_ids(args.ids) if args.ids else None, include_all=args.all_features,
    )
    if getattr(args, "causal", None):
        import pandas as pd

        causal = pd.read_parquet(args.causal)
        causal = causal[causal["classification"].isin(["safe", "risky"])][
            ["layer", "feature", "classification"]
        ]
        chosen = chosen.merge(causal, on=["layer", "feature"], how="inner")
    if chosen.empty:
        raise ConfigError(
            f"{table_path}: no feature selected (none significant? try --all-features or --ids)"
        )
    return chosen
