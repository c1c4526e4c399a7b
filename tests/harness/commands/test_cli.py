"""The CLI: bad input gives one clear line, exit 2, and nothing written; the scripted path end to end."""

import json
import subprocess
import sys

import pytest

from harness.cli import main
from harness.records import EVENT_ADAPTER, GAME_ADAPTER, json_schemas


def run_cli(args, capsys):
    code = main(args)
    err = capsys.readouterr().err
    return code, err


EMBEDDED = '[model]\nname = "x"\npath = "embedded:smollm2-135m-instruct"\n'


@pytest.mark.parametrize(
    "toml,needle",
    [
        (EMBEDDED + "[game]\nwin_probability = 2\n", "game.win_probability"),
        (EMBEDDED + '[backend]\nkind = "tgi"\n',
         "backend.kind: Input should be 'transformers', 'vllm', 'openai', 'scripted' or 'auto'"),
        (EMBEDDED + "colour = 1\n", "colour: unknown field"),
        ('[model]\nname = "x"\npath = "/nonexistent/model"\n',
         "model.path: '/nonexistent/model' is not a local directory"),
        (EMBEDDED + '[conditions]\nids = ["fixed-Q-GMP"]\n', "first result 'Q' not one of W, L, none"),
        ('[model]\nname = "x"\n', "model.path: Field required"),
        ("not toml = = =", "not valid TOML"),
    ],
)
def test_bad_config_is_one_line_exit_2_nothing_written(tmp_path, capsys, toml, needle):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    out = tmp_path / "run"
    code, err = run_cli(["run", "games", "--config", str(cfg), "--out", str(out), "--quiet"], capsys)
    assert code == 2
    assert needle in err and str(cfg) in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_unknown_condition_flag(tmp_path, capsys):
    args = ["run", "games", "--conditions", "fixed-W-GMXP", "--out", str(tmp_path / "r"),
            "--backend", "scripted"]
    code, err = run_cli(args, capsys)
    assert code == 2 and "command-line flags" in err and "allowed letters: G M H W P" in err
    assert not (tmp_path / "r").exists()


def test_missing_config_file(tmp_path, capsys):
    code, err = run_cli(["run", "games", "--config", str(tmp_path / "nope.toml")], capsys)
    assert code == 2 and "config file not found" in err


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "harness", "run", "games", "--conditions", "bogus",
         "--out", str(tmp_path / "r")],
        capture_output=True, text=True,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("harness: error:")


SCRIPTED = """
seed = 3
repetitions = 3
[model]
name = "scripted"
path = "unused"
[conditions]
ids = ["fixed-W-GMP", "variable-L-BASE"]
[backend]
kind = "scripted"
script = ["", "Thinking...\\nFinal Decision: Bet $30", "Final Decision: Stop", "Final Decision: Bet $10"]
"""


def test_scripted_run_writes_valid_files_and_resumes(tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text(SCRIPTED)
    out = tmp_path / "run"
    assert main(["run", "games", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    lines = (out / "games.jsonl").read_text().splitlines()
    games = [GAME_ADAPTER.validate_json(x) for x in lines]
    assert len(games) == 6 == len({g.game_id for g in games})
    events = [EVENT_ADAPTER.validate_json(x) for x in (out / "events.jsonl").read_text().splitlines()]
    types = [e.type for e in events]
    assert types[0] == "run_start" and types[-1] == "run_end" and types.count("game_done") == 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["config"]["backend"]["kind"] == "scripted"
    assert "versions" in manifest
    assert "6/6 games" in capsys.readouterr().out
    # rerun: nothing to do; more repetitions: only the new games
    assert main(["run", "games", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert "already complete" in capsys.readouterr().out
    assert main(["run", "games", "--config", str(cfg), "--out", str(out), "--reps", "4", "--quiet"]) == 0
    after = (out / "games.jsonl").read_text().splitlines()
    assert after[:6] == lines and len(after) == 8
    # a different seed on the same directory is refused
    assert main(["run", "games", "--config", str(cfg), "--out", str(out), "--seed", "4", "--quiet"]) == 2


def test_published_schemas_are_current():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[3] / "docs" / "schemas"
    for name, schema in json_schemas().items():
        refresh = f"run `harness schema` to refresh docs/schemas/{name}"
        assert json.loads((docs / name).read_text()) == schema, refresh


def test_help_is_fast_and_lists_commands():
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "harness", "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "run" in r.stdout
    assert "torch" not in r.stderr.split("harness.cli")[0] or "import time: " in r.stderr
    engines = (" torch", " transformers", " vllm")
    heavy = [line for line in r.stderr.splitlines() if line.rstrip().endswith(engines)]
    assert heavy == [], "harness --help must not import heavy engines"
