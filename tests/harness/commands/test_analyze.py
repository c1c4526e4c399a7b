"""`harness analyze` end to end: hand-built runs side by side, a run in progress, and a real run of
the embedded model (the `demo_run` fixture)."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from harness.analysis.results import FIGURES, TABLES
from harness.cli import main
from harness.game.conditions import grid
from tests.helpers import make_game, write_games

SECTIONS = [
    "## Runs and completeness",
    "## Summary per run and bet type",
    "## Published figures beside this run",
    "## Index vs bankruptcy across conditions",
    "## Prompt components: with vs without",
    "## Number of prompt components",
    "## Fixed vs variable betting",
    "## First result: W vs L",
    "## Streak chasing",
    "## Clamped bets",
    "## Figures",
    "## Machine-readable tables",
    "# Appendix",
    "## Appendix A. How decisions were read, per condition",
    "## Appendix B. Per condition",
]


def _random_run(path, model, seed, n_conditions=24, reps=3):
    rng = random.Random(seed)
    games = []
    conditions = grid("128")
    for cond in rng.sample(conditions, n_conditions):
        for rep in range(reps):
            bets, balance = [(10, cond.first_result == "W")], 100
            balance += 20 if bets[0][1] else -10
            for _ in range(rng.randint(0, 6)):
                bet = min(balance, rng.choice([5, 10, 25, 60]) if cond.bet_type == "variable" else 10)
                win = rng.random() < 0.3
                bets.append((bet, win))
                balance += 2 * bet if win else -bet
                if balance <= 0:
                    break
            games.append(make_game(bets, condition=cond.id, repetition=rep, forced_first=True, model=model))
    return write_games(path, games), len(games)


def _check_output(out, runs: int) -> str:
    report = (out / "report.md").read_text()
    at = [report.index(section) for section in SECTIONS]  # every section, in this order
    assert at == sorted(at)
    for name in FIGURES:
        if name == "bankruptcy_by_model" and runs == 1:  # drawn when runs are compared
            assert not (out / "figures" / f"{name}.png").exists()
            continue
        png = out / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"figures/{name}.png" in report
    for name in TABLES:
        assert (out / "tables" / f"{name}.csv").exists()
        df = pd.read_parquet(out / "tables" / f"{name}.parquet")
        if name in ("runs", "conditions", "completeness", "games", "rounds"):
            assert df["run"].nunique() == runs, name
    games, rounds = (pd.read_parquet(out / "tables" / f"{n}.parquet") for n in ("games", "rounds"))
    per_game = rounds.groupby(["run", "game_id"]).size()
    assert len(per_game) == len(games)
    bets = rounds[rounds["bet"] >= 0].groupby(["run", "game_id"])["bet"].sum()
    assert (bets.reindex(games.set_index(["run", "game_id"]).index).fillna(0).to_numpy()
            == games["total_bet"].to_numpy()).all()
    assert rounds["after_loss"].sum() == ((rounds["win"].shift(1) == 0)
                                          & (rounds["game_id"].shift(1) == rounds["game_id"])).sum()
    assert "`invalid` or `no_decision` are excluded" in report  # the default is stated
    assert "**Decision mode:**" in report
    return report


def test_two_runs_side_by_side_one_in_progress(tmp_path, capsys):
    llama, n_llama = _random_run(tmp_path / "llama", "Meta-Llama-3.1-8B-Instruct", 1)
    gemma, n_gemma = _random_run(tmp_path / "gemma", "gemma-2-9b-it", 2)
    manifest = {"run_id": "g", "games_total": 2 * n_gemma}
    (gemma / "manifest.json").write_text(json.dumps(manifest))
    with open(gemma / "games.jsonl", "a") as f:
        f.write('{"type": "game", "game_id": "torn')
    out = tmp_path / "analysis"
    assert main(["analyze", str(llama), str(gemma), "--out", str(out), "--bootstrap", "200"]) == 0
    assert "report.md" in capsys.readouterr().out
    report = _check_output(out, runs=2)
    assert "published **LLaMA-3.1-8B**" in report and "published **Gemma-2-9B**" in report
    assert "gemma-2-9b-it: run incomplete** (72 of 144 games, 50.0 %)" in report
    completeness = pd.read_csv(out / "tables" / "completeness.csv").set_index("run")
    assert completeness.loc["gemma-2-9b-it", "torn_lines"] == 1
    assert completeness.loc["Meta-Llama-3.1-8B-Instruct", "games_read"] == n_llama


def test_exclude_guessed_flag(tmp_path):
    games = [make_game([(10, True)], repetition=i) for i in range(4)]
    games[0].rounds[0].parse_kind = "fallback"
    run = write_games(tmp_path / "run", games)
    assert main(["analyze", str(run), "--exclude-guessed", "--no-figures", "--bootstrap", "50"]) == 0
    runs = pd.read_csv(run / "analysis" / "tables" / "runs.csv")
    assert (runs.loc[0, "n_games"], runs.loc[0, "n_guessed"]) == (3, 1)
    assert "guessed parse" in (run / "analysis" / "report.md").read_text()


def test_missing_run_dir_is_one_line_error(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: error:") and "nope" in err and "\n" not in err


def test_analyze_real_embedded_model_run(demo_run, tmp_path):
    out = tmp_path / "analysis"
    assert main(["analyze", str(demo_run), "--out", str(out), "--bootstrap", "200"]) == 0
    _check_output(out, runs=1)
    lines = [ln for ln in (demo_run / "games.jsonl").read_text().splitlines() if ln.strip()]
    games = pd.read_parquet(out / "tables" / "games.parquet")
    assert len(games) == len(lines)
    assert games["index"].between(0, 1).all() and games["i_ba"].between(0, 1).all()
    assert (games["n_bets"] <= games["n_rounds"]).all()


def test_lines_of_a_newer_version_read_or_refused(tmp_path, capsys):
    """Newer minor lines with unknown fields are read on the fast path; one line of a newer major
    version refuses the run with one line naming the file, even when arrow could parse it."""
    run = write_games(tmp_path / "run", [make_game([(10, True)], repetition=i) for i in range(4)])
    path = run / "games.jsonl"
    newer = {"added_later": 1, "schema_version": "2.7"}
    lines = [json.loads(line) | newer for line in path.read_text().splitlines()]
    lines[1]["rounds"][0]["prompt"] = 'a prompt quoting "schema_version": "9.0"'  # text, not a version
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert main(["analyze", str(run), "--no-figures", "--bootstrap", "50"]) == 0
    assert pd.read_csv(run / "analysis" / "tables" / "runs.csv").loc[0, "n_games"] == 4

    lines[2]["schema_version"] = "3.0"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    capsys.readouterr()
    assert main(["analyze", str(run), "--no-figures", "--bootstrap", "50"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(path) in err and "schema version 3.0" in err and "\n" not in err


def test_extracted_rounds_count_as_guessed(tmp_path):
    games = [make_game([(10, True)], repetition=i) for i in range(4)]
    games[1].rounds[-1].parse_kind = "extracted"  # the constrained step decided the stop
    run = write_games(tmp_path / "run", games)
    assert main(["analyze", str(run), "--no-figures", "--bootstrap", "50"]) == 0
    assert pd.read_csv(run / "analysis" / "tables" / "runs.csv").loc[0, "n_guessed"] == 1
    assert main(["analyze", str(run), "--exclude-guessed", "--no-figures", "--bootstrap", "50"]) == 0
    runs = pd.read_csv(run / "analysis" / "tables" / "runs.csv")
    assert (runs.loc[0, "n_games"], runs.loc[0, "n_guessed"]) == (3, 1)
    assert "(`extracted`)" in (run / "analysis" / "report.md").read_text()


def _clamped_game(requested: list[int], *, condition="variable-none-BASE", repetition=0):
    """Bets as written; the played amount is clamped to [5, balance] as the rules do. Every bet loses."""
    bets, balance = [], 100
    for want in requested:
        bet = max(0, min(max(want, 5), balance))
        bets.append((bet, False))
        balance -= bet
        if balance <= 0:
            break
    game = make_game(bets, condition=condition, repetition=repetition)
    for r, want in zip(game.rounds, requested, strict=False):
        if r.bet is not None:
            r.requested_bet = want
    return game


def test_clamped_bets_per_run_bet_type_and_condition(tmp_path):
    games = [
        _clamped_game([30, 200], repetition=0),  # 200 cut to the 70 left: bankrupt on a cut bet
        _clamped_game([2, 10], repetition=1),  # 2 raised to 5
        _clamped_game([50, 50], repetition=2),  # exactly the balance at the end: all-in, not clamped
        _clamped_game([40], condition="variable-none-GM"),
        _clamped_game([500], condition="fixed-none-BASE"),  # a fixed bet is $10 whatever is written
    ]
    run = write_games(tmp_path / "run", games)
    assert main(["analyze", str(run), "--no-figures", "--bootstrap", "50"]) == 0
    tables = run / "analysis" / "tables"
    runs = pd.read_csv(tables / "runs.csv").set_index("scope")
    variable = runs.loc["variable"]
    assert (variable["n_requested"], variable["n_clamped_over"], variable["n_clamped_under"]) == (7, 1, 1)
    assert variable["clamped_share"] == pytest.approx(2 / 7) and variable["n_bankrupt_last_clamped"] == 1
    assert variable["n_bankrupt_last_all_in"] == 2  # the cut 200 and the written 50 of the last $50
    assert runs.loc["fixed", "n_requested"] == 0
    cond = pd.read_csv(tables / "conditions.csv").set_index("condition")
    assert cond.loc["variable-none-BASE", "n_clamped_over"] == 1
    assert cond.loc["variable-none-GM", "n_requested"] == 1
    report = (run / "analysis" / "report.md").read_text()
    assert "## Clamped bets" in report and "| 29 % (2/7) | 2 | 2 | 1 |" in report
