"""`harness monitor RUN_DIR [RUN_DIR ...]` or `harness monitor STUDY_DIR`: watch runs live. Textual
is imported only when the command runs, so `harness --help` stays instant."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import ConfigError
from harness.rundir.files import EVENTS_FILE, STUDY_FILE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The monitor's arguments (shared by `harness monitor` and `python -m tui`)."""
    parser.add_argument(
        "runs", nargs="+", type=Path, metavar="RUN_DIR",
        help=f"run directories (or {EVENTS_FILE} files, waited for in a directory that exists); or one "
        f"study directory (with {STUDY_FILE}): one panel per experiment",
    )
    parser.add_argument(
        "--stall-after", type=float, default=None, metavar="SECONDS",
        help="warn when a running worker has written no event for this long (default: 120, or the study "
        "file's stall_minutes)",
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS",
        help="how often to read the files (default: 1)",
    )


def validate(args: argparse.Namespace) -> None:
    if args.stall_after is not None and args.stall_after <= 0:
        raise ConfigError(f"--stall-after must be > 0 seconds, got {args.stall_after}")
    if args.interval <= 0:
        raise ConfigError(f"--interval must be > 0 seconds, got {args.interval}")


def run(args: argparse.Namespace) -> int:
    """Open the app until the user quits."""
    from harness.study.layout import StudyDir

    studies = [r for r in args.runs if StudyDir(r).is_study()]
    if studies and len(args.runs) > 1:
        raise ConfigError(f"{studies[0]}: a study directory is watched alone, not with other directories")
    for run in args.runs:
        if run.exists() and not run.is_dir() and run.suffix != ".jsonl":
            raise ConfigError(f"{run}: not a run directory or a .jsonl event file")
        folder = run.parent if run.suffix == ".jsonl" else run
        if not folder.is_dir():
            raise ConfigError(f"{folder}: no such directory (a misspelt path, or a run not started yet)")
    from tui.app import MonitorApp

    study = studies[0] if studies else None
    app = MonitorApp(args.runs, study=study, stall_after=args.stall_after, interval=args.interval)
    app.run()
    return 2 if app.return_code else 0  # its own crash: Textual has shown the traceback


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="watch runs live: one panel per GPU/worker, or per experiment of a study (reads, never writes)",
        description="Live terminal monitor of runs: progress, rates, ETA, errors and stalls per "
        f"worker, following each RUN_DIR/{EVENTS_FILE} as it grows. On a study directory: one panel per "
        "experiment (state, progress, ETA, note, as `harness status` judges them). Keys: q quit, p pause, "
        "c per-condition view, arrows move, ? help.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run, validate=validate)
