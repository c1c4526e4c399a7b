"""`harness sae words` end to end on the demo run of the real SmolLM2."""

import json

import pandas as pd
import pytest

from harness.cli import main
from sae.games import read_games
from tests.sae.builders import write_layer_saes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.model
def test_words_cli_on_demo_run(demo_run, tmp_path):
    games = read_games(demo_run)
    assert games
    table = pd.DataFrame({"layer": [1, 1, 3], "feature": [2, 5, 9], "mean_bankrupt": [0.0] * 3,
                          "mean_stopped": [0.0] * 3, "d": [0.4, -0.6, 0.1],
                          "direction": ["risky", "safe", "risky"], "significant": [True, True, False]})
    table.to_parquet(tmp_path / "features.parquet", index=False)
    spec = write_layer_saes(tmp_path / "saes", "gemmascope", [1, 3], 576, 32)
    out = tmp_path / "w"
    rc = main(["sae", "words", str(demo_run), "--features", str(tmp_path / "features.parquet"), "--sae", spec,
               "--device", "cpu", "--out", str(out), "--k-tokens", "5", "--no-events"])  # demo_run is shared
    assert rc == 0
    words = pd.read_parquet(out / "words.parquet")
    assert words[["layer", "feature"]].values.tolist() == [[1, 5], [1, 2]]  # significant only, by |d|
    assert (words["n_high"] + words["n_low"] == len(games)).all()
    assert all(len(s.split(", ")) == 5 for s in words["promotes"])
    report = (out / "words_report.md").read_text()
    assert report.startswith("# Feature words") and "## Layer 1, feature 5" in report
    meta = json.loads((out / "words_meta.json").read_text())
    assert sum(meta["games_dropped"].values()) + meta["n_bankrupt"] + meta["n_stopped"] == len(games)
    assert meta["warnings"] == []
