"""A study's options are read by the command's own parser, exactly: no abbreviation, no `=`, no
flag the study sets itself under any spelling (issue 21: `ou`, `out=/elsewhere`, `o`, `conf`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from harness.cli import build_parser, main
from tests.helpers import write_study


def _study(tmp_path: Path, games: str = "", analyze: str = "") -> Path:
    return write_study(tmp_path, games, analyze)


@pytest.mark.parametrize(("games", "analyze", "says"), [
    ("", 'options = { ou = "/elsewhere" }', "`harness analyze` has no option --ou"),
    ("", 'options = { "out=/elsewhere" = true }', "['out=/elsewhere']: an option key"),
    ('options = { o = "/elsewhere" }', "", "`harness run games` has no option --o"),
    ('options = { conf = "other.toml" }', "", "`harness run games` has no option --conf"),
    ("", 'options = { out = "/elsewhere" }', "options.out: set by the study"),
    ("", 'options = { "--out" = "/elsewhere" }', "an option key is a flag's name"),
    ("", 'options = { "-o" = "/elsewhere" }', "an option key is a flag's name"),
    ('options = { config = "other.toml" }', "", "options.config: set by the study"),
    ('options = { device = "cuda:0" }', "", "options.device: set by the study"),
    ("", 'options = { bootstrap = "--out=/elsewhere" }', "would read as a flag"),
])
def test_each_spelling_of_a_study_flag_is_one_line_exit_2_nothing_written(
    tmp_path, capsys, games, analyze, says
):
    path = _study(tmp_path, games, analyze)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["study", "run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("harness: error: ") and says in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no study directory, nothing elsewhere
    assert not Path("/elsewhere").exists()


def test_every_parser_refuses_abbreviations():
    def walk(parser: argparse.ArgumentParser) -> int:
        assert parser.allow_abbrev is False, parser.prog
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return 1 + sum(walk(p) for a in subs for p in a.choices.values())

    assert walk(build_parser()) > 10


@pytest.mark.parametrize("argv", [
    ["analyze", "r", "--ou", "x"],
    ["run", "games", "--conf", "c.toml"],
    ["status", "--ev", "x"],
])
def test_an_abbreviated_flag_is_not_a_flag(argv, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err
