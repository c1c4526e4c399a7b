"""`harness status` on a run directory with real SAE passes: a tiny SAE trained on the real SmolLM2
demo run, then features, patch and words with it, each the real command. The headline results
are read back from the files the passes wrote."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from harness.cli import main
from harness.study.status import build_status

pytestmark = pytest.mark.model  # four tiny SAE passes: 50-210 s on 2 busy CPU cores

CPU = ["--device", "cpu", "--layers", "3"]


def test_headlines_of_real_sae_passes(demo_run, tmp_path, capsys):
    run = tmp_path / "run"  # a copy: the passes append to events.jsonl, and demo_run is shared
    run.mkdir()
    for name in ("games.jsonl", "manifest.json", "events.jsonl"):
        shutil.copy(demo_run / name, run / name)
    sae = str(run / "sae" / "train")
    assert main(["sae", "train", str(run), *CPU, "--expansion", "2", "--k", "8", "--batch-tokens", "256",
                 "--batch-size", "8", "--steps", "40", "--out", sae]) == 0
    rc = main(["sae", "features", str(run), "--sae", sae, *CPU, "--batch-size", "8",
               "--min-d", "0", "--max-p", "1", "--max-q", "1"])
    if rc != 0:  # too few bankrupt or stopped games in the demo run for the t-tests
        pytest.skip(capsys.readouterr().err.strip())
    assert main(["sae", "patch", str(run), "--sae", sae, *CPU, "--top", "2", "--trials", "2"]) == 0
    assert main(["sae", "words", str(run), "--sae", sae, *CPU, "--top", "2"]) == 0

    status = {e.name: e for e in build_status(run).experiments}
    assert list(status) == ["games", "sae/train", "sae/features", "sae/patch", "sae/words"]
    assert all(e.state == "complete" for e in status.values()), {n: e.note for n, e in status.items()}
    train = status["sae/train"].headlines[0]
    assert train.header[:4] == ["layer", "explained variance", "L0", "dead"] and train.rows[0][0] == "3"
    features = status["sae/features"].headlines[0]
    table = pd.read_parquet(run / "sae" / "features" / "features.parquet")
    assert features.rows == [["3", str(len(table)), str(int(table["significant"].sum())),
                              str(int((table["significant"] & (table["direction"] == "risky")).sum())),
                              str(int((table["significant"] & (table["direction"] == "safe")).sum()))]]
    patch = status["sae/patch"].headlines[0]
    assert patch.header == ["layer", "safe", "risky", "breaks_format", "none"]
    assert patch.rows[-1][0] == "all" and sum(int(c) for c in patch.rows[-1][1:]) == 2
    words = status["sae/words"].headlines[0]
    assert len(words.rows) == 2 and all(r[0] == "3" for r in words.rows)
    assert status["sae/patch"].done == status["sae/patch"].total > 0
