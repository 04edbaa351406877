"""Focal loss as the task loss (Lin, Goyal, Girshick, He, Dollár, "Focal Loss for Dense Object
Detection", ICCV 2017, Eq. 5), which MMGCN (Hu et al., ACL 2021) trains with on MELD.

``form = "standard"`` (Lin et al.): per real utterance with true class y and p_y = softmax(logits)_y,
    FL = −α (1 − p_y)^γ log p_y,
averaged over real utterances. With class weights w (the run's ``training.class_weights``) the
average is Σ w_y FL / Σ w_y, the same weighting as the plain cross-entropy task loss.

``form = "mmgcn_code"``: the loss the MMGCN authors' code computes (γ = 2.5, α = 1), which is not
Lin et al.'s. With t the one-hot target and log p the log-softmax, it averages over utterances
and classes
    −α (1 − t ⊙ log p)^γ ⊙ log p,
that is, for the true class −(1 − log p_y)^γ log p_y (a weight that *grows* as p_y falls, without
bound) and for every other class −log p_c (which pushes every class's probability up). Offered
so that MMGCN's MELD numbers can be reproduced; the weighting by class is the same as above.

This loss replaces the trainer's cross-entropy (``replaces_task_loss``); it sees real utterances
only, so padded positions get no gradient.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import Batch, ModelOutput, component


class FocalLossConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gamma: float = Field(2.0, ge=0.0, le=10.0, description="γ: focusing strength (0 gives cross-entropy)")
    alpha: float = Field(1.0, gt=0.0, le=1000, description="α: constant scale of the loss")
    form: Literal["standard", "mmgcn_code"] = Field(
        "standard", description="Lin et al.'s focal loss, or the variant in MMGCN's code"
    )


def focal_loss_terms(logits: torch.Tensor, labels: torch.Tensor, gamma: float, form: str) -> torch.Tensor:
    """(N, C) logits and (N,) labels → (N,) per-utterance loss (without α)."""
    log_probs = F.log_softmax(logits.float(), dim=-1)  # (N, C)
    if form == "standard":
        true = log_probs.gather(1, labels[:, None]).squeeze(1)  # (N,): log p_y
        return -((1 - true.exp()) ** gamma) * true
    target = F.one_hot(labels, log_probs.shape[-1]).to(log_probs.dtype)  # (N, C)
    return (-((1 - target * log_probs) ** gamma) * log_probs).mean(dim=-1)


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this distiller's options."""
    return {"gamma": trial.suggest_float(f"{prefix}gamma", 0.5, 5.0)}


@component("distiller", "focal-loss", config=FocalLossConfig, search_space=search_space,
           paper="Lin et al., Focal Loss for Dense Object Detection, ICCV 2017 (used by MMGCN on MELD)")
class FocalLoss(nn.Module):
    """(model output, batch) → {"focal": scalar}, replacing the plain cross-entropy."""

    replaces_task_loss = True

    def __init__(self, config: FocalLossConfig) -> None:
        super().__init__()
        self.gamma = config.gamma
        self.alpha = config.alpha
        self.form = config.form

    def forward(
        self, *, output: ModelOutput, batch: Batch, class_weights: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        labels = batch.labels[batch.mask]  # (N,)
        losses = focal_loss_terms(output.logits[batch.mask], labels, self.gamma, self.form)  # (N,)
        if class_weights is None:
            return {"focal": self.alpha * losses.mean()}
        weights = class_weights.to(losses.dtype)[labels]  # (N,)
        return {"focal": self.alpha * (weights * losses).sum() / weights.sum()}
