"""One sparse autoencoder over the residual stream: a config and a module with `encode`/`decode`.

Every supported layout (LlamaScope, Gemma Scope, SAELens) is loaded into this one class, so the
rest of the package never sees file formats. The layouts differ in four ways, all folded in here:

- orientation: stored as W_enc (d_model x d_sae) and W_dec (d_sae x d_model), whatever the file
  holds (LlamaScope's nn.Linear weights arrive as transposed *views*, not copies);
- activation: JumpReLU per feature (a scalar threshold is broadcast; a ReLU SAE has threshold 0),
  or TopK (the k largest pre-activations of a row, through a ReLU; sae-lens's `TopK`);
- norm scaling: LlamaScope trains on inputs multiplied by sqrt(d_model) / average norm, so
  `encode` multiplies by `input_scale` and `decode` divides by `output_scale` (the loader scales
  its stored threshold to match). Callers pass and get back raw residual-stream vectors and never
  see the factor.

    pre   = (x * input_scale - [b_dec if apply_b_dec_to_input]) @ W_enc + b_enc
    a     = relu(pre) * (pre > threshold)            (jumprelu, relu)
    a     = relu(pre) on the row's top k, else 0      (topk)
    x_hat = (a @ W_dec + b_dec) / output_scale

The ReLU before the JumpReLU mask matters only for a threshold below 0; sae-lens and the Gemma
Scope reference both apply it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.errors import HarnessError

Layout = Literal["llamascope", "gemmascope", "saelens", "memory"]
Activation = Literal["jumprelu", "relu", "topk"]


class SAELoadError(HarnessError):
    """An SAE file is missing, truncated, has a wrong shape or key, or does not fit the model."""

    exit_code = 2


class SAEConfig(BaseModel):
    """What was loaded, from where; shapes and the scaling an SAE applies."""

    model_config = ConfigDict(extra="forbid")

    layout: Layout = Field(description="File layout the SAE was read from.")
    path: str = Field(description="Folder (or file) it was read from; used in error messages.")
    d_model: int = Field(gt=0, description="Residual-stream width the SAE reads.")
    d_sae: int = Field(gt=0, description="Number of features.")
    input_scale: float = Field(1.0, gt=0, description="Multiplies x before encoding.")
    output_scale: float = Field(1.0, gt=0, description="Divides the reconstruction after decoding.")
    apply_b_dec_to_input: bool = Field(False, description="Subtract b_dec from the (scaled) input first.")
    hook_name: str | None = Field(
        None, description="Hook point named by the file, e.g. blocks.25.hook_resid_post."
    )
    layer: int | None = Field(
        None, description="Block index the SAE reads the output of, when the file says."
    )
    activation: Activation = Field(
        "jumprelu", description="jumprelu/relu: threshold mask; topk: the k largest."
    )
    k: int | None = Field(None, gt=0, description="Features kept per row by a TopK SAE; None otherwise.")
    model_name: str | None = Field(None, description="Model the SAE was trained on, when the file names one.")
    release: str | None = Field(None, description="SAELens release/SAE id, when loaded from a saelens: spec.")
    neuronpedia_id: str | None = Field(
        None, description="Its Neuronpedia id (the registry's), e.g. gemma-2-2b/20-gemmascope-res-16k."
    )

    @model_validator(mode="after")
    def _k_with_topk(self) -> SAEConfig:
        if (self.activation == "topk") != (self.k is not None):
            raise ValueError("k is set for (and only for) a topk SAE")
        return self


class SAE(torch.nn.Module):
    """A JumpReLU, ReLU or TopK sparse autoencoder. Tensors are buffers (no gradients, moved with `.to`)."""

    W_enc: torch.Tensor  # (d_model, d_sae)
    W_dec: torch.Tensor  # (d_sae, d_model)
    b_enc: torch.Tensor  # (d_sae,)
    b_dec: torch.Tensor  # (d_model,)
    threshold: torch.Tensor  # (d_sae,)

    def __init__(
        self,
        cfg: SAEConfig,
        W_enc: torch.Tensor,
        W_dec: torch.Tensor,
        b_enc: torch.Tensor,
        b_dec: torch.Tensor,
        threshold: torch.Tensor | float,
    ):
        super().__init__()
        self.cfg = cfg
        d_model, d_sae = cfg.d_model, cfg.d_sae
        if not isinstance(threshold, torch.Tensor) or threshold.dim() == 0:
            threshold = torch.as_tensor(threshold, dtype=W_enc.dtype, device=W_enc.device).expand(d_sae)
        expected = {
            "W_enc": (W_enc, (d_model, d_sae)),
            "W_dec": (W_dec, (d_sae, d_model)),
            "b_enc": (b_enc, (d_sae,)),
            "b_dec": (b_dec, (d_model,)),
            "threshold": (threshold, (d_sae,)),
        }
        for name, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise SAELoadError(f"{cfg.path}: {name} has shape {tuple(tensor.shape)}, expected {shape}")
            self.register_buffer(name, tensor, persistent=False)

    @property
    def d_model(self) -> int:
        return self.cfg.d_model

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    @property
    def device(self) -> torch.device:
        return self.W_enc.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_enc.dtype

    def pre_activations(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """(..., d_model) raw residual -> (..., d_sae) pre-activations, in the SAE's dtype.

        With `features` ((...,) ids, one per row), only row i's feature: (...,)."""
        x = x.to(device=self.device, dtype=self.dtype)
        if self.cfg.input_scale != 1.0:
            x = x * self.cfg.input_scale
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        if features is None:
            return x @ self.W_enc + self.b_enc
        return (x * self.W_enc[:, features].T).sum(-1) + self.b_enc[features]

    def encode(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """(..., d_model) raw residual -> (..., d_sae) feature activations.

        With `features` ((n,) ids, one per row of an (n, d_model) x), only row i's feature's
        activation, (n,), equal to `encode(x)[i, features[i]]`: patching edits one feature per row,
        and without TopK only those columns of W_enc are read."""
        if features is not None and self.cfg.activation == "topk":  # a row's top k depends on every feature
            return self.encode(x).gather(-1, features.to(self.device)[:, None]).squeeze(-1)
        pre = self.pre_activations(x, features)
        if self.cfg.activation == "topk":
            assert self.cfg.k is not None  # the config's validator requires k for topk
            values, indices = torch.topk(pre, k=min(self.cfg.k, self.d_sae), dim=-1, sorted=False)
            return torch.zeros_like(pre).scatter(-1, indices, values.relu())
        threshold = self.threshold if features is None else self.threshold[features]
        return pre.relu() * (pre > threshold)

    def decode(self, a: torch.Tensor) -> torch.Tensor:
        """(..., d_sae) activations -> (..., d_model) reconstruction in raw residual units."""
        out = a.to(device=self.device, dtype=self.dtype) @ self.W_dec + self.b_dec
        if self.cfg.output_scale != 1.0:
            out = out / self.cfg.output_scale
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def feature_direction(self, feature: int | torch.Tensor) -> torch.Tensor:
        """The residual-space change per unit of activation of `feature` (W_dec row, scale folded in):
        raising feature f by delta adds delta * feature_direction(f) to the reconstruction.
        A tensor of ids gives one row per id."""
        return self.W_dec[feature] / self.cfg.output_scale

    def extra_repr(self) -> str:
        return (
            f"layout={self.cfg.layout}, d_model={self.d_model}, d_sae={self.d_sae}, "
            f"path={Path(self.cfg.path).name}"
        )
