"""Commands come from the registry: the built-in modules, plus entry points of other packages."""

import subprocess
import sys

from harness.cli import main
from harness.commands.registry import BUILTIN, GROUP, command_modules

PLUGIN = '''
def register(subparsers):
    p = subparsers.add_parser("hello", help="a third-party command")
    p.set_defaults(func=lambda args: print("hello from a plugin") or 7)
'''


def test_entry_point_adds_a_command(tmp_path, monkeypatch, capsys):
    (tmp_path / "hello_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "hello_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{GROUP}]\nhello = hello_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    assert command_modules()[: len(BUILTIN)] == list(BUILTIN)
    assert "hello_plugin" in command_modules()
    assert main(["hello"]) == 7
    assert "hello from a plugin" in capsys.readouterr().out


def test_cli_module_imports_neither_sae_nor_tui():
    code = (
        "import sys, harness.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sae', 'tui')))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_building_every_parser_loads_no_backend():
    """`harness --help` builds every command's parser: none may pull in the backends (or pydantic)."""
    code = (
        "import sys; from harness.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('harness.backends', 'pydantic', 'torch') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def _leaves(parser, path=()):
    """(argv prefix, parser) of every command that runs: the parsers without sub-commands."""
    import argparse

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaves(child, (*path, name))


def test_every_command_has_one_shape():
    """Each command is bound to its module's `run` and, when it has one, its module's `validate`."""
    import importlib

    from harness.cli import build_parser

    leaves = dict(_leaves(build_parser()))
    assert {("run", "games"), ("analyze",), ("sae", "patch"), ("sae", "train"), ("monitor",)} <= set(leaves)
    for path, parser in leaves.items():
        run, validate = parser.get_default("func"), parser.get_default("validate")
        module = importlib.import_module(run.__module__)
        assert run.__name__ == "run" and module.run is run, path
        assert validate is None or validate is getattr(module, "validate", None), path
