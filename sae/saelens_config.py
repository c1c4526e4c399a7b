"""A SAELens `cfg.json` read the way sae-lens 6 reads it, the pre-6.0 layouts included.

sae-lens 6 (`handle_config_defaulting`) treats a config without a `sae_lens_version` of 6 or more
as written by an older release and fills it in: `hook_point` is the old `hook_name`,
`activation_fn_str` the old `activation_fn`, `architecture` defaults to `standard`, an
`activation_fn` of `topk` with `activation_fn_kwargs.k` makes a TopK SAE, and a boolean
`normalize_activations` means `expected_average_only_in` or `none`. In every version
`apply_b_dec_to_input` defaults to True (its dataclass default). A 6.x config keeps `hook_name`
and `model_name` under `metadata`.

Settings this package cannot reproduce are refused with one line naming the file and the key,
never loaded as something else: run-time normalisation (layer norm, whitening, constant norm
rescale), an unfolded `expected_average_only_in` factor (sae-lens applies none at load time, so
the SAE expects inputs scaled by a number the folder does not hold), attention-head SAEs, and
hooks that do not read the residual stream.

Pure: a dict in, a `SAELensSettings` out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sae.model import SAELoadError

Architecture = Literal["standard", "jumprelu", "topk"]
#: Hooks whose value is the residual stream this package reads (docs/protocol.md §3).
RESID_HOOK = re.compile(r"blocks\.(\d+)\.hook_resid_(post|pre)$")
PRE_6_RENAMES = {
    "hook_point": "hook_name",
    "hook_point_head_index": "hook_head_index",
    "activation_fn_str": "activation_fn",
}


class SAELensSettings(BaseModel):
    """What a SAELens folder's cfg.json asks for, after sae-lens's own defaulting."""

    model_config = ConfigDict(extra="forbid")

    architecture: Architecture = Field(description="standard (ReLU), jumprelu or topk.")
    d_in: int = Field(gt=0, description="Residual width the SAE reads.")
    d_sae: int = Field(gt=0, description="Number of features.")
    apply_b_dec_to_input: bool = Field(description="Subtract b_dec from the input before encoding.")
    k: int | None = Field(None, gt=0, description="Features kept per row (topk only).")
    rescale_acts_by_decoder_norm: bool = Field(False, description="TopK on pre * ||W_dec[f]|| (topk only).")
    hook_name: str | None = Field(None, description="Hook point the SAE was trained on.")
    model_name: str | None = Field(None, description="Model the SAE was trained on.")
    pre_6: bool = Field(description="Read as a config written by sae-lens < 6.0.")


def written_before_6(raw: dict) -> bool:
    """As sae-lens decides it: no `sae_lens_version` (top level or in metadata), or one below 6."""
    meta = raw.get("metadata")
    version = raw.get("sae_lens_version") or (meta if isinstance(meta, dict) else {}).get("sae_lens_version")
    if not version:
        return True
    major = re.match(r"\s*(\d+)", str(version))
    return major is None or int(major.group(1)) < 6


def _refuse(file: Path, key: str, value, why: str) -> SAELoadError:
    return SAELoadError(f"{file}: {key} {value!r} not supported ({why})")


def read_settings(raw: dict, file: Path) -> SAELensSettings:
    """The settings of a cfg.json (already parsed) named `file`; SAELoadError on what is refused."""
    if not isinstance(raw, dict):
        raise SAELoadError(f"{file}: not a JSON object")
    pre_6 = written_before_6(raw)
    cfg = {PRE_6_RENAMES.get(k, k): v for k, v in raw.items()} if pre_6 else dict(raw)
    meta = cfg.get("metadata") or {}
    names = {v: k for k, v in PRE_6_RENAMES.items()} if pre_6 else {}  # our key -> the file's key
    for key in ("d_in", "d_sae"):
        if key not in cfg:
            raise SAELoadError(f"{file}: missing field {key!r}")
        if not _positive_int(cfg[key]):
            raise SAELoadError(f"{file}: {names.get(key, key)} {cfg[key]!r} is not a positive integer")
    if not isinstance(meta, dict):
        raise SAELoadError(f"{file}: metadata {meta!r} is not a JSON object")
    for key in ("activation_fn_kwargs",):
        if not isinstance(cfg.get(key) or {}, dict):
            raise SAELoadError(f"{file}: {key} {cfg[key]!r} is not a JSON object")
    arch = _architecture(cfg, file, pre_6, names)
    _check_normalization(cfg.get("normalize_activations"), file)
    if cfg.get("reshape_activations", "none") not in ("none", None):
        raise _refuse(file, "reshape_activations", cfg["reshape_activations"], "attention-head SAEs")
    head = cfg.get("hook_head_index", meta.get("hook_head_index"))
    if head is not None:
        raise _refuse(file, names.get("hook_head_index", "hook_head_index"), head, "attention-head SAEs")
    if cfg.get("finetuning_scaling_factor"):
        raise _refuse(file, "finetuning_scaling_factor", True, "a learned input scale")
    hook = cfg.get("hook_name") or meta.get("hook_name")
    if hook and (not isinstance(hook, str) or not RESID_HOOK.search(hook)):
        raise _refuse(file, names.get("hook_name", "hook_name"), hook, "only blocks.L.hook_resid_post/pre")
    k = None
    if arch == "topk":
        k = (cfg.get("activation_fn_kwargs") or {}).get("k") if pre_6 else cfg.get("k", 100)
        if not _positive_int(k):
            raise _refuse(file, "k", k, "a topk SAE's k is a positive integer")
    model = cfg.get("model_name") or meta.get("model_name")
    if model is not None and not isinstance(model, str):
        raise _refuse(file, "model_name", model, "a model's name is a string")
    return SAELensSettings(
        architecture=arch,
        d_in=int(cfg["d_in"]),
        d_sae=int(cfg["d_sae"]),
        apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
        k=k,
        rescale_acts_by_decoder_norm=bool(cfg.get("rescale_acts_by_decoder_norm", False)) and arch == "topk",
        hook_name=hook or None,
        model_name=model,
        pre_6=pre_6,
    )


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _architecture(cfg: dict, file: Path, pre_6: bool, names: dict[str, str]) -> Architecture:
    if not pre_6 and "architecture" not in cfg:
        raise SAELoadError(f"{file}: missing field 'architecture' (required by sae-lens >= 6)")
    arch = cfg.get("architecture", "standard")
    if pre_6:
        fn = cfg.get("activation_fn", "relu")
        key = names.get("activation_fn", "activation_fn")
        if fn not in ("relu", "topk"):
            raise _refuse(file, key, fn, "relu or topk")
        if fn == "topk":
            if (cfg.get("activation_fn_kwargs") or {}).get("k") is None:
                raise _refuse(file, key, fn, "a topk SAE needs activation_fn_kwargs.k")
            arch = "topk"
    if arch not in ("standard", "jumprelu", "topk"):
        raise _refuse(file, "architecture", arch, "standard, jumprelu or topk")
    return arch


def _check_normalization(norm, file: Path) -> None:
    if isinstance(norm, bool):  # sae-lens < 6: True meant expected_average_only_in
        norm = "expected_average_only_in" if norm else "none"
    if norm in (None, "none"):
        return
    if norm == "expected_average_only_in":
        raise _refuse(
            file, "normalize_activations", norm,
            "the scaling factor is not in the folder and sae-lens applies none when loading it; fold it "
            "into the weights (sae-lens fold_activation_norm_scaling_factor) and set 'none'",
        )
    raise _refuse(file, "normalize_activations", norm, "only 'none'")
