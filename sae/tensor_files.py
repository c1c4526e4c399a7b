"""Reading an SAE's files: tensors from a safetensors file, a JSON config, a required field.

Every problem (missing file, truncated or corrupt file, missing key) is an `SAELoadError` naming
the file, so the CLI prints it as one line.
"""

from __future__ import annotations

import json
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
                out[ours] = t if dtype is None else t.to(dtype)
    except SAELoadError:
        raise
    except Exception as e:  # safetensors raises its own error types for truncated or corrupt files
        raise SAELoadError(f"{file}: cannot read safetensors file (truncated or corrupt?): {e}") from None
    return out


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


def tensor_keys(file: Path) -> set[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            return set(f.keys())
    except FileNotFoundError:
        raise SAELoadError(f"{file}: file not found") from None
    except Exception as e:
        raise SAELoadError(f"{file}: cannot read safetensors file (truncated or corrupt?): {e}") from None
