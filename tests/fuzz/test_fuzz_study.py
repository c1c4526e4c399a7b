"""Generated study files through `load_study` and `plan_study` (what `harness study run` does before
anything runs): each is refused with one ConfigError line, or planned so that every experiment
writes its own folder of the study directory, whatever its options say."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from harness.cli import build_parser
from harness.errors import HarnessError
from harness.study.config import load_study
from harness.study.plan import plan_study
from tests.fuzz.strategies import scalars, to_toml, toml_value

#: Real flags, their abbreviations, the study's own flags in every spelling, and noise.
KEYS = [
    "top", "trials", "bootstrap", "no-figures", "no_figures", "layers", "games", "reps", "quiet",
    "ou", "o", "out", "OUT", "out=/elsewhere", "-o", "--out", "conf", "config", "config=x.toml", "dev",
    "device", "events", "ev", "sae", "features", "gpus", "ray", "", " ", "-", "=", "out ", "top=3",
]
TEXTS = ["/elsewhere", "--out=/elsewhere", "--out", "-o", "-1", "1e3", "3", "15", "10-12", "x.toml", ""]
option_values = st.one_of(scalars, st.sampled_from(TEXTS), st.lists(st.sampled_from(TEXTS), max_size=2),
                          st.lists(st.integers(-3, 40), max_size=3))
options = st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), option_values, max_size=3)
KINDS = ["games", "analyze", "sae-features", "sae-train"]


def _study(games_opts: dict, other_kind: str, other_opts: dict) -> str:
    other = {"analyze": 'runs = ["games"]', "sae-features": 'run = "games"\nsae = "saes/L{layer}"',
             "sae-train": 'run = "games"', "games": 'config = "run.toml"'}[other_kind]
    inline = lambda o: toml_value(o) if o else "{}"  # noqa: E731
    return (f'name = "s"\n[[experiment]]\nname = "games"\nkind = "games"\nconfig = "run.toml"\n'
            f"options = {inline(games_opts)}\n[[experiment]]\nname = \"other\"\nkind = \"{other_kind}\"\n"
            f"{other}\noptions = {inline(other_opts)}\n")


def _plan(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.toml"
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        root = Path(tmp) / "out"
        try:
            study = load_study(path)
            argvs = plan_study(study, root)
        except HarnessError as e:
            assert "\n" not in str(e) and str(e), str(e)
            return
        parser = build_parser()
        for name, argv in argvs.items():
            args = parser.parse_args(argv)
            assert Path(args.out) == root / name, (name, argv)  # nothing written outside its folder
            if getattr(args, "config", None) is not None:
                assert Path(args.config) == path.parent.resolve() / "run.toml", argv
            if getattr(args, "events", None) is not None:
                assert Path(args.events).parent == root / name, argv


@given(options, st.sampled_from(KINDS), options)
@example({}, "games", {"0\n": -9223372036854775809})  # a key with a newline: the flag is quoted too
def test_generated_study_options(games_opts, other_kind, other_opts):
    _plan(_study(games_opts, other_kind, other_opts))


@given(st.dictionaries(st.sampled_from(["name", "out", "stall_minutes", "experiment", "x"]), scalars,
                       max_size=3))
def test_generated_study_tables(top):
    _plan(to_toml(top) + _study({}, "analyze", {}).split("\n", 1)[1])


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_any_bytes_as_study(raw):
    _plan(raw)
