"""Reading an SAE's files: tensors from a safetensors file, a JSON config, a required field.

Every problem (missing file, truncated or corrupt file, missing key, a NaN or inf weight) is an
`SAELoadError` naming the file, so the CLI prints it as one line. A NaN weight would otherwise load
silently and turn every activation it touches into NaN, which feature statistics then count as
"constant".
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from sae.model import SAELoadError


def read_tensors(
    file: Path, names: dict[str, str], device: torch.device, dtype: torch.dtype | None
) -> dict[str, torch.Tensor]:
    """Tensors `names` (our name -> key in the file) from a safetensors file, on `device` in `dtype`."""
    from safetensors import safe_open

    if not file.is_file():
        raise SAELoadError(f"{file}: file not found")
    out: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(file), framework="pt", device=str(device)) as f:
            keys = set(f.keys())
            missing = [key for key in names.values() if key not in keys]
            if missing:
                raise SAELoadError(f"{file}: missing tensor(s) {missing}; the file has {sorted(keys)}")
            for ours, key in names.items():
                t = f.get_tensor(key)
                out[ours] = check_finite(t if dtype is None else t.to(dtype), file, key)
    except SAELoadError:
        raise
    except Exception as e:  # safetensors raises its own error types for truncated or corrupt files
        raise SAELoadError(f"{file}: cannot read safetensors file (truncated or corrupt?): {e}") from None
    return out


def check_finite(t: torch.Tensor, file: Path, key: str) -> torch.Tensor:
    """`t` itself; SAELoadError naming the file and tensor when a value is NaN or infinite (in the
    dtype it was loaded in: a float32 weight beyond float16's range becomes inf)."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        nan = int(torch.isnan(t).sum())
        raise SAELoadError(
            f"{file}: tensor {key!r} ({str(t.dtype).removeprefix('torch.')}) has {nan} NaN and "
            f"{int((~torch.isfinite(t)).sum()) - nan} infinite value(s)"
        )
    return t


def check_unit_scaling(t: torch.Tensor, file: Path, key: str = "scaling_factor") -> None:
    """A `scaling_factor` tensor is accepted only when it is all ones (to torch.allclose's default
    tolerance, as sae-lens checks it); any other value is a learned input scale, which sae-lens
    refuses for Gemma Scope and this package does not apply."""
    if not torch.allclose(t.float(), torch.ones_like(t, dtype=torch.float32)):
        raise SAELoadError(
            f"{file}: {key} is not all ones (a learned input scale; not supported, as in sae-lens)"
        )


def read_json(file: Path) -> dict:
    try:
        return json.loads(file.read_text())
    except FileNotFoundError:
        raise SAELoadError(f"{file}: file not found") from None
    except json.JSONDecodeError as e:
        raise SAELoadError(f"{file}: not valid JSON: {e}") from None


def need(cfg: dict, key: str, file: Path):
    if key not in cfg:
        raise SAELoadError(f"{file}: missing field {key!r}")
    return cfg[key]


def need_number(cfg: dict, key: str, file: Path, *, positive: bool = False) -> float:
    """A finite number (and > 0 when `positive`) from a config, by name."""
    value = need(cfg, key, file)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SAELoadError(f"{file}: field {key!r} is {value!r}, not a number") from None
    if not math.isfinite(x) or (positive and x <= 0):
        kind = "finite positive" if positive else "finite"
        raise SAELoadError(f"{file}: field {key!r} is {x}, not a {kind} number")
    return x


def tensor_keys(file: Path) -> set[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            return set(f.keys())
    except FileNotFoundError:
        raise SAELoadError(f"{file}: file not found") from None
    except Exception as e:
        raise SAELoadError(f"{file}: cannot read safetensors file (truncated or corrupt?): {e}") from None
