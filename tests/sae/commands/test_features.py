"""`harness sae features` end to end on the real SmolLM2 and hand-built games."""

import json

import pandas as pd
import pytest

from harness.cli import main
from harness.records import EVENT_ADAPTER
from tests.sae.builders import write_layer_saes

pytestmark = pytest.mark.model


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


def test_an_sae_of_another_model_is_warned_about_once(run_dir, tmp_path, capsys):
    from tests.sae.builders import random_weights, write_llamascope

    w = random_weights(576, 64, seed=2, threshold=0.05)
    write_llamascope(tmp_path / "L2", w, layer=2, model_name="meta-llama/Llama-3.1-8B")
    rc = main(["sae", "features", str(run_dir), "--sae", str(tmp_path / "L{layer}"), "--layers", "2",
               "--device", "cpu", "--no-events", "--out", str(tmp_path / "out")])
    assert rc == 0
    err = capsys.readouterr().err
    assert err.count("warning: the SAE(s) of layer(s) 2 name model 'meta-llama/Llama-3.1-8B'") == 1
    meta = json.loads((tmp_path / "out" / "features_meta.json").read_text())
    assert meta["warnings"] and "meta-llama/Llama-3.1-8B" in meta["warnings"][0]
