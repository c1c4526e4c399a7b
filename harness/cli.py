"""`harness` command line. Each command lives in its own module (`register`, `run`, optionally
`validate`: `harness.commands.registry.Command`), found through `harness.commands.registry`; modules
import only light things at top level so `harness --help` is instant.

A `HarnessError` is printed as one line (`harness: error: ...`) with its exit code, and so is
an error of the machine rather than of the code (`OSError`: a permission, a full disk, a directory
where a file belongs; a file that is not UTF-8): exit 2, or 1 for a full disk. Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from harness.commands.registry import register_all
from harness.errors import HarnessError
from harness.rundir.fileops import NO_SPACE


class Parser(argparse.ArgumentParser):
    """argparse without abbreviations: `--ou` is not `--out`. Every sub-parser is one of these
    (`add_subparsers` makes its parsers of the parent's class), so a study's option key is read
    as exactly the flag it names."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    except (OSError, UnicodeDecodeError) as e:
        print(f"harness: error: {_environment_error(e)}", file=sys.stderr)
        return 1 if isinstance(e, OSError) and e.errno in NO_SPACE else 2
    except KeyboardInterrupt:
        print(
            "harness: interrupted; completed work is saved, rerun the same command to resume", file=sys.stderr
        )
        return _exit_interrupted()


def _environment_error(e: OSError | UnicodeDecodeError) -> str:
    """`PATH: strerror` (what the OS said about which file), in one line."""
    if isinstance(e, UnicodeDecodeError):
        return f"a file is not UTF-8 text (byte {e.start}: {e.reason})"
    if e.errno in NO_SPACE:
        return f"no space left on device writing {e.filename}" if e.filename else "no space left on device"
    where = f"{e.filename} -> {e.filename2}" if e.filename2 else e.filename
    return f"{where}: {e.strerror or e}" if where else str(e.strerror or e)


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
