"""SAE analysis of the models that played: load SAEs, read the residual stream, compare groups.

Public API: `load(path, device=..., dtype=...) -> SAE`, `SAE`, `SAEConfig`, `SAELoadError`.
Attributes load lazily so that `harness --help` (which imports `sae.commands`) never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sae.loading import load
    from sae.model import SAE, SAEConfig, SAELoadError

__all__ = ["SAE", "SAEConfig", "SAELoadError", "load"]


def __getattr__(name: str):
    if name == "load":
        from sae.loading import load

        return load
    if name in ("SAE", "SAEConfig", "SAELoadError"):
        from sae import model

        return getattr(model, name)
    raise AttributeError(f"module 'sae' has no attribute {name!r}")
