"""Loader parity with sae-lens itself: folders written by sae-lens (`save_model`) and configs written
the way sae-lens < 6 wrote them, loaded by `sae.load` and by sae-lens's `SAE.load_from_disk`; and
LlamaScope / Gemma Scope folders loaded by sae-lens's own `SAE.from_pretrained` (hub download
pointed at them). Encode and decode must agree on the same inputs (max abs difference < 1e-5)."""

import json
from pathlib import Path

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


# --- pretrained layouts: the study's releases through sae-lens's own loaders, its hub download
# answered from folders in the real files' layout (small d_model): the scaling factor, threshold
# rule and scaling_factor check are sae-lens's, not a copy of them.

LLAMA_RELEASE = "llama_scope_lxr_8x"
GEMMA_RELEASE = "gemma-scope-9b-pt-res"
#: hyperparams.json fields of fnlp/Llama3_1-8B-Base-LXR-*x beyond those write_llamascope sets.
LLAMA_FIELDS = {
    "hook_point_out": None, "use_decoder_bias": True, "apply_decoder_bias_to_pre_encoder": False,
    "decoder_exactly_fixed_norm": False, "sparsity_include_decoder_norm": True, "use_glu_encoder": False,
    "init_decoder_norm": 0.5, "init_encoder_norm": None, "init_encoder_with_decoder_transpose": True,
    "bias_init_method": "all_zero", "lp": 1, "top_k": 50, "dtype": "torch.bfloat16", "device": "cuda:0",
}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """sae-lens's hub downloads read tmp_path/hub/<repo_id>/<subfolder>/<filename>; nothing else."""
    from sae_lens.loading import pretrained_sae_loaders

    root = tmp_path / "hub"

    def download(repo_id, filename, *, subfolder=None, force_download=False):
        path = root / repo_id / (subfolder or "") / filename
        assert path.is_file(), f"sae-lens asked for {path}"
        return str(path)

    monkeypatch.setattr(pretrained_sae_loaders, "hf_hub_download", download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


def residuals(norm: float, n: int = 256, seed: int = 11) -> torch.Tensor:
    """Raw residual vectors whose norms spread around `norm` (LlamaScope's dataset average)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D_IN, generator=g)
    return x / x.norm(dim=-1, keepdim=True) * norm * (0.5 + torch.rand(n, 1, generator=g))


def assert_same_sae(ours, theirs, x) -> float:
    """encode, decode and the active sets agree; returns the mean number of active features per row."""
    a_ours, a_theirs = ours.encode(x), theirs.encode(x)
    assert torch.equal(a_ours > 0, a_theirs > 0)
    torch.testing.assert_close(a_ours, a_theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.decode(a_theirs), theirs.decode(a_theirs), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.decode(a_ours), theirs.decode(a_theirs), rtol=1e-5, atol=1e-5)
    return float((a_ours > 0).sum(-1).float().mean())


@pytest.mark.parametrize("sae_id", ["l25r_8x", "l31r_8x"])  # s = 2.02 and 0.86
def test_llamascope_matches_sae_lens_loader(hub, sae_id):
    from sae_lens.loading.pretrained_saes_directory import (
        get_norm_scaling_factor,
        get_repo_id_and_folder_name,
    )

    from tests.sae.builders import write_llamascope

    s = get_norm_scaling_factor(LLAMA_RELEASE, sae_id)
    repo_id, folder_name = get_repo_id_and_folder_name(LLAMA_RELEASE, sae_id)
    layer = int(sae_id[1:3])
    w = weights(6)
    # unit decoder rows: sae-lens ignores sparsity_include_decoder_norm, sae.load folds the norms (no-op at 1)
    w["W_dec"] = w["W_dec"] / w["W_dec"].norm(dim=1, keepdim=True)
    w["threshold"] = torch.full((D_SAE,), 0.5)  # one scalar, in the units of the scaled input
    hook = f"blocks.{layer}.hook_resid_post"
    folder = write_llamascope(hub / repo_id / folder_name, w, avg_norm=D_IN**0.5 / s, layer=layer,
                              **{**LLAMA_FIELDS, "hook_point_out": hook})
    theirs = LensSAE.from_pretrained(LLAMA_RELEASE, sae_id, dtype="float32")
    ours = load(folder, d_model=D_IN, layer=layer)
    assert ours.cfg.input_scale == pytest.approx(s)
    x = residuals(D_IN**0.5 / s)
    l0_ours = assert_same_sae(ours, theirs, x)
    pre = ours.pre_activations(x)
    unscaled = float((pre > 0.5).sum(-1).float().mean())  # the threshold compared as stored
    assert 0 < l0_ours < D_SAE and unscaled != pytest.approx(l0_ours, abs=1)  # the rule matters here


def small_gemma_loader(**kwargs):
    """sae-lens's Gemma 2 loader with the widths of the test folder (its config takes them from the
    repo and folder names: 3584 x 16384)."""
    from sae_lens.loading.pretrained_sae_loaders import gemma_2_sae_huggingface_loader

    kwargs["cfg_overrides"] = {**(kwargs["cfg_overrides"] or {}), "d_in": D_IN, "d_sae": D_SAE}
    return gemma_2_sae_huggingface_loader(**kwargs)


def write_gemma(hub, w, sae_id: str, **extra) -> Path:
    import numpy as np
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    folder = hub.joinpath(*get_repo_id_and_folder_name(GEMMA_RELEASE, sae_id))
    folder.mkdir(parents=True)
    np.savez(folder / "params.npz", **{k: v.numpy() for k, v in {**w, **extra}.items()})
    return folder


@pytest.mark.parametrize("scaling_factor", [None, 1.0])
def test_gemmascope_matches_sae_lens_loader(hub, scaling_factor):
    from sae.loading import convert_npz

    sae_id = "layer_25/width_16k/average_l0_61"
    w = {**weights(7), "threshold": torch.rand(D_SAE) * 0.6 + 0.05}
    extra = {} if scaling_factor is None else {"scaling_factor": torch.full((D_SAE,), scaling_factor)}
    folder = write_gemma(hub, w, sae_id, **extra)
    theirs = LensSAE.from_pretrained(GEMMA_RELEASE, sae_id, dtype="float32", converter=small_gemma_loader)
    x = residuals(8.0)
    l0 = assert_same_sae(load(folder, d_model=D_IN, layer=25), theirs, x)
    assert 0 < l0 < D_SAE
    convert_npz(folder)
    (folder / "params.npz").unlink()  # params.safetensors alone
    assert_same_sae(load(folder, d_model=D_IN, layer=25), theirs, x)


def test_gemmascope_scaling_factor_refused_as_sae_lens_does(hub):
    from sae.loading import convert_npz

    sae_id = "layer_25/width_16k/average_l0_61"
    folder = write_gemma(hub, weights(8), sae_id, scaling_factor=torch.full((D_SAE,), 1.5))
    with pytest.raises(ValueError, match="Scaling factor is present"):
        LensSAE.from_pretrained(GEMMA_RELEASE, sae_id, dtype="float32", converter=small_gemma_loader)
    for refused in (load, convert_npz):
        with pytest.raises(SAELoadError, match=r"params\.npz: scaling_factor is not all ones") as e:
            refused(folder)
        assert "\n" not in str(e.value)
