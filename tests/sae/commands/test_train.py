"""`harness sae train` on the embedded SmolLM2's demo run: events, the SAELens export read back by
sae-lens, a finished layer skipped, and a resume after a real SIGKILL."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = ["--layers", "3", "--expansion", "2", "--k", "8", "--batch-tokens", "256", "--device", "cpu",
        "--batch-size", "8", "--no-events"]


@pytest.mark.model
def test_train_on_demo_run(demo_run, tmp_path, capsys, one_torch_thread):
    from harness.cli import main

    run = tmp_path / "run"  # a copy: this pass appends to events.jsonl, and demo_run is shared
    run.mkdir()
    for name in ("games.jsonl", "manifest.json"):
        shutil.copy(demo_run / name, run / name)
    out = tmp_path / "saes"
    tiny = [a for a in TINY if a != "--no-events"]
    assert main(["sae", "train", str(run), *tiny, "--steps", "40", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "layer 3: explained variance" in printed and not (out / "buffer").exists()
    metrics = json.loads((out / "layer_3" / "metrics.json").read_text())
    assert metrics["mean_l0"] <= 8 and metrics["heldout_tokens"] > 0 and metrics["d_sae"] == 2 * 576
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    train = [e for e in events if e["kind"] == "train"]
    assert train[0]["type"] == "run_start" and train[-1]["type"] == "run_end"
    assert train[-1]["status"] == "complete" and train[-1]["games_done"] == train[-1]["games_total"]
    sae_lens = pytest.importorskip("sae_lens")
    theirs = sae_lens.SAE.load_from_disk(str(out / "layer_3"))
    assert theirs.cfg.metadata.hook_name == "blocks.3.hook_resid_post" and theirs.cfg.k == 8
    # a finished layer is not trained again
    assert main(["sae", "train", str(run), *TINY, "--steps", "40", "--out", str(out)]) == 0
    assert capsys.readouterr().out == printed


@pytest.mark.model
def test_sigkill_then_rerun_finishes_from_the_checkpoint(demo_run, tmp_path):
    out = tmp_path / "saes"
    args = [sys.executable, "-m", "harness", "sae", "train", str(demo_run), *TINY, "--steps", "400",
            "--checkpoint-every", "5", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = out / "layer_3" / "checkpoint.pt"
    deadline = time.time() + 600
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before its first checkpoint"
    step = torch.load(ckpt, weights_only=False)["state"]["step"]
    assert 0 < step < 400
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((out / "layer_3" / "metrics.json").read_text())
    assert metrics["steps"] == 400 and not ckpt.exists()


def test_flags_are_checked_before_the_run_is_read(tmp_path, capsys):
    from harness.cli import main

    missing = str(tmp_path / "no-run")
    assert main(["sae", "train", missing, "--layers", "3", "--k", "0"]) == 2
    assert "--k: Input should be greater than 0" in capsys.readouterr().err
    assert main(["sae", "train", missing, "--layers", "3"]) == 2
    assert "not found" in capsys.readouterr().err
