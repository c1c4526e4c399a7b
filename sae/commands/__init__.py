"""`harness sae ...`: SAE analysis of a finished run, one module per sub-command.

Each module in `SUBCOMMANDS` adds its parser with `register(sub)`; a new sub-command is one module
and one name in that list. Heavy imports (torch, transformers) happen inside the `run` functions only.
"""

from __future__ import annotations

import importlib

#: `harness sae` sub-commands, in the order `harness sae --help` lists them: modules of this package.
SUBCOMMANDS = ("features", "pathway", "convert", "patch", "words", "train")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sae", help="SAE analysis of a run: features, pathway, patch, words, convert, train."
    )
    sub = parser.add_subparsers(dest="sae_command", metavar="SAE_COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
