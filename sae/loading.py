"""Read an SAE from disk: one loader per file layout in a registry, the layout detected from the files.

Tensors go straight from the file to the target device and dtype, one tensor at a time through
`safetensors.safe_open` (the authors' loader converted weights element-wise in Python and hung for
hours). Peak extra memory is one tensor, so loading 31 layers never holds two copies of any of them.
Gemma Scope ships `params.npz`; `convert_npz` writes `params.safetensors` beside it once, and the
loader prefers that file afterwards.

Every problem with a file (missing, truncated, wrong key or shape, wrong d_model) is an
`SAELoadError` naming the file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.backends.devices import torch_dtype
from sae.model import SAE, SAEConfig, SAELoadError
from sae.saelens_config import RESID_HOOK, read_settings
from sae.tensor_files import (
    check_finite,
    check_unit_scaling,
    need,
    need_number,
    read_json,
    read_tensors,
    tensor_keys,
)


@dataclass(frozen=True)
class LayoutLoader:
    name: str
    detect: Callable[[Path], bool]
    load: Callable[[Path, torch.device, torch.dtype | None], SAE]


#: Layouts in detection order; add one with `register_layout`.
LAYOUTS: dict[str, LayoutLoader] = {}


def register_layout(name: str, detect: Callable[[Path], bool]):
    def wrap(fn: Callable[[Path, torch.device, torch.dtype | None], SAE]):
        LAYOUTS[name] = LayoutLoader(name, detect, fn)
        return fn

    return wrap


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    try:
        return torch_dtype(dtype)
    except ValueError as e:
        raise SAELoadError(f"SAE {e}") from None


def layer_of_hook(hook: str | None) -> int | None:
    """Block index whose output a hook point reads: blocks.L.hook_resid_post -> L, resid_pre -> L-1."""
    if not hook:
        return None
    m = RESID_HOOK.search(hook)
    if m is None:
        return None
    return int(m.group(1)) - (1 if m.group(2) == "pre" else 0)


# --- LlamaScope ---------------------------------------------------------------------------------


@register_layout("llamascope", lambda d: (d / "hyperparams.json").is_file())
def load_llamascope(folder: Path, device: torch.device, dtype: torch.dtype | None) -> SAE:
    """LlamaScope scales its inputs by s = sqrt(d_model) / dataset_average_activation_norm.in and
    stores `jump_relu_threshold` so that a feature fires when (s x) W_enc + b_enc > s * threshold:
    the threshold is multiplied by s here (as sae-lens's LlamaScope loader does)."""
    hp_file = folder / "hyperparams.json"
    hp = read_json(hp_file)
    d_model, d_sae = int(need(hp, "d_model", hp_file)), int(need(hp, "d_sae", hp_file))
    norm = hp.get("norm_activation", "dataset-wise")
    scale_in = scale_out = 1.0
    if norm == "dataset-wise":
        avg = need(hp, "dataset_average_activation_norm", hp_file)
        norm_in = need_number(avg, "in", hp_file, positive=True)
        norm_out = need_number(avg, "out", hp_file, positive=True) if "out" in avg else norm_in
        scale_in, scale_out = math.sqrt(d_model) / norm_in, math.sqrt(d_model) / norm_out
    elif norm not in (None, "none"):
        raise SAELoadError(f"{hp_file}: norm_activation {norm!r} not supported (only 'dataset-wise')")
    if hp.get("act_fn", "jumprelu") != "jumprelu":
        raise SAELoadError(f"{hp_file}: act_fn {hp['act_fn']!r} not supported (only 'jumprelu')")
    threshold = need_number(hp, "jump_relu_threshold", hp_file) * scale_in
    t = read_tensors(
        folder / "checkpoints" / "final.safetensors",
        {"enc": "encoder.weight", "b_enc": "encoder.bias", "dec": "decoder.weight", "b_dec": "decoder.bias"},
        device,
        dtype,
    )
    cfg = SAEConfig(
        layout="llamascope",
        path=str(folder),
        d_model=d_model,
        d_sae=d_sae,
        input_scale=scale_in,
        output_scale=scale_out,
        apply_b_dec_to_input=bool(hp.get("apply_decoder_bias_to_pre_encoder", False)),
        hook_name=hp.get("hook_point_in"),
        layer=layer_of_hook(hp.get("hook_point_in")),
        model_name=hp.get("model_name"),
    )
    # nn.Linear weights: encoder (d_sae, d_model), decoder (d_model, d_sae); .T is a view, no copy.
    sae = SAE(cfg, t["enc"].T, t["dec"].T, t["b_enc"], t["b_dec"], threshold)
    if hp.get("sparsity_include_decoder_norm", False):
        fold_decoder_norm(sae)
    return sae


def fold_decoder_norm(sae: SAE) -> None:
    """LlamaScope gates on pre * ||W_dec[f]||; fold the norm into the weights, in place, so the plain
    JumpReLU applies (same reconstruction, activations in decoder-norm units)."""
    norms = sae.W_dec.float().norm(dim=1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        fold_norms(sae, norms)


def fold_norms(sae: SAE, norms: torch.Tensor) -> None:
    """Scale feature f's encoder column and bias by norms[f] and its decoder row by 1 / norms[f]."""
    n = norms.to(sae.dtype)
    sae.W_enc.mul_(n)
    sae.b_enc.mul_(n)
    sae.W_dec.div_(n[:, None])


# --- Gemma Scope ---------------------------------------------------------------------------------

GEMMA_KEYS = {
    "W_enc": "W_enc", "W_dec": "W_dec", "b_enc": "b_enc", "b_dec": "b_dec", "threshold": "threshold",
}


@register_layout(
    "gemmascope", lambda d: (d / "params.safetensors").is_file() or (d / "params.npz").is_file()
)
def load_gemmascope(folder: Path, device: torch.device, dtype: torch.dtype | None) -> SAE:
    st = folder / "params.safetensors"
    if st.is_file():
        if "scaling_factor" in tensor_keys(st):
            check_unit_scaling(read_tensors(st, {"s": "scaling_factor"}, device, None)["s"], st)
        t = read_tensors(st, GEMMA_KEYS, device, dtype)
    else:
        t = {
            k: check_finite(v.to(device=device, dtype=dtype or v.dtype), folder / "params.npz", k)
            for k, v in read_npz(folder / "params.npz").items()
        }
    d_model, d_sae = t["W_enc"].shape if t["W_enc"].dim() == 2 else (0, 0)
    if not d_model:
        raise SAELoadError(f"{folder}: W_enc has shape {tuple(t['W_enc'].shape)}, expected (d_model, d_sae)")
    found = re.findall(r"layer_(\d+)", str(folder))  # Gemma Scope: .../layer_20/width_16k/average_l0_71
    cfg = SAEConfig(
        layout="gemmascope", path=str(folder), d_model=d_model, d_sae=d_sae,
        layer=int(found[-1]) if found else None,
    )
    return SAE(cfg, t["W_enc"], t["W_dec"], t["b_enc"], t["b_dec"], t["threshold"])


def read_npz(file: Path) -> dict[str, torch.Tensor]:
    """GEMMA_KEYS from a params.npz, checked like a safetensors file; a `scaling_factor` array must be
    all ones (sae-lens's Gemma 2 loader refuses any other, and so does this one)."""
    import numpy as np

    if not file.is_file():
        raise SAELoadError(f"{file}: file not found")
    try:
        with np.load(file) as z:
            missing = [k for k in GEMMA_KEYS if k not in z.files]
            if missing:
                raise SAELoadError(f"{file}: missing array(s) {missing}; the file has {sorted(z.files)}")
            if "scaling_factor" in z.files:
                check_unit_scaling(torch.from_numpy(np.asarray(z["scaling_factor"])), file)
            arrays = {k: torch.from_numpy(np.ascontiguousarray(z[k])) for k in GEMMA_KEYS}
            return {k: check_finite(v, file, k) for k, v in arrays.items()}
    except SAELoadError:
        raise
    except Exception as e:
        raise SAELoadError(f"{file}: cannot read npz file (truncated or corrupt?): {e}") from None


def convert_npz(folder: str | Path) -> Path:
    """Write Gemma Scope's `params.npz` as `params.safetensors` beside it (once; atomic)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    target = folder / "params.safetensors"
    if target.is_file():
        return target
    tmp = folder / ".params.safetensors.tmp"
    save_file(read_npz(folder / "params.npz"), str(tmp))
    tmp.rename(target)
    return target


# --- SAELens ------------------------------------------------------------------------------------


@register_layout(
    "saelens", lambda d: (d / "cfg.json").is_file() and (d / "sae_weights.safetensors").is_file()
)
def load_saelens(folder: Path, device: torch.device, dtype: torch.dtype | None) -> SAE:
    """cfg.json read as sae-lens reads it (`sae.saelens_config`); weights as its `load_from_disk`."""
    cfg_file, file = folder / "cfg.json", folder / "sae_weights.safetensors"
    s = read_settings(read_json(cfg_file), cfg_file)
    names = {"W_enc": "W_enc", "W_dec": "W_dec", "b_enc": "b_enc", "b_dec": "b_dec"}
    keys = tensor_keys(file)
    if s.architecture == "jumprelu":
        names["threshold"] = "threshold" if "threshold" in keys else "log_threshold"
    if "scaling_factor" in keys:
        names["scaling_factor"] = "scaling_factor"
    t = read_tensors(file, names, device, dtype)
    if "scaling_factor" in t:
        check_unit_scaling(t["scaling_factor"], file)
    threshold: torch.Tensor | float = 0.0
    if s.architecture == "jumprelu":
        threshold = t["threshold"].exp() if names["threshold"] == "log_threshold" else t["threshold"]
    cfg = SAEConfig(
        layout="saelens",
        path=str(folder),
        d_model=s.d_in,
        d_sae=s.d_sae,
        apply_b_dec_to_input=s.apply_b_dec_to_input,
        hook_name=s.hook_name,
        layer=layer_of_hook(s.hook_name),
        activation={"standard": "relu", "jumprelu": "jumprelu", "topk": "topk"}[s.architecture],
        k=s.k,
        model_name=s.model_name,
    )
    sae = SAE(cfg, t["W_enc"], t["W_dec"], t["b_enc"], t["b_dec"], threshold)
    if s.rescale_acts_by_decoder_norm:  # TopK picks on pre * ||W_dec[f]||, decodes a / ||W_dec[f]||
        fold_norms(sae, sae.W_dec.float().norm(dim=1))
    return sae


# --- entry point --------------------------------------------------------------------------------


def detect_layout(path: str | Path) -> tuple[str, Path]:
    """(layout name, folder) for an SAE folder, or for a weights file inside one."""
    p = Path(path)
    if p.is_file():
        p = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    if not p.is_dir():
        raise SAELoadError(f"{path}: no such SAE folder")
    for layout in LAYOUTS.values():
        if layout.detect(p):
            return layout.name, p
    raise SAELoadError(
        f"{p}: not an SAE folder (expected hyperparams.json + checkpoints/final.safetensors (LlamaScope), "
        "params.npz or params.safetensors (Gemma Scope), or cfg.json + sae_weights.safetensors (SAELens))"
    )


def check_folder(path: str | Path) -> None:
    """The cheap half of `load`: the folder's layout and its config file (cfg.json, hyperparams.json)
    read and checked, no weights; so a bad folder is refused before a model is loaded."""
    name, folder = detect_layout(path)
    if name == "saelens":
        read_settings(read_json(folder / "cfg.json"), folder / "cfg.json")
    elif name == "llamascope":
        hp_file = folder / "hyperparams.json"
        hp = read_json(hp_file)
        if not isinstance(hp, dict):
            raise SAELoadError(f"{hp_file}: not a JSON object")
        for key in ("d_model", "d_sae"):
            value = need(hp, key, hp_file)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise SAELoadError(f"{hp_file}: {key} {value!r} is not a positive integer")
        hook = hp.get("hook_point_in")
        if hook is not None and not isinstance(hook, str):
            raise SAELoadError(f"{hp_file}: hook_point_in {hook!r} is not a hook name")


def load(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    d_model: int | None = None,
    layer: int | None = None,
) -> SAE:
    """Load the SAE at `path` (any registered layout) onto `device` in `dtype` (None: the file's).

    `d_model` / `layer`, when given, are checked against the SAE (the model's width; the block the
    caller will read), so an SAE for another model or another layer fails here, by name.
    """
    name, folder = detect_layout(path)
    sae = LAYOUTS[name].load(folder, torch.device(device), as_dtype(dtype))
    if d_model is not None and sae.d_model != d_model:
        raise SAELoadError(
            f"{folder}: SAE d_model {sae.d_model} does not match the model's hidden size {d_model}"
        )
    if layer is not None and sae.cfg.layer is not None and sae.cfg.layer != layer:
        raise SAELoadError(
            f"{folder}: SAE reads the output of block {sae.cfg.layer} "
            f"({sae.cfg.hook_name or 'from its folder name'}),"
            f" but is used for layer {layer}"
        )
    return sae
