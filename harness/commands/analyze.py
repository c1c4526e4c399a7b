"""`harness analyze RUN_DIR [RUN_DIR ...]`: the paper's behavioural measurements for one run or
several side by side. Only argparse is imported here; pandas and matplotlib load when it runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import ConfigError
from harness.rundir.files import GAMES_FILE, REPORT_FILE, TABLES_DIR


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze",
        help=f"behavioural metrics, tables, figures and {REPORT_FILE} for one or more runs",
        description=(
            f"Compute the docs/protocol.md §2 metrics for each run (one per model) from {GAMES_FILE}: "
            "per-game indices, "
            "per-condition and per-run rates and means with bootstrap 95% intervals, index-bankruptcy "
            f"correlation, component effects, streak chasing. Writes {REPORT_FILE}, figures/*.png and "
            "tables/*.csv|parquet. A run still in progress can be analysed."
        ),
    )
    p.add_argument(
        "run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help=f"run directories (or {GAMES_FILE} files)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default: RUN_DIR/analysis for one run, ./analysis for several)",
    )
    p.add_argument(
        "--exclude-guessed",
        action="store_true",
        help="leave out games with a guessed round: read by fallback, decided by the constrained step "
        "(extracted) or left unparsed (default: included, counted)",
    )
    p.add_argument(
        "--include-invalid",
        action="store_true",
        help="use games that ended 'invalid' (default: excluded, counted)",
    )
    p.add_argument(
        "--bootstrap", type=int, default=1000, metavar="B", help="bootstrap resamples (default 1000)"
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.set_defaults(func=run, validate=validate)


def validate(args: argparse.Namespace) -> None:
    if args.bootstrap < 10:
        raise ConfigError(f"--bootstrap: needs at least 10 resamples, got {args.bootstrap}")


def run(args: argparse.Namespace) -> int:
    from harness.analysis.pipeline import run_analysis
    from harness.analysis.stats import Boot
    from harness.analysis.tables import Exclusion

    for d in args.run_dirs:
        if not d.exists():
            raise ConfigError(f"{d}: no such run directory")
    first = args.run_dirs[0] if args.run_dirs[0].is_dir() else args.run_dirs[0].parent
    out = args.out or (first / "analysis" if len(args.run_dirs) == 1 else Path("analysis"))
    report = run_analysis(
        list(args.run_dirs),
        out,
        Exclusion(invalid=not args.include_invalid, guessed=args.exclude_guessed),
        Boot(resamples=args.bootstrap, seed=args.seed),
        figures=not args.no_figures,
    )
    print(f"wrote {report} (tables in {out / TABLES_DIR}, figures in {out / 'figures'})")
    return 0
