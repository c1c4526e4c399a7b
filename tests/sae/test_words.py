"""Feature words: decoder directions through a hand-made unembedding, answer words."""


import numpy as np
import pandas as pd
import pytest
import torch

from sae.model import SAE, SAEConfig
from sae.words import answer_words, feature_words, final_norm_gain, token_effects, top_tokens

VOCAB = ["a", "b", "c", "d", "e"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Norm(torch.nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(weight))


class GemmaNorm(Norm):
    """Named like Gemma's norms, which scale by 1 + weight."""


class TinyLM(torch.nn.Module):
    """An unembedding W_U (vocab x d) and a final norm, as a CausalLM exposes them."""

    def __init__(self, W_U, norm):
        super().__init__()
        self.model = torch.nn.Module()
        self.model.norm = norm
        self.lm_head = torch.nn.Linear(W_U.shape[1], W_U.shape[0], bias=False)
        self.lm_head.weight.data = W_U

    def get_output_embeddings(self):
        return self.lm_head


W_U = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [-1, 0, 0]])


def test_token_effects_through_norm_gain():
    lm = TinyLM(W_U, Norm([2.0, 1.0, 0.5]))
    gain = final_norm_gain(lm)
    assert gain.tolist() == [2.0, 1.0, 0.5]
    assert final_norm_gain(TinyLM(W_U, GemmaNorm([0.0, 1.0, -0.5]))).tolist() == [1.0, 2.0, 0.5]
    direction = torch.tensor([[1.0, -1.0, 3.0]])
    effects = token_effects(direction, W_U, gain)  # scaled direction (2, -1, 1.5)
    assert effects[0].tolist() == [2.0, -1.0, 1.5, 1.0, -2.0]
    (promoted, suppressed), = top_tokens(effects, lambda i: VOCAB[i], k=2)
    assert [t for t, _ in promoted] == ["a", "c"] and [t for t, _ in suppressed] == ["e", "b"]
    assert suppressed[0][1] == -2.0


def test_answer_words_median_split():
    texts = ["Bet $20 all in", "bet $20 now", "I stop here", "stop, I will stop", "Bet $10"]
    acts = np.array([3.0, 2.0, 0.0, 0.0, 1.0])  # median 1: high = first two
    w = answer_words(texts, acts, k=3)
    assert (w["median"], w["n_high"], w["n_low"]) == (1.0, 2, 3)
    assert w["high_words"][:2] == [("$20", 1.0), ("bet", pytest.approx(1 - 1 / 3))]
    assert w["low_words"][0] == ("i", pytest.approx(-2 / 3))
    flat = answer_words(texts, np.zeros(5))
    assert flat["high_words"] == [] and flat["n_high"] == 0


def test_feature_words_on_hand_made_decoder():
    d_sae = 4
    W_dec = torch.zeros(d_sae, 3)
    W_dec[1] = torch.tensor([0.2, 1.0, 0.0])  # halved by output_scale: promotes d (0.6), then b (0.5)
    W_dec[2] = torch.tensor([-1.0, 0.4, 0.0])  # promotes e, suppresses a, then d
    cfg = SAEConfig(layout="memory", path="t", d_model=3, d_sae=d_sae, output_scale=2.0, input_scale=2.0)
    sae = SAE(cfg, torch.zeros(3, d_sae), W_dec, torch.zeros(d_sae), torch.zeros(3), 0.0)
    lm = TinyLM(W_U, Norm([1.0, 1.0, 1.0]))
    features = pd.DataFrame({"layer": [7, 7], "feature": [1, 2], "direction": ["risky", "safe"]})
    acts = {7: np.array([[0, 2.0, 0, 0], [0, 1.0, 1.0, 0], [0, 0.0, 3.0, 0], [0, 0.0, 0, 0]])}
    texts = ["bet big", "bet", "stop", "stop now"]
    table = feature_words(lm, lambda i: VOCAB[i], {7: sae}, features, acts, texts,
                          ["bankrupt", "bankrupt", "stopped", "stopped"], k_tokens=2, k_words=2)
    one, two = table.iloc[0], table.iloc[1]
    assert one["promotes"] == "'d' +0.60, 'b' +0.50" and one["delta"] == pytest.approx(1.5)
    assert two["promotes"] == "'e' +0.50, 'b' +0.20" and two["suppresses"] == "'a' -0.50, 'd' -0.30"
    assert two["delta"] == pytest.approx(0.5 - 1.5)
    assert one["high_words"] == "'bet' +1.00, 'big' +0.50" and "'stop' -1.00" in one["low_words"]
