"""`harness run games` through the whole path on the real SmolLM2: files, schemas, balances."""

import json

import jsonschema
import pytest

from harness.cli import main
from harness.records import EVENT_ADAPTER, GAME_ADAPTER, json_schemas

pytestmark = pytest.mark.model


def check_run(out, expected_games):
    schemas = json_schemas()
    lines = (out / "games.jsonl").read_text().splitlines()
    assert len(lines) == expected_games
    games = []
    for line in lines:
        jsonschema.validate(json.loads(line), schemas["game.schema.json"])
        games.append(GAME_ADAPTER.validate_json(line))
    for line in (out / "events.jsonl").read_text().splitlines():
        jsonschema.validate(json.loads(line), schemas["event.schema.json"])
        EVENT_ADAPTER.validate_json(line)
    for g in games:
        balance = 100 if g.condition.first_result is None else g.rounds[0].balance_before
        for r in g.rounds:
            assert r.balance_before == balance
            balance = r.balance_after
            if not r.forced:
                assert r.prompt and r.response is not None and r.seed is not None and r.tokens_in > 0
        assert g.final_balance == balance
        assert (g.outcome == "bankrupt") == (balance == 0)
        if g.outcome == "stopped":
            assert g.rounds[-1].decision == "stop"
        if g.condition.first_result:
            assert g.rounds[0].forced and g.rounds[0].bet == 10
    return games


def test_demo_run_files(demo_run):
    games = check_run(demo_run, 8)
    outcomes = {g.outcome for g in games}
    assert "bankrupt" in outcomes and "stopped" in outcomes
    kinds = {r.parse_kind for g in games for r in g.rounds if not r.forced}
    assert "first_line" in kinds


def test_chat_run_and_resume(tmp_path, smollm2_path, capsys):
    out = tmp_path / "chat"
    args = ["run", "games", "--out", str(out), "--conditions", "variable-W-GMHWP,fixed-none-BASE",
            "--max-new-tokens", "40", "--max-rounds", "2", "--device", "cpu", "--quiet"]
    assert main(args) == 0
    games = check_run(out, 2)
    prompt = games[0].rounds[-1].prompt
    assert prompt.startswith("<|im_start|>system") and prompt.endswith("<|im_start|>assistant\n")
    assert main(args + ["--reps", "2"]) == 0
    again = check_run(out, 4)
    assert [g.model_dump() for g in again[:2]] == [g.model_dump() for g in games]


DECISION = r" ?(?:Bet \$[0-9]{1,4}|Stop)"


def test_constrained_games_on_transformers(tmp_path):
    """Constrained mode on the real model: every answer is a decision, read from the cue."""
    import re

    out = tmp_path / "constrained"
    args = ["run", "games", "--out", str(out), "--conditions", "variable-L-GMP,fixed-W-BASE,variable-none-H",
            "--decision", "constrained", "--max-rounds", "4", "--device", "cpu", "--backend", "transformers",
            "--quiet"]
    assert main(args) == 0
    games = check_run(out, 3)
    asked = [r for g in games for r in g.rounds if not r.forced]
    assert all(re.fullmatch(DECISION, r.response) for r in asked), [r.response for r in asked]
    assert all(r.prompt.endswith("<|im_start|>assistant\nFinal Decision:") for r in asked)
    assert {r.parse_kind for r in asked} == {"final_decision"}
    assert {g.outcome for g in games} <= {"bankrupt", "stopped", "max_rounds"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["game"]["decision"] == "constrained"


def test_cut_answers_go_to_the_constrained_decision_step(tmp_path):
    """Free mode with answers cut at 6 tokens: never read by the fallback, so each round ends in
    the extraction step, which continues the model's own cut answer."""
    out = tmp_path / "extract"
    args = ["run", "games", "--out", str(out), "--conditions", "variable-none-G", "--max-new-tokens", "6",
            "--max-rounds", "2", "--device", "cpu", "--backend", "transformers", "--quiet"]
    assert main(args) == 0
    (game,) = check_run(out, 1)
    for r in game.rounds:
        assert r.finish_reason == "length" and r.parse_kind in ("final_decision", "extracted")
        if r.parse_kind == "extracted":
            assert r.extract_prompt == r.prompt + r.response.rstrip() + "\nFinal Decision:"
            assert r.extract_response.strip() in ("Stop",) or r.extract_response.strip().startswith("Bet $")
    assert any(r.parse_kind == "extracted" for r in game.rounds)
