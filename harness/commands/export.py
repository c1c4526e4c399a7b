"""`harness export inspect RUN --out FILE.eval`: a run as an Inspect eval log."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from harness.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    parent = sub.add_parser("export", help="Write a run in another tool's format.",
                            description="Write a run in another tool's format.")
    what = parent.add_subparsers(dest="what", metavar="FORMAT", required=True)
    p = what.add_parser(
        "inspect",
        help="An Inspect eval log (inspect view, read_eval_log, samples_df).",
        description="Write RUN as an Inspect eval log with inspect_ai's own log API: one sample per game "
        "(the conversation as messages, outcome and metrics as scores, condition, seeds and parse kinds as "
        "metadata). Open it with `inspect view --log-dir DIR`. Needs the `inspect` extra "
        "(pip install 'gamble-harness[inspect]').",
    )
    p.add_argument("run", type=Path, metavar="RUN", help="A run directory.")
    p.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="The log file: FILE.eval (Inspect's format) or FILE.json.")
    p.set_defaults(func=run, validate=validate)


def validate(args: argparse.Namespace) -> None:
    if args.out.suffix not in (".eval", ".json"):
        raise ConfigError(f"--out: {args.out} must end in .eval or .json (Inspect's two log formats)")


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("inspect_ai") is None:
        raise ConfigError("harness export inspect needs inspect_ai: pip install 'gamble-harness[inspect]'")
    from harness.export.inspect_log import write_inspect_log

    path, n = write_inspect_log(args.run, args.out)
    print(f"{path}: {n} samples (one per game); open with `inspect view --log-dir {path.parent}`")
    return 0
