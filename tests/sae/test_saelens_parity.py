"""Loader parity with sae-lens itself: folders written by sae-lens (`save_model`) and configs written
the way sae-lens < 6 wrote them, loaded by `sae.load` and by sae-lens's `SAE.load_from_disk`; encode
and decode must agree on the same inputs (max abs difference < 1e-5)."""

import json

import pytest
import torch
from safetensors.torch import save_file

from sae import SAELoadError, load

sae_lens = pytest.importorskip("sae_lens")
from sae_lens import (  # noqa: E402
    SAE as LensSAE,
)
from sae_lens import (  # noqa: E402
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)
from sae_lens.saes.sae import SAEMetadata  # noqa: E402

D_IN, D_SAE, K, LAYER = 16, 96, 8, 3
HOOK = f"blocks.{LAYER}.hook_resid_post"


def weights(seed: int) -> dict[str, torch.Tensor]:
    """Random weights with a non-zero b_dec (so apply_b_dec_to_input matters) and thresholds on both
    sides of 0 (so the ReLU before the JumpReLU mask matters)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "W_enc": torch.randn(D_IN, D_SAE, generator=g) / D_IN**0.5,
        "W_dec": (
            torch.randn(D_SAE, D_IN, generator=g) / D_IN**0.5 * (0.5 + torch.rand(D_SAE, 1, generator=g))
        ),
        "b_enc": torch.randn(D_SAE, generator=g) * 0.3,
        "b_dec": torch.randn(D_IN, generator=g),
        "threshold": torch.rand(D_SAE, generator=g) * 0.6 - 0.3,
    }


def saved_by_sae_lens(folder, cls, cfg_cls, w, **cfg) -> None:
    lens = cls(
        cfg_cls(d_in=D_IN, d_sae=D_SAE, metadata=SAEMetadata(hook_name=HOOK, model_name="gpt2"), **cfg)
    )
    with torch.no_grad():
        for name, param in lens.named_parameters():
            param.copy_(w[name])
    lens.save_model(folder)


NEW_LAYOUTS = {
    "standard": (StandardSAE, StandardSAEConfig, {}),
    "standard-no-b-dec": (StandardSAE, StandardSAEConfig, {"apply_b_dec_to_input": False}),
    "jumprelu": (JumpReLUSAE, JumpReLUSAEConfig, {}),
    "topk": (TopKSAE, TopKSAEConfig, {"k": K}),
    "topk-rescaled": (TopKSAE, TopKSAEConfig, {"k": K, "rescale_acts_by_decoder_norm": True}),
}


def old_config(style: str) -> tuple[dict, list[str]]:
    """(cfg.json, tensor names) as sae-lens < 6 wrote them: no sae_lens_version; 2.x used hook_point
    and no architecture, apply_b_dec_to_input or boolean normalize_activations; 3.x-4.x TopK is
    activation_fn_str 'topk' with activation_fn_kwargs; 5.x added architecture (jumprelu)."""
    common = {"d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", "device": "cpu", "model_name": "gpt2",
              "finetuning_scaling_factor": False, "prepend_bos": True, "context_size": 128,
              "dataset_path": "Skylion007/openwebtext", "sae_lens_training_version": "3.12.0"}
    tensors = ["W_enc", "W_dec", "b_enc", "b_dec"]
    if style == "standard-2x":
        return {**common, "hook_point": HOOK, "hook_point_layer": LAYER, "hook_point_head_index": None,
                "activation_fn_str": "relu", "normalize_activations": False}, tensors
    if style == "topk-3x":
        return {**common, "hook_point": HOOK, "hook_point_layer": LAYER, "hook_point_head_index": None,
                "activation_fn_str": "topk", "activation_fn_kwargs": {"k": K},
                "normalize_activations": "none"}, tensors
    assert style == "jumprelu-5x"
    return {**common, "architecture": "jumprelu", "hook_name": HOOK, "hook_layer": LAYER,
            "hook_head_index": None,
            "activation_fn_str": "relu", "activation_fn_kwargs": {}, "apply_b_dec_to_input": False,
            "normalize_activations": "none", "neuronpedia_id": None, "model_from_pretrained_kwargs": {},
            "sae_lens_training_version": "5.9.1"}, tensors + ["threshold"]


def written_old_style(folder, style: str, w) -> None:
    cfg, names = old_config(style)
    folder.mkdir(parents=True)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file({k: w[k].contiguous() for k in names}, str(folder / "sae_weights.safetensors"))


def assert_same(folder, expect_l0: int | None = None) -> None:
    ours, theirs = load(folder, layer=LAYER), LensSAE.load_from_disk(str(folder), device="cpu")
    x = torch.randn(64, D_IN, generator=torch.Generator().manual_seed(7)) * 2
    a_ours, a_theirs = ours.encode(x), theirs.encode(x)
    assert (a_ours - a_theirs).abs().max() < 1e-5
    assert (ours.decode(a_ours) - theirs.decode(a_theirs)).abs().max() < 1e-5
    assert (ours.decode(a_theirs) - theirs.decode(a_theirs)).abs().max() < 1e-5  # decode alone, same input
    assert ours.cfg.model_name == "gpt2" and ours.cfg.layer == LAYER
    if expect_l0 is not None:
        assert (((a_ours > 0).sum(-1) <= expect_l0).all()
                and ((a_ours > 0).sum(-1) == expect_l0).float().mean() > 0.9)


@pytest.mark.parametrize("name", sorted(NEW_LAYOUTS))
def test_new_layouts_match_sae_lens(tmp_path, name):
    cls, cfg_cls, cfg = NEW_LAYOUTS[name]
    saved_by_sae_lens(tmp_path / name, cls, cfg_cls, weights(1), **cfg)
    assert_same(tmp_path / name, K if "k" in cfg else None)


@pytest.mark.parametrize("style", ["standard-2x", "topk-3x", "jumprelu-5x"])
def test_old_layouts_match_sae_lens(tmp_path, style):
    written_old_style(tmp_path / style, style, weights(2))
    assert_same(tmp_path / style, K if style.startswith("topk") else None)


def test_defaults_follow_sae_lens(tmp_path):
    """apply_b_dec_to_input missing -> True (as sae-lens); hook_point is checked against the layer."""
    folder = tmp_path / "old"
    written_old_style(folder, "standard-2x", weights(3))
    assert load(folder).cfg.apply_b_dec_to_input
    with pytest.raises(SAELoadError, match=r"output of block 3 \(blocks\.3\.hook_resid_post\).*layer 4"):
        load(folder, layer=4)
    new = tmp_path / "new"
    saved_by_sae_lens(new, StandardSAE, StandardSAEConfig, weights(3))
    cfg = json.loads((new / "cfg.json").read_text())
    del cfg["apply_b_dec_to_input"]
    (new / "cfg.json").write_text(json.dumps(cfg))
    assert load(new).cfg.apply_b_dec_to_input
    assert_same(new)


REFUSED = [
    ("normalize_activations", "layer_norm", "new"),
    ("normalize_activations", "covariance_whitening", "new"),
    ("normalize_activations", "constant_norm_rescale", "new"),
    ("normalize_activations", "expected_average_only_in", "new"),
    ("normalize_activations", True, "old"),
    ("reshape_activations", "hook_z", "new"),
    ("architecture", "gated", "new"),
    ("activation_fn_str", "tanh-relu", "old"),
    ("hook_point", "blocks.3.hook_mlp_out", "old"),
    ("hook_point_head_index", 2, "old"),
    ("finetuning_scaling_factor", True, "old"),
]


@pytest.mark.parametrize(("key", "value", "age"), REFUSED)
def test_unsupported_settings_are_refused_by_name(tmp_path, key, value, age):
    folder = tmp_path / "s"
    if age == "new":
        saved_by_sae_lens(folder, StandardSAE, StandardSAEConfig, weights(4))
    else:
        written_old_style(folder, "standard-2x", weights(4))
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg[key] = value
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SAELoadError, match=rf"cfg\.json: {key} .*not supported") as e:
        load(folder)
    assert "\n" not in str(e.value)


def test_old_topk_without_k_is_refused(tmp_path):
    """sae-lens would load it as a ReLU SAE (every positive pre-activation on): refused instead."""
    folder = tmp_path / "t"
    written_old_style(folder, "topk-3x", weights(5))
    cfg = json.loads((folder / "cfg.json").read_text())
    del cfg["activation_fn_kwargs"]
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SAELoadError, match=r"cfg\.json: activation_fn_str 'topk' not supported.*k"):
        load(folder)
