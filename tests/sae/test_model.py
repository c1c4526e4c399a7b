"""Encode/decode against numbers computed by hand (docs/protocol.md §3.3: JumpReLU at the threshold,
not ReLU)."""

import pytest
import torch

from sae.model import SAE, SAEConfig, SAELoadError

W_ENC = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
B_ENC = torch.tensor([0.0, -0.5, 0.1])
W_DEC = torch.tensor([[1.0, 1.0], [0.0, 2.0], [1.0, 0.0]])
B_DEC = torch.tensor([0.5, -0.5])
THRESHOLD = torch.tensor([0.5, 0.5, 0.0])


def hand_sae(scale: float = 1.0, **cfg) -> SAE:
    config = SAEConfig(
        layout="memory", path="hand", d_model=2, d_sae=3, input_scale=scale, output_scale=scale, **cfg
    )
    return SAE(config, W_ENC, W_DEC, B_ENC, B_DEC, THRESHOLD)


def test_encode_decode_by_hand():
    sae = hand_sae()
    x = torch.tensor([[1.0, 2.0], [0.4, 0.2], [0.5, 0.0]])
    a = sae.encode(x)
    # pre = [1, 1.5, 0.1], [0.4, -0.3, 0.7], [0.5, -0.5, 1.1]; kept only where pre > threshold
    expected = torch.tensor([[1.0, 1.5, 0.1], [0.0, 0.0, 0.7], [0.0, 0.0, 1.1]])
    assert torch.allclose(a, expected)
    assert a[2, 0] == 0  # pre exactly at the threshold is off (strict >)
    assert torch.allclose(sae.decode(a[:2]), torch.tensor([[1.6, 3.5], [1.2, -0.5]]))


def test_relu_at_zero_would_differ():
    """The authors' defect: ReLU instead of the threshold keeps feature 0 of x2 (0.4 < 0.5)."""
    sae = hand_sae()
    x = torch.tensor([0.4, 0.2])
    assert sae.encode(x)[0] == 0
    assert torch.relu(sae.pre_activations(x))[0] == pytest.approx(0.4)


def test_norm_scaling_is_folded_in():
    sae = hand_sae(scale=2.0)
    x = torch.tensor([1.0, 2.0])
    a = sae.encode(x)  # x * 2 = [2, 4] -> pre = [2, 3.5, 0.1]
    assert torch.allclose(a, torch.tensor([2.0, 3.5, 0.1]))
    assert torch.allclose(sae.decode(a), torch.tensor([1.3, 4.25]))  # ([2.1, 9] + b_dec) / 2
    assert torch.allclose(sae.feature_direction(1), W_DEC[1] / 2)


def test_apply_b_dec_to_input():
    sae = hand_sae(apply_b_dec_to_input=True)
    x = torch.tensor([1.5, 1.5])  # x - b_dec = [1, 2] -> same as the first hand row
    assert torch.allclose(sae.encode(x), torch.tensor([1.0, 1.5, 0.1]))


def test_batched_any_leading_shape_and_dtype():
    sae = hand_sae()
    x = torch.randn(4, 5, 2)
    a = sae.encode(x)
    assert a.shape == (4, 5, 3)
    assert torch.allclose(a.reshape(20, 3), sae.encode(x.reshape(20, 2)))
    assert sae.encode(x.to(torch.bfloat16)).dtype == torch.float32  # cast to the SAE's dtype
    half = hand_sae().to(torch.bfloat16)
    assert half.encode(x).dtype == torch.bfloat16


def test_scalar_threshold_and_shape_check():
    cfg = SAEConfig(layout="memory", path="hand", d_model=2, d_sae=3)
    sae = SAE(cfg, W_ENC, W_DEC, B_ENC, B_DEC, 0.5)
    assert sae.threshold.shape == (3,)
    with pytest.raises(SAELoadError, match="W_dec has shape"):
        SAE(cfg, W_ENC, W_DEC.T, B_ENC, B_DEC, 0.5)


def test_topk_keeps_the_k_largest_through_a_relu():
    cfg = SAEConfig(layout="memory", path="hand", d_model=2, d_sae=3, activation="topk", k=2)
    sae = SAE(cfg, W_ENC, W_DEC, B_ENC, B_DEC, 0.0)
    x = torch.tensor([[1.0, 2.0], [-1.0, -0.2]])
    # pre = [1, 1.5, 0.1] -> top 2: features 0, 1; [-1, -0.7, -1.7] -> top 2 are negative: ReLU -> 0
    assert torch.allclose(sae.encode(x), torch.tensor([[1.0, 1.5, 0.0], [0.0, 0.0, 0.0]]))
    feats = torch.tensor([1, 2])
    assert torch.equal(sae.encode(x, feats), sae.encode(x)[torch.arange(2), feats])
    with pytest.raises(ValueError, match="k is set"):
        SAEConfig(layout="memory", path="hand", d_model=2, d_sae=3, activation="topk")


def test_jumprelu_below_zero_threshold_is_never_negative():
    """A threshold below 0 lets a negative pre-activation through the mask; the ReLU before it
    (sae-lens, Gemma Scope) keeps the activation at 0."""
    sae = SAE(SAEConfig(layout="memory", path="hand", d_model=2, d_sae=3), W_ENC, W_DEC, B_ENC, B_DEC, -1.0)
    x = torch.tensor([[0.4, 0.2]])  # pre = [0.4, -0.3, 0.7]
    assert torch.allclose(sae.encode(x), torch.tensor([[0.4, 0.0, 0.7]]))
    feats = torch.tensor([1])
    assert sae.encode(x, feats).item() == 0.0
