"""`harness sae features` / `pathway` on the lead's demo run (a real SmolLM2 run, base-style prompts)."""

import pandas as pd
import pytest

from harness.cli import main
from sae.games import group_of, read_games
from tests.sae.builders import write_layer_saes

pytestmark = pytest.mark.model


def test_features_and_pathway_on_demo_run(demo_run, tmp_path, capsys):
    demo = demo_run
    games = read_games(demo)
    counts = {grp: sum(group_of(g) == grp for g in games) for grp in ("bankrupt", "stopped")}
    spec = write_layer_saes(tmp_path / "saes", "saelens", [1, 3], 576, 64)
    args = ["--sae", spec, "--layers", "1,3", "--device", "cpu", "--batch-size", "8", "--no-events"]
    rc = main(["sae", "features", str(demo), *args, "--out", str(tmp_path / "f")])
    if min(counts.values()) >= 2:
        assert rc == 0
        table = pd.read_parquet(tmp_path / "f" / "features.parquet")
        assert set(table["layer"]) <= {1, 3} and len(table) > 0
        assert (table["neuronpedia"] == "").all()  # a local SAE folder: no Neuronpedia page
        png = (tmp_path / "f" / "features_effects.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    else:  # too few games in a group for a t-test: a clear one-line error, nothing written
        assert rc == 2 and "need at least 2 bankrupt and 2 voluntarily stopped" in capsys.readouterr().err
    rc = main(["sae", "pathway", str(demo), *args, "--games", "6", "--out", str(tmp_path / "p")])
    assert rc == 0
    index = pd.read_parquet(tmp_path / "p" / "shards" / "index.parquet")
    assert len(index) > 0 and set(index["layer"]) == {1, 3}
    if min(counts.values()) >= 2:
        assert (tmp_path / "p" / "pathway_layers.csv").is_file()
        cells = pd.read_parquet(tmp_path / "p" / "pathway_feature_rounds.parquet")
        top = pd.read_parquet(tmp_path / "p" / "pathway_top_features.parquet")
        assert set(cells["feature"]) <= set(top["feature"]) and set(cells["group"]) <= {"bankrupt", "stopped"}
        assert "neuronpedia" in top
        png = (tmp_path / "p" / "pathway_heatmap.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
