"""`harness sae patch` end to end on the real SmolLM2: events, the rerun that resumes, the demo run."""

import json

import pandas as pd
import pytest

from harness.backends.formatter import PromptFormatter
from harness.cli import main
from harness.records import EVENT_ADAPTER
from sae.patching.trials import read_lines
from tests.sae.builders import GAME_PLANS, played_game, write_layer_saes, write_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _features_table(run_dir, layers=(2, 5)):
    t = pd.DataFrame({"layer": [layers[0], layers[0], layers[1]], "feature": [1, 3, 7],
                      "mean_bankrupt": [2.0, 0.0, 1.5], "mean_stopped": [0.0, 3.0, 0.1],
                      "d": [0.5, -0.8, 0.4], "direction": ["risky", "safe", "risky"],
                      "significant": [True, True, True]})
    path = run_dir / "features.parquet"
    t.to_parquet(path, index=False)
    return path


@pytest.mark.model
def test_patch_cli_with_events(tmp_path, smollm2_path, capsys):
    fmt = PromptFormatter.from_pretrained(smollm2_path, "chat")
    run_dir = write_run(tmp_path / "run",
                        [played_game(fmt, b, repetition=i) for i, (b, _) in enumerate(GAME_PLANS)],
                        smollm2_path)
    table = _features_table(run_dir)
    spec = write_layer_saes(tmp_path / "saes", "llamascope", [2, 5], 576, 64)
    args = ["sae", "patch", str(run_dir), "--features", str(table), "--sae", spec, "--trials", "2",
            "--max-new-tokens", "4", "--device", "cpu", "--top", "1", "--layers", "5"]
    assert main(args) == 0
    out = run_dir / "sae" / "patch"
    features = pd.read_parquet(out / "patch_features.parquet")
    assert features[["layer", "feature"]].values.tolist() == [[5, 7]]
    assert set(features["classification"]) <= {"safe", "risky", "breaks_format", "none"}
    assert (len(pd.read_csv(out / "patch_tests.csv")) == 8
            and (out / "report.md").read_text().startswith("# Activation"))
    meta = json.loads((out / "patch_meta.json").read_text())
    assert meta["trials"] == 2 and meta["prompts"]["safe"]["balance"] == 140
    events = [EVENT_ADAPTER.validate_json(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    mine = [e for e in events if e.kind == "patch"]
    assert mine[0].type == "run_start" and mine[-1].type == "run_end" and mine[-1].games_done == 1
    assert "1 features patched" in capsys.readouterr().out
    # rerun, given the table (the run dir is found above it): all done, nothing generated; a pass
    # begun under the older folder name continues there
    old = out.rename(run_dir / "sae" / "patching")
    args[2:5] = [str(table)]
    assert main(args) == 0
    assert len(read_lines(old / "patch_trials.jsonl")) == 2 and not out.exists()


@pytest.mark.model
def test_patch_cli_on_demo_run(demo_run, tmp_path):
    table = _features_table(tmp_path, layers=(1, 3))
    spec = write_layer_saes(tmp_path / "saes", "saelens", [1, 3], 576, 64)
    out = tmp_path / "p"
    assert main(["sae", "patch", str(demo_run), "--features", str(table), "--sae", spec, "--trials", "2",
                 "--max-new-tokens", "4", "--device", "cpu", "--out", str(out), "--no-events",
                 "--ids", "3:7"]) == 0
    lines = read_lines(out / "patch_trials.jsonl")
    assert [u.type for u in lines] == ["baseline", "feature"]
    assert all(len(c.trials) == 2 for u in lines for c in u.conditions)
    meta = json.loads((out / "patch_meta.json").read_text())
    # demo: base prompts, $30 start
    assert meta["style"] == "base" and meta["prompts"]["safe"]["balance"] == 140
    assert meta["prompts"]["safe"]["rendered"].endswith("Final Decision:")
