"""`harness status DIR [--json] [--stall-minutes M]`: the status report of a study or a run.

Writes DIR/status.md and DIR/status.json and prints one of them. Only argparse at import time; the
report's modules (pandas for the headline results) load when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import ConfigError
from harness.rundir.files import STATUS_JSON, STATUS_MD


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="Status report of a study or run directory: state, progress, ETA, errors, results.",
        description="Read a study directory (or a single run directory, its games and SAE passes) and "
        f"print its report (it writes nothing there; --out writes {STATUS_MD} and {STATUS_JSON} into "
        "another directory): a summary table (experiment, state, progress, "
        "device, GPU memory, ETA, note), then per experiment its command, folder, log, outputs, last error, "
        "diagnoses and headline results. States: not started, running, complete, stalled, failed, "
        "interrupted. See docs/status.md.",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="A study directory or a run directory.")
    p.add_argument("--json", action="store_true", help=f"Print {STATUS_JSON} instead of the Markdown.")
    p.add_argument("--out", type=Path, metavar="OUT",
                   help=f"Also write {STATUS_MD} and {STATUS_JSON} into OUT (made if missing).")
    p.add_argument(
        "--stall-minutes", type=float, metavar="M",
        help="Stalled: no event for M minutes while the process lives (default: the study file's "
        "stall_minutes, 10 for a run directory).",
    )
    p.set_defaults(func=run, validate=validate)


def validate(args: argparse.Namespace) -> None:
    if args.stall_minutes is not None and not args.stall_minutes > 0:
        raise ConfigError(f"--stall-minutes: must be > 0, got {args.stall_minutes}")


def run(args: argparse.Namespace) -> int:
    from harness.status.build import build_status, write_status
    from harness.status.render import render

    if args.out is not None:
        write_status(args.dir, stall_minutes=args.stall_minutes, out=args.out)
    status = build_status(args.dir, stall_minutes=args.stall_minutes)
    print(status.model_dump_json(indent=2) if args.json else render(status), end="\n" if args.json else "")
    return 0
