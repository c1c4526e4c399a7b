"""Loading the three layouts, the errors a bad file gives, and --sae SPEC resolution."""

import math

import pytest
import torch

from harness.errors import ConfigError, HarnessError
from sae import SAELoadError, load
from sae.loading import convert_npz, detect_layout
from sae.spec import load_layers, parse_layers, resolve_spec
from tests.sae.builders import random_weights, write_gemmascope, write_llamascope, write_saelens

D_MODEL, D_SAE = 16, 64


@pytest.fixture
def w():
    return random_weights(D_MODEL, D_SAE, seed=1)


def hand_encode(w, x, scale=1.0, threshold=None):
    pre = (x * scale) @ w["W_enc"] + w["b_enc"]
    th = w["threshold"] if threshold is None else threshold
    return pre * (pre > th)


def test_llamascope_scaling_and_orientation(tmp_path, w):
    """Inputs times s = sqrt(d_model) / norm.in; a feature fires when (s x) W_enc + b_enc > s * threshold
    (docs/protocol.md §3.2, sae-lens's LlamaScope loader)."""
    folder = write_llamascope(tmp_path / "ls", w, avg_norm=2.0, layer=3)
    sae = load(folder, layer=3)
    assert sae.cfg.layout == "llamascope" and sae.cfg.layer == 3
    assert sae.W_enc.shape == (D_MODEL, D_SAE) and sae.W_dec.shape == (D_SAE, D_MODEL)
    scale = math.sqrt(D_MODEL) / 2.0
    assert torch.equal(sae.threshold, torch.full((D_SAE,), float(w["threshold"][0]) * scale))
    x = torch.randn(200, D_MODEL)
    a = sae.encode(x)
    assert torch.allclose(a, hand_encode(w, x, scale, float(w["threshold"][0]) * scale), atol=1e-6)
    unscaled = hand_encode(w, x, scale, float(w["threshold"][0]))
    assert ((unscaled > 0) & (a == 0)).any()  # the stored threshold compared as is would fire more
    assert torch.allclose(sae.decode(a), (a @ w["W_dec"] + w["b_dec"]) / scale, atol=1e-6)
    assert sae.W_enc.T.is_contiguous()  # a transposed view of encoder.weight, not a copy


def test_llamascope_decoder_norm_folded(tmp_path, w):
    """sparsity_include_decoder_norm: the gate sees pre * ||W_dec[f]||; reconstruction unchanged."""
    w["W_dec"] = w["W_dec"] * 3.0
    sae = load(write_llamascope(tmp_path / "ls", w, avg_norm=2.0, sparsity_include_decoder_norm=True))
    x = torch.randn(6, D_MODEL)
    s = math.sqrt(D_MODEL) / 2.0
    norms = w["W_dec"].norm(dim=1)
    pre = (s * x) @ w["W_enc"] + w["b_enc"]
    gate = pre * norms > s * float(w["threshold"][0])
    assert torch.equal(sae.encode(x) > 0, gate & (pre * norms != 0))
    expected = ((pre * gate) @ w["W_dec"] + w["b_dec"]) / s
    assert torch.allclose(sae.decode(sae.encode(x)), expected, atol=1e-5)


def test_gemmascope_npz_and_conversion(tmp_path, w):
    folder = write_gemmascope(tmp_path / "layer_7" / "width_16k" / "average_l0_50", w)
    sae = load(folder)
    assert sae.cfg.layout == "gemmascope" and sae.cfg.layer == 7
    x = torch.randn(3, D_MODEL)
    assert torch.allclose(sae.encode(x), hand_encode(w, x), atol=1e-6)
    target = convert_npz(folder)
    assert target.name == "params.safetensors"
    (folder / "params.npz").unlink()  # the loader now reads the safetensors file only
    again = load(folder, dtype="bfloat16")
    assert again.dtype == torch.bfloat16
    assert torch.equal(again.threshold, w["threshold"].to(torch.bfloat16))


def test_saelens_jumprelu_and_standard(tmp_path, w):
    sae = load(write_saelens(tmp_path / "j", w, layer=2))
    x = torch.randn(4, D_MODEL)
    assert torch.allclose(sae.encode(x), hand_encode(w, x), atol=1e-6)
    relu = load(write_saelens(tmp_path / "s", w, jumprelu=False))
    assert torch.allclose(relu.encode(x), torch.relu(x @ w["W_enc"] + w["b_enc"]), atol=1e-6)


def test_weights_file_path_is_accepted(tmp_path, w):
    folder = write_llamascope(tmp_path / "ls", w)
    assert detect_layout(folder / "checkpoints" / "final.safetensors") == ("llamascope", folder)


def test_truncated_file(tmp_path, w):
    folder = write_saelens(tmp_path / "t", w)
    f = folder / "sae_weights.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(SAELoadError, match=r"sae_weights\.safetensors.*truncated"):
        load(folder)


def test_missing_key_wrong_shape_wrong_d_model_wrong_layer(tmp_path, w):
    folder = write_llamascope(tmp_path / "ls", w, layer=4)
    from safetensors.torch import load_file, save_file

    f = folder / "checkpoints" / "final.safetensors"
    tensors = load_file(str(f))
    save_file({k: v for k, v in tensors.items() if k != "decoder.bias"}, str(f))
    with pytest.raises(SAELoadError, match=r"final\.safetensors: missing tensor\(s\) \['decoder.bias'\]"):
        load(folder)
    save_file({**tensors, "decoder.weight": tensors["decoder.weight"][:, :10].contiguous()}, str(f))
    with pytest.raises(SAELoadError, match=r"ls: W_dec has shape \(10, 16\), expected \(64, 16\)"):
        load(folder)
    save_file(tensors, str(f))
    with pytest.raises(SAELoadError, match="does not match the model's hidden size 576"):
        load(folder, d_model=576)
    with pytest.raises(SAELoadError, match="output of block 4.*used for layer 5"):
        load(folder, layer=5)
    assert isinstance(SAELoadError("x"), HarnessError)


def test_not_an_sae_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SAELoadError, match="not an SAE folder"):
        load(tmp_path / "empty")
    with pytest.raises(SAELoadError, match="no such SAE folder"):
        load(tmp_path / "nope")


def test_parse_layers():
    assert parse_layers("25-27") == [25, 26, 27]
    assert parse_layers("1,5, 3-4,5") == [1, 3, 4, 5]
    for bad in ("", "a", "5-3", "-1"):
        with pytest.raises(ConfigError):
            parse_layers(bad)


def test_spec_template_layer_folders_and_single(tmp_path, w):
    for L in (1, 2):
        write_saelens(tmp_path / "tpl" / f"L{L}R", w, layer=L)
        write_gemmascope(tmp_path / "gs" / f"layer_{L}" / "width_16k" / "average_l0_9", w)
    assert resolve_spec(str(tmp_path / "tpl" / "L{layer}R"), [1, 2]) == {
        L: tmp_path / "tpl" / f"L{L}R" for L in (1, 2)
    }
    got = resolve_spec(str(tmp_path / "gs"), [1, 2])
    assert got[2] == tmp_path / "gs" / "layer_2" / "width_16k" / "average_l0_9"
    assert resolve_spec(str(tmp_path / "tpl" / "L1R"), [1]) == {1: tmp_path / "tpl" / "L1R"}
    with pytest.raises(ConfigError, match="one SAE"):
        resolve_spec(str(tmp_path / "tpl" / "L1R"), [1, 2])
    with pytest.raises(SAELoadError, match="no SAE folder for layer 3"):
        resolve_spec(str(tmp_path / "tpl" / "L{layer}R"), [3])
    write_gemmascope(tmp_path / "gs" / "layer_1" / "width_16k" / "average_l0_20", w)
    with pytest.raises(SAELoadError, match="2 SAE folders below"):
        resolve_spec(str(tmp_path / "gs"), [1])
    saes = load_layers(str(tmp_path / "tpl" / "L{layer}R"), [1, 2], d_model=D_MODEL)
    assert sorted(saes) == [1, 2]
    with pytest.raises(SAELoadError, match="used for layer 2"):
        load_layers(str(tmp_path / "tpl" / "L1R"), [2])


def test_model_named_by_the_sae_is_checked(tmp_path, w, capsys):
    from sae.spec import model_warnings

    sae = load(write_llamascope(tmp_path / "ls", w, model_name="meta-llama/Llama-3.1-8B"))
    assert sae.cfg.model_name == "meta-llama/Llama-3.1-8B"
    assert model_warnings({25: sae}, ["llama", "/models/Llama-3.1-8B/"]) == []
    lines = model_warnings({25: sae, 26: sae}, ["smollm2", "/cache/SmolLM2-135M-Instruct"])
    assert lines == [
        "warning: the SAE(s) of layer(s) 25, 26 name model 'meta-llama/Llama-3.1-8B', not this run's model "
        "('smollm2', '/cache/SmolLM2-135M-Instruct')"
    ]
    assert capsys.readouterr().err == ""  # the command prints them, not the loader
    with pytest.raises(SAELoadError, match=r"hyperparams\.json: act_fn 'topk' not supported"):
        load(write_llamascope(tmp_path / "tk", w, act_fn="topk"))


def _poison(file, key: str, value: float, index=(0, 0)) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(file))
    tensors[key] = tensors[key].clone()
    tensors[key][index] = value
    save_file(tensors, str(file))


@pytest.mark.parametrize(
    ("layout", "file", "key", "value", "index"),
    [
        ("llamascope", "checkpoints/final.safetensors", "encoder.weight", float("nan"), (3, 2)),
        ("saelens", "sae_weights.safetensors", "W_dec", float("-inf"), (0, 1)),
        ("saelens", "sae_weights.safetensors", "threshold", float("nan"), (5,)),
        ("gemmascope", "params.safetensors", "b_enc", float("inf"), (7,)),
    ],
)
def test_nan_or_inf_weights_are_refused(tmp_path, w, layout, file, key, value, index):
    writers = {"llamascope": write_llamascope, "saelens": write_saelens, "gemmascope": write_gemmascope}
    folder = writers[layout](tmp_path / "s", w)
    if layout == "gemmascope":
        convert_npz(folder)
    _poison(folder / file, key, value, index)
    with pytest.raises(SAELoadError, match=rf"{file.split('/')[-1]}: tensor '{key}' \(float32\) has") as e:
        load(folder)
    assert "\n" not in str(e.value) and ("1 NaN" in str(e.value)) == (value != value)


def test_npz_nan_and_float16_overflow_are_refused(tmp_path, w):
    w16 = {**w, "W_enc": w["W_enc"].clone()}
    w16["W_enc"][1, 1] = 1e6  # finite in float32, inf in float16
    folder = write_gemmascope(tmp_path / "big", w16)
    assert load(folder).W_enc[1, 1] == 1e6
    with pytest.raises(SAELoadError, match=r"params\.npz: tensor 'W_enc' \(float16\) has 0 NaN and 1 inf"):
        load(folder, dtype="float16")
    bad = {**w, "threshold": w["threshold"].clone()}
    bad["threshold"][2] = float("nan")
    with pytest.raises(SAELoadError, match=r"params\.npz: tensor 'threshold' \(float32\) has 1 NaN"):
        load(write_gemmascope(tmp_path / "nan", bad))
    with pytest.raises(SAELoadError, match=r"params\.npz: tensor 'threshold'"):
        convert_npz(tmp_path / "nan")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("jump_relu_threshold", float("nan"), "field 'jump_relu_threshold' is nan, not a finite number"),
        ("jump_relu_threshold", "high", "field 'jump_relu_threshold' is 'high', not a number"),
        ("dataset_average_activation_norm", {"in": 0.0}, "field 'in' is 0.0, not a finite positive number"),
        ("dataset_average_activation_norm", {"in": 3.0, "out": -1}, "field 'out' is -1.0, not a finite pos"),
    ],
)
def test_llamascope_bad_numbers_are_refused(tmp_path, w, field, value, message):
    folder = write_llamascope(tmp_path / "ls", w, **{field: value})
    with pytest.raises(SAELoadError, match=rf"hyperparams\.json: {message}"):
        load(folder)


def test_scaling_factor_all_ones_or_refused(tmp_path, w):
    """sae-lens's rule (torch.allclose to ones): dropped when all ones, otherwise refused."""
    from safetensors.torch import load_file, save_file

    for layout, file in (("saelens", "sae_weights.safetensors"), ("gemmascope", "params.safetensors")):
        folder = (write_saelens if layout == "saelens" else write_gemmascope)(tmp_path / layout, w)
        if layout == "gemmascope":
            convert_npz(folder)
        tensors = load_file(str(folder / file))
        save_file({**tensors, "scaling_factor": torch.full((D_SAE,), 1 + 1e-7)}, str(folder / file))
        x = torch.randn(3, D_MODEL)
        assert torch.allclose(load(folder).encode(x), hand_encode(w, x), atol=1e-6)
        save_file({**tensors, "scaling_factor": torch.full((D_SAE,), 2.0)}, str(folder / file))
        with pytest.raises(SAELoadError, match=rf"{file}: scaling_factor is not all ones"):
            load(folder)
