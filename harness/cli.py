"""`harness` command line. Each command lives in its own module (`register`, `run`, optionally
`validate`: `harness.commands.registry.Command`), found through `harness.commands.registry`; modules
import only light things at top level so `harness --help` is instant.

A `HarnessError` is printed as one line (`harness: error: ...`) with its exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys

from harness.commands.registry import register_all
from harness.errors import HarnessError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Slot-machine gambling experiments on LLMs, and SAE analysis of the models that play "
        "them.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register_all(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        validate = getattr(args, "validate", None)
        if validate is not None:
            validate(args)  # the flags' own checks, before anything is read or loaded
        return int(args.func(args) or 0)
    except HarnessError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(
            "harness: interrupted; completed work is saved, rerun the same command to resume", file=sys.stderr
        )
        return _exit_interrupted()


def _exit_interrupted() -> int:
    """130. When another thread is still busy (a model's forward pass that Ctrl-C does not cut
    short), exit at once: Python's shutdown would wait for it, or abort in native code. The
    run's files are complete by now (run_end written, torn lines repaired on resume)."""
    import os
    import threading

    if threading.active_count() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    return 130


if __name__ == "__main__":
    sys.exit(main())
