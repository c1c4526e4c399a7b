"""SAE commands on hostile input (issue 21): each is one line, exit 2, before any model is loaded
(the run directory here holds no model at all: reaching the loader would be a different error)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.cli import main


def _sae(tmp_path: Path, **cfg) -> Path:
    folder = tmp_path / "sae"
    folder.mkdir()
    (folder / "cfg.json").write_text(json.dumps({"d_in": 4, "d_sae": 8, "architecture": "standard", **cfg}))
    (folder / "sae_weights.safetensors").write_bytes(b"")
    return folder


@pytest.mark.parametrize(("extra", "cfg", "says"), [
    (["--layers", "5"], {"hook_name": 5}, "5 not supported"),
    (["--layers", "5"], {"hook_name": "blocks.5.attn.hook_z"}, "not supported"),
    (["--layers", "5"], {"d_in": "four"}, "d_in 'four' is not a positive integer"),
    (["--layers", "5"], {"architecture": "topk", "k": -1, "sae_lens_version": "6.5.0"}, "k -1 not supported"),
    (["--layers", "5"], {"metadata": [1]}, "metadata [1] is not a JSON object"),
    (["--layers", "0-100000000"], {}, "layer 100000000 is beyond any model"),
    (["--layers", "5", "--device", "cuda:99"], {}, "--device 'cuda:99'"),
    (["--layers", "5", "--device", "gpu"], {}, "--device 'gpu'"),
])
@pytest.mark.parametrize("command", ["features", "pathway"])
def test_bad_sae_input_is_one_line_before_the_model(tmp_path, capsys, command, extra, cfg, says):
    sae = _sae(tmp_path, **cfg)
    t0 = time.monotonic()
    assert main(["sae", command, str(tmp_path / "run"), "--sae", str(sae), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err
    assert time.monotonic() - t0 < 20  # no model loaded, no range of 10^8 layers built


def test_a_cfg_json_that_is_no_object_is_one_line(tmp_path, capsys):
    sae = _sae(tmp_path)
    (sae / "cfg.json").write_text("[]")
    assert main(["sae", "features", str(tmp_path / "run"), "--sae", str(sae), "--layers", "5"]) == 2
    assert "cfg.json: not a JSON object" in capsys.readouterr().err


def test_events_that_is_a_directory_is_one_line(tmp_path, capsys):
    (tmp_path / "ev").mkdir()
    argv = ["sae", "features", str(tmp_path / "run"), "--sae", str(_sae(tmp_path)), "--layers", "5",
            "--events", str(tmp_path / "ev")]
    assert main(argv) == 2
    assert "a directory, not an events file" in capsys.readouterr().err


def test_train_layers_beyond_any_model_is_one_line(tmp_path, capsys):
    assert main(["sae", "train", str(tmp_path / "run"), "--layers", "0-100000000"]) == 2
    assert "beyond any model" in capsys.readouterr().err
