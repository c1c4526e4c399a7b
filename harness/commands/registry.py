"""Where `harness` finds its commands, and the shape every command module has.

The modules this distribution ships come first, then any module another installed package declares
in the `harness.commands` entry-point group. Commands are named by module and imported only when the
parser is built, so `harness` imports nothing from `sae` or `tui` (they depend on `harness`, never
the reverse); each module keeps its heavy imports inside `run` so that `harness --help` stays
instant. A command module is a `Command` (below).

A third-party package adds a command with, in its pyproject.toml:

    [project.entry-points."harness.commands"]
    mycommand = "mypackage.command"
"""

from __future__ import annotations

import argparse
import importlib
from importlib.metadata import entry_points
from types import ModuleType
from typing import Protocol


class Command(Protocol):
    """A command module, as vLLM's `CLISubcommand` (`harness.commands.status` is a short example).

    `register(subparsers)` adds the command's parser and binds it with
    `parser.set_defaults(func=run, validate=validate)`. The CLI calls `validate(args)` first, when
    the module has one: the checks of the flags alone (a number out of range, two flags that
    exclude each other), which must fail before anything is read or a model loads; it raises a
    `HarnessError` and returns nothing. Then `run(args)` does the work and returns the exit code: it
    turns the flags into arguments, calls one domain function (which never prints) and prints
    what it returns. A group of commands (`harness sae`, `sae/commands/__init__.py`) registers a
    parent parser and then each of its modules' `register` under it.
    """

    def register(self, subparsers: argparse._SubParsersAction) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


#: The entry-point group other packages use to add commands.
GROUP = "harness.commands"

#: Command modules of this distribution, in the order `harness --help` lists them.
BUILTIN = (
    "harness.commands.run",
    "harness.commands.study",
    "harness.commands.schema",
    "harness.commands.status",
    "harness.commands.analyze",
    "harness.commands.show",
    "harness.commands.export",
    "sae.commands",
    "tui.command",
)


def command_modules() -> list[str]:
    """The built-in command modules, then the entry points' modules not already among them."""
    names = list(BUILTIN)
    for point in entry_points(group=GROUP):
        if point.module not in names:
            names.append(point.module)
    return names


def _load(name: str) -> ModuleType | None:
    """The module, or None when its package is not installed (a partial source checkout)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and name.startswith(e.name):
            return None
        raise


def register_all(subparsers: argparse._SubParsersAction) -> None:
    """Add every command found to `subparsers`."""
    for name in command_modules():
        module = _load(name)
        if module is not None:
            module.register(subparsers)
