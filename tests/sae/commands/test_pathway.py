"""`harness sae pathway` end to end on the real SmolLM2 and hand-built games."""

import json

import pandas as pd
import pytest

from harness.cli import main
from sae.games import decision_rounds, read_games
from tests.sae.builders import random_weights, write_gemmascope

pytestmark = pytest.mark.model


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
