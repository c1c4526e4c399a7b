"""`harness sae features` and `harness sae pathway` end to end on the real SmolLM2 and hand-built games."""

import json

import pandas as pd
import pytest

from harness.backends.formatter import PromptFormatter
from harness.cli import main
from harness.records import EVENT_ADAPTER
from sae.games import decision_rounds, read_games
from tests.sae.builders import (
    GAME_PLANS,
    played_game,
    random_weights,
    write_gemmascope,
    write_layer_saes,
    write_run,
)

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, smollm2_path):
    formatter = PromptFormatter.from_pretrained(smollm2_path, "chat")
    games = [played_game(formatter, bets, repetition=i) for i, (bets, _) in enumerate(GAME_PLANS)]
    assert [g.outcome for g in games] == [outcome for _, outcome in GAME_PLANS]
    assert games[0].rounds[-1].prompt.startswith("<|im_start|>")
    assert "Current balance: $10\n" in games[0].rounds[-1].prompt
    return write_run(tmp_path_factory.mktemp("run"), games, smollm2_path)


def test_features_cli(run_dir, tmp_path, capsys):
    spec = write_layer_saes(tmp_path / "saes", "llamascope", [2, 5], 576, 128)
    rc = main(["sae", "features", str(run_dir), "--sae", spec, "--layers", "2,5", "--device", "cpu",
               "--batch-size", "4", "--max-p", "0.5"])
    assert rc == 0
    out = run_dir / "sae" / "features"
    table = pd.read_parquet(out / "features.parquet")
    assert set(table["layer"]) == {2, 5} and table["feature"].between(0, 127).all()
    assert table["q"].between(0, 1).all() and set(table["direction"]) <= {"risky", "safe"}
    summary = pd.read_csv(out / "features_summary.csv")
    assert summary["features"].tolist() == [128, 128]
    meta = json.loads((out / "features_meta.json").read_text())
    assert meta["n_bankrupt"] == 3 and meta["n_stopped"] == 3
    assert "significant features" in capsys.readouterr().out
    events = [
        EVENT_ADAPTER.validate_json(line) for line in (run_dir / "events.jsonl").read_text().splitlines()
    ]
    mine = [e for e in events if e.kind == "features"]
    assert [e.type for e in (mine[0], mine[-1])] == ["run_start", "run_end"] and mine[-1].status == "complete"
    assert mine[-1].games_done == 6 and mine[0].model == "test-model"


def test_pathway_cli(run_dir, tmp_path):
    for L in (1, 2, 3):
        write_gemmascope(
            tmp_path / "gs" / f"layer_{L}" / "width_16k" / "average_l0_5", random_weights(576, 64, seed=L)
        )
    out = tmp_path / "pw"
    rc = main(["sae", "pathway", str(run_dir), "--sae", str(tmp_path / "gs"), "--layers", "1-3",
               "--device", "cpu", "--games", "4", "--out", str(out), "--top-k", "5"])
    assert rc == 0
    index = pd.read_parquet(out / "shards" / "index.parquet")
    sample = json.loads((out / "shards" / "meta.json").read_text())["sample"]
    assert sample["seed"] == 0 and sample["per_condition"] == {
        g: {"variable-none-BASE": 2} for g in ("bankrupt", "stopped")
    }
    games = {g.game_id: g for g in read_games(run_dir)}
    decisions = [len(decision_rounds(games[i])) for i in sample["game_ids"]]
    assert len(index) == sum(decisions) * 3  # every decision of the 4 sampled games, 3 layers each
    assert sorted(index.groupby("game_id")["step"].max().tolist()) == sorted(n - 1 for n in decisions)
    layers = pd.read_csv(out / "pathway_layers.csv")
    assert layers["layer"].tolist() == [1, 2, 3]
    steps = pd.read_parquet(out / "pathway_steps.parquet")
    assert set(steps["align"]) == {"round", "to_end"} and set(steps["group"]) == {"bankrupt", "stopped"}
    assert len(pd.read_csv(out / "pathway_top_features.csv")) == 15


def test_bad_spec_is_one_line_error(run_dir, tmp_path, capsys):
    rc = main(["sae", "features", str(run_dir), "--sae", str(tmp_path / "none" / "L{layer}"), "--layers", "2",
               "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "no SAE folder for layer 2" in err


def test_wrong_d_model_is_one_line_error(run_dir, tmp_path, capsys):
    spec = write_layer_saes(tmp_path / "small", "saelens", [2], 64, 32)
    rc = main(["sae", "features", str(run_dir), "--sae", spec, "--layers", "2", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "does not match the model's hidden size 576" in err
