"""The hook reads the output of block L == output_hidden_states[L + 1], on the real SmolLM2."""

import pytest
import torch

from sae.hooks import StopForward, capture_residual, decoder_blocks, edit_residual

pytestmark = pytest.mark.model

PROMPT = "You are playing a slot machine game at a casino.\nCurrent balance: $40"


@pytest.fixture(scope="module")
def ids(smollm2_reader):
    r = smollm2_reader
    return torch.tensor([r.encode(r.formatter.render(PROMPT))])


def test_hook_equals_hidden_states_plus_one(smollm2_reader, ids):
    model = smollm2_reader.model
    layers = [0, 1, 14, 28, 29]
    with torch.inference_mode(), capture_residual(model, layers) as got:
        hs = model(input_ids=ids, output_hidden_states=True).hidden_states
    assert len(hs) == 31 and len(decoder_blocks(model)) == 30
    for L in layers[:-1]:
        assert torch.equal(got[L], hs[L + 1]), L
        assert not torch.allclose(got[L], hs[L], atol=1e-3), L  # the off-by-one would fail here
    # the last entry of hidden_states has the final norm applied; the hook sees the raw residual
    assert torch.allclose(model.norm(got[29]), hs[30], atol=1e-5)


def test_hooks_removed_after_stop_and_error(smollm2_reader, ids):
    model = smollm2_reader.model
    blocks = decoder_blocks(model)
    before = [len(b._forward_hooks) for b in blocks]  # transformers may keep hooks of its own
    with torch.inference_mode(), capture_residual(model, [3], stop_after_last=True) as got:
        with pytest.raises(StopForward):
            model(input_ids=ids)
    assert got[3].shape == (1, ids.shape[1], 576)
    assert [len(b._forward_hooks) for b in blocks] == before
    with pytest.raises(RuntimeError), capture_residual(model, [2, 5]):
        raise RuntimeError("boom")
    assert [len(b._forward_hooks) for b in blocks] == before


def test_edit_residual_changes_later_blocks_only(smollm2_reader, ids):
    model = smollm2_reader.model
    with torch.inference_mode():
        with capture_residual(model, [4, 5]) as clean:
            model(input_ids=ids)
        with edit_residual(model, {5: lambda h: h + 1.0}), capture_residual(model, [4, 5]) as edited:
            model(input_ids=ids)
    assert torch.equal(clean[4], edited[4])
    # hooks run in registration order: the edit first, then the capture sees the edited value
    assert torch.allclose(edited[5], clean[5] + 1.0)


def test_batched_left_padding_matches_single(smollm2_reader):
    r = smollm2_reader
    prompts = [r.formatter.render(p) for p in ("Hi", PROMPT, PROMPT + "\nBet $10 or stop?")]
    batched = {}
    for idx, res in r.last_token(prompts, [0, 15, 29]):
        for j, i in enumerate(idx):
            batched[i] = {L: res[L][j] for L in res}
    for i, p in enumerate(prompts):
        alone = r.forward_last([r.encode(p)], [0, 15, 29])
        for L in (0, 15, 29):
            assert torch.allclose(batched[i][L], alone[L][0], rtol=1e-4, atol=1e-3), (i, L)


def test_chat_prompt_gets_no_second_bos(smollm2_reader):
    r = smollm2_reader
    rendered = r.formatter.render(PROMPT)
    ids = r.encode(rendered)
    tok = r.formatter.tokenizer
    assert (ids[0] == tok.convert_tokens_to_ids("<|im_start|>")
            and ids.count(ids[0]) == rendered.count("<|im_start|>"))


@pytest.mark.parametrize("arch", ["llama", "gemma2"])
def test_hook_on_tiny_random_architectures(arch):
    """Same contract on LLaMA and Gemma-2 blocks (tiny random models, no download)."""
    from transformers import Gemma2Config, Gemma2Model, LlamaConfig, LlamaModel

    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=100, head_dim=8)
    torch.manual_seed(0)
    if arch == "llama":
        model = LlamaModel(LlamaConfig(**small)).eval()
    else:
        model = Gemma2Model(Gemma2Config(**small, attn_implementation="eager")).eval()
    ids = torch.randint(0, 100, (2, 7))
    with torch.inference_mode(), capture_residual(model, [0, 2, 3]) as got:
        hs = model(input_ids=ids, output_hidden_states=True).hidden_states
    for L in (0, 2):
        assert torch.equal(got[L], hs[L + 1])
    assert torch.allclose(model.norm(got[3]), hs[4], atol=1e-5)
