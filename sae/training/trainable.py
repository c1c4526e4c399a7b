"""The SAE that `harness sae train` optimises, and its export to the SAELens layout.

    pre   = (x - b_dec) @ W_enc + b_enc
    topk:     a = ReLU of the k largest entries of pre, 0 elsewhere           (L0 <= k by design)
    jumprelu: a = ReLU(pre) * (pre > threshold), threshold = exp(log_threshold) per feature
    x_hat = a @ W_dec + b_dec,  every row of W_dec kept at unit norm

Training sees inputs multiplied by one scalar `scale` (mean squared norm = d_model), so the
learning rate and the JumpReLU threshold do not depend on the model's residual norm. The export
folds that scalar into b_enc, b_dec and the threshold (activations divided by `scale`, W_enc and
the unit-norm W_dec untouched), so the files take raw residuals like any SAELens SAE.

JumpReLU trains its threshold through straight-through estimators with a rectangle kernel of
width `bandwidth` (Rajamanoharan et al. 2024, as in Gemma Scope): an L0 penalty (the step
function) moves the threshold up, the reconstruction moves it down. TopK adds the AuxK loss
(Gao et al. 2024): the `aux_k` largest dead latents reconstruct the residual error, which
revives features that stopped firing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from sae.training.config import TrainConfig

#: The sae-lens release whose `cfg.json` / weight names the export follows.
SAELENS_LAYOUT = "6.54.12"


def _rect(u: torch.Tensor) -> torch.Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    """ReLU(pre) * (pre > th); d/d th by the kernel estimate, d/d pre through the open gate."""

    @staticmethod
    def forward(ctx, pre, th, bandwidth):
        ctx.save_for_backward(pre, th)
        ctx.bandwidth = bandwidth
        return pre.relu() * (pre > th)

    @staticmethod
    def backward(ctx, grad):
        pre, th = ctx.saved_tensors
        bw = ctx.bandwidth
        th_grad = (-(th / bw) * _rect((pre - th) / bw) * grad).sum(0)
        return (pre > th) * (pre > 0) * grad, th_grad, None


class _Step(torch.autograd.Function):
    """(pre > th) as a float; d/d th by the kernel estimate, no gradient to pre."""

    @staticmethod
    def forward(ctx, pre, th, bandwidth):
        ctx.save_for_backward(pre, th)
        ctx.bandwidth = bandwidth
        return (pre > th).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, th = ctx.saved_tensors
        bw = ctx.bandwidth
        return None, (-(1.0 / bw) * _rect((pre - th) / bw) * grad).sum(0), None


class TrainableSAE(torch.nn.Module):
    """Parameters W_enc (d_model, d_sae), W_dec (d_sae, d_model), b_enc, b_dec [, log_threshold]."""

    def __init__(self, d_model: int, cfg: TrainConfig, generator: torch.Generator):
        super().__init__()
        self.cfg, self.d_model, self.d_sae = cfg, d_model, cfg.expansion * d_model
        w = torch.randn(self.d_sae, d_model, generator=generator)
        w = w / w.norm(dim=1, keepdim=True)
        self.W_dec = torch.nn.Parameter(w)
        self.W_enc = torch.nn.Parameter(w.T.clone())  # tied start: each feature reads what it writes
        self.b_enc = torch.nn.Parameter(torch.zeros(self.d_sae))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_model))
        if cfg.architecture == "jumprelu":
            self.log_threshold = torch.nn.Parameter(
                torch.full((self.d_sae,), float(cfg.init_threshold)).log()
            )

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_hat, active features per row, which features fired in the batch, pre-activations).

        TopK decodes its k (index, value) pairs with `embedding_bag`: no (batch, d_sae) matrix
        product, which on a CPU is most of a step's time."""
        pre = self.pre(x)
        if self.cfg.architecture == "topk":
            vals, idx = pre.topk(self.cfg.k, dim=-1, sorted=False)
            vals = vals.relu()
            x_hat = F.embedding_bag(idx, self.W_dec, per_sample_weights=vals, mode="sum") + self.b_dec
            on = vals > 0
            fired = torch.zeros(self.d_sae, dtype=torch.bool, device=x.device).index_fill_(0, idx[on], True)
            return x_hat, on.sum(-1), fired, pre
        a = _JumpReLU.apply(pre, self.log_threshold.exp(), self.cfg.bandwidth)
        return a @ self.W_dec + self.b_dec, (a > 0).sum(-1), (a > 0).any(0), pre

    def loss(self, x: torch.Tensor, dead: torch.Tensor, l0_weight: float) -> tuple[torch.Tensor, dict]:
        """Total loss and its parts; `dead` marks features that have not fired for a while."""
        x_hat, l0, fired, pre = self(x)
        err = x - x_hat
        mse = err.pow(2).sum(-1).mean() / self.d_model
        total, parts = mse, {"mse": float(mse.detach()), "l0": float(l0.float().mean()), "fired": fired}
        if self.cfg.architecture == "jumprelu":
            steps = _Step.apply(pre, self.log_threshold.exp(), self.cfg.bandwidth).sum(-1).mean()
            total = total + l0_weight * steps
        elif self.cfg.aux_coef > 0 and bool(dead.any()):
            total = total + self.cfg.aux_coef * self._aux_loss(err.detach(), pre, dead)
        return total, parts

    def _aux_loss(self, err: torch.Tensor, pre: torch.Tensor, dead: torch.Tensor) -> torch.Tensor:
        k = min(self.cfg.aux_k, int(dead.sum()))
        vals, idx = pre.masked_fill(~dead, float("-inf")).topk(k, dim=-1, sorted=False)
        err_hat = F.embedding_bag(idx, self.W_dec, per_sample_weights=vals.relu(), mode="sum")
        denom = (err - err.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-8)
        return (err - err_hat).pow(2).sum(-1).mean() / denom

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Drop the part of W_dec's gradient that would change row norms (they are renormalised anyway)."""
        if self.W_dec.grad is not None:
            w = self.W_dec
            self.W_dec.grad -= (self.W_dec.grad * w).sum(1, keepdim=True) * w

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def exported(self, scale: float) -> dict[str, torch.Tensor]:
        """SAELens tensors for raw (unscaled) inputs: b_enc, b_dec, threshold divided by `scale`."""
        out = {
            "W_enc": self.W_enc.detach().float().cpu().contiguous(),
            "W_dec": self.W_dec.detach().float().cpu().contiguous(),
            "b_enc": (self.b_enc.detach().float().cpu() / scale).contiguous(),
            "b_dec": (self.b_dec.detach().float().cpu() / scale).contiguous(),
        }
        if self.cfg.architecture == "jumprelu":
            out["threshold"] = (self.log_threshold.detach().float().cpu().exp() / scale).contiguous()
        return out


def saelens_cfg(cfg: TrainConfig, d_model: int, layer: int, model_name: str, metrics: dict) -> dict:
    """cfg.json as sae-lens 6 writes it for `jumprelu` / `topk` SAEs (SAE.save_model)."""
    out = {
        "d_in": d_model, "d_sae": cfg.expansion * d_model, "dtype": "float32", "device": "cpu",
        "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none",
        # sae-lens reads a config without metadata.sae_lens_version as pre-6.0 and rewrites it.
        "metadata": {"sae_lens_version": SAELENS_LAYOUT, "sae_lens_training_version": None,
                     "model_name": model_name, "hook_name": f"blocks.{layer}.hook_resid_post",
                     "trained_by": "harness sae train", "training": cfg.model_dump(), "metrics": metrics},
        "architecture": cfg.architecture,
    }
    if cfg.architecture == "topk":
        out |= {"k": cfg.k, "rescale_acts_by_decoder_norm": False}
    return out


def write_saelens(folder: Path, tensors: dict[str, torch.Tensor], cfg_json: dict) -> None:
    """`cfg.json` + `sae_weights.safetensors`, each written to a temporary name then renamed."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".sae_weights.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, folder / "sae_weights.safetensors")
    tmp = folder / ".cfg.json.tmp"
    tmp.write_text(json.dumps(cfg_json, indent=2) + "\n")
    os.replace(tmp, folder / "cfg.json")
