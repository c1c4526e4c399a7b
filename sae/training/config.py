"""Settings of `harness sae train` and the metrics it writes beside each SAE (`metrics.json`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    """Everything that decides the trained weights; a checkpoint resumes only under the same values."""

    model_config = ConfigDict(extra="forbid")

    architecture: Literal["topk", "jumprelu"] = Field("topk", description="Activation function of the SAE.")
    expansion: int = Field(8, gt=0, description="d_sae = expansion x d_model.")
    k: int = Field(32, gt=0, description="TopK: active features per token.")
    l0_coef: float = Field(1e-3, ge=0, description="JumpReLU: weight of the L0 penalty (per active feature).")
    init_threshold: float = Field(0.5, gt=0, description="JumpReLU: initial threshold (on inputs scaled to "
                                  "mean squared norm d_model).")
    bandwidth: float = Field(0.1, gt=0, description="JumpReLU: width of the straight-through kernel.")
    aux_coef: float = Field(1 / 32, ge=0, description="TopK: weight of the AuxK loss on dead features.")
    aux_k: int = Field(256, gt=0, description="TopK: dead features used by the AuxK loss.")
    dead_tokens: int = Field(
        50_000, gt=0, description="A feature not active for this many training tokens is dead."
    )
    lr: float = Field(
        3e-3, gt=0, description="Adam learning rate (warm-up, then linear decay over the last 20%)."
    )
    steps: int = Field(400, gt=0, description="Optimizer steps.")
    batch_tokens: int = Field(2048, gt=0, description="Token positions per step (sampled with replacement).")
    seed: int = Field(0, description="Seeds the initialisation, the game split and every batch.")
    holdout: float = Field(0.2, gt=0, lt=1, description="Share of games held out for the metrics.")


class TrainMetrics(BaseModel):
    """What one layer's SAE achieves on the held-out games' prompts (all token positions)."""

    model_config = ConfigDict(extra="forbid")

    layer: int = Field(description="Block whose output the SAE reads (hidden_states[layer + 1]).")
    explained_variance: float = Field(
        description="1 - sum |x - x_hat|^2 / sum |x - mean x|^2 over held-out tokens."
    )
    mean_l0: float = Field(description="Mean number of active features per held-out token.")
    mse: float = Field(description="Mean squared error per dimension, raw residual units.")
    dead_features: int = Field(description="Features not active on any held-out token.")
    dead_in_training: int = Field(description="Features not active in the last dead_tokens training tokens.")
    d_sae: int = Field(description="Number of features.")
    train_tokens: int = Field(description="Token positions in the training games' prompts.")
    heldout_tokens: int = Field(description="Token positions in the held-out games' prompts.")
    train_games: int = Field(description="Games whose prompts were trained on.")
    heldout_games: int = Field(description="Games held out.")
    steps: int = Field(description="Optimizer steps taken.")
    final_loss: float = Field(description="Training loss, mean of the last 50 steps (scaled inputs).")
    scale: float = Field(description="Input scale used in training (folded into the saved weights).")
    train_wall_s: float = Field(description="Seconds spent training this layer, summed over resumed runs.")
