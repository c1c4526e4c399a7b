"""`python -m tui RUN_DIR ...`: the same as `harness monitor RUN_DIR ...`."""

from __future__ import annotations

import argparse
import sys

from harness.errors import HarnessError
from tui.command import add_arguments, run, validate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tui", description="Live terminal monitor of runs.", allow_abbrev=False
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        validate(args)
        return run(args)
    except HarnessError as e:
        print(f"tui: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
