"""The Gemma family on the real engines: the embedded Gemma 3 270M (real weights) plays games on
the transformers backend and on the vLLM CPU engine, and the SAE hook contract holds on its blocks."""

import json

import pytest

from harness.cli import main
from harness.records import GAME_ADAPTER

pytestmark = pytest.mark.model

GEMMA_TOML = """
seed = 3
repetitions = 1
concurrency = 8
[model]
name = "Gemma-3-270M"
path = "embedded:gemma3-270m"
style = "base"
dtype = "float32"
[generation]
max_new_tokens = 8
[game]
max_rounds = 3
[conditions]
ids = ["variable-L-GMP", "fixed-W-BASE"]
[guard]
max_retries = 1
[backend]
kind = "{kind}"
device = "cpu"
max_num_seqs = 8
max_model_len = 1024
cpu_kvcache_space_gib = 1
"""


def play(tmp_path, kind: str):
    config = tmp_path / f"{kind}.toml"
    config.write_text(GEMMA_TOML.format(kind=kind))
    out = tmp_path / kind
    assert main(["run", "games", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    games = [GAME_ADAPTER.validate_json(line) for line in (out / "games.jsonl").read_text().splitlines()]
    assert len(games) == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["model"]["path"] == "embedded:gemma3-270m"
    for g in games:
        asked = [r for r in g.rounds if not r.forced]
        assert asked, g.game_id
        for r in asked:
            # base style: the prompt is the plain text ending with the answer cue; the answer is new
            # tokens only
            assert r.prompt.rstrip().endswith("Final Decision:") and "<start_of_turn>" not in r.prompt
            assert r.tokens_in > 40 and r.tokens_out > 0 and r.response is not None
    return games


def test_gemma3_plays_on_transformers_and_trains_an_sae(tmp_path, gemma3_path):
    play(tmp_path, "transformers")
    # `harness sae train` reads the Gemma run's own prompts through the model (block 9 of 18)
    out = tmp_path / "saes"
    assert main(["sae", "train", str(tmp_path / "transformers"), "--layers", "9", "--expansion", "2",
                 "--k", "8", "--batch-tokens", "64", "--steps", "5", "--holdout", "0.5", "--device", "cpu",
                 "--batch-size", "8", "--no-events", "--out", str(out)]) == 0
    metrics = json.loads((out / "layer_9" / "metrics.json").read_text())
    assert metrics["d_sae"] == 2 * 640 and metrics["heldout_tokens"] > 0 and metrics["mean_l0"] <= 8
    cfg = json.loads((out / "layer_9" / "cfg.json").read_text())
    assert cfg["metadata"]["hook_name"] == "blocks.9.hook_resid_post"


@pytest.mark.vllm
def test_gemma3_plays_on_vllm_cpu(tmp_path, gemma3_path):
    pytest.importorskip("vllm")
    play(tmp_path, "vllm")


def test_gemma3_tokens_start_with_bos(gemma3_path):
    from harness.backends.formatter import PromptFormatter

    formatter = PromptFormatter.from_pretrained(gemma3_path, "base")
    ids = formatter.encode(formatter.render("Current balance: $90"))
    assert ids[0] == formatter.tokenizer.bos_token_id and ids.count(ids[0]) == 1


def test_hook_equals_hidden_states_plus_one_on_gemma3(gemma3_path):
    import torch

    from harness.backends.checkpoints import load_causal_lm
    from harness.backends.formatter import PromptFormatter
    from sae.hooks import capture_residual, decoder_blocks

    model = load_causal_lm(gemma3_path, "float32").eval()
    formatter = PromptFormatter.from_pretrained(gemma3_path, "base")
    ids = torch.tensor(
        [formatter.encode("You are playing a slot machine game at a casino.\\nCurrent balance: $40")]
    )
    layers = [0, 5, 9, 16, 17]
    with torch.inference_mode(), capture_residual(model, layers) as got:
        hs = model(input_ids=ids, output_hidden_states=True).hidden_states
    assert len(decoder_blocks(model)) == 18 and len(hs) == 19
    for L in layers[:-1]:
        assert torch.equal(got[L], hs[L + 1]), L
        assert not torch.allclose(got[L], hs[L], atol=1e-3), L
    assert torch.allclose(model.model.norm(got[17]), hs[18], atol=1e-4)
