"""MultiEMO's training objective as a distiller: CE + SWFC + Soft-HGR (Shi and Huang, "MultiEMO: An
Attention-Based Correlation-Aware Multimodal Fusion Framework for Emotion Recognition in
Conversations", ACL 2023, §3, its SWFC and Soft-HGR losses; the paper text was not at hand to
check equation numbers, so the formulas below were checked against the authors' Loss/*.py and
Train/TrainMultiEMO.py). Every term reads real utterances only, pooled over the batch's dialogues.

**SWFC** (sample-weighted focal contrastive loss) on the fused representations z_i (N, H), each
L2-normalised, with temperature τ, focusing parameter γ and sample-weight power λ:

    P_ij = exp(z_i·z_j / τ) / Σ_{k≠i} exp(z_i·z_k / τ)                    (over all other utterances)
    L_SWFC = −(1/N) Σ_i w_{y_i} · (1/|P(i)|) Σ_{j∈P(i)} (1 − P_ij)^γ log P_ij

P(i) are the other utterances with label y_i; an anchor without any contributes 0 (and still counts
in N), as in the authors' code. The class weights are w_c = (N_train / n_c)^λ, normalised to sum to
1: the inverse train frequency raised to λ. They come from the trainer's ``class_weights`` (the
multiemo recipe sets ``training.class_weights = inverse_frequency``, which is N_train / n_c); with
no class weights every class gets 1/C.

**Soft-HGR** (Wang et al., "An Efficient Approach to Informative Feature Extraction from Multimodal
Data", AAAI 2019, the Soft-HGR objective): for zero-mean features f, g (N, D),

    soft-HGR(f, g) = E[fᵀ g] − ½ tr(cov(f) cov(g))

estimated with the batch means removed and 1/(N − 1); the loss is −Σ over every pair of modalities
of the per-modality representations (MultiAttn's branch outputs). Maximising it maximises the
correlation between modalities. ``soft_hgr_variant = "multiemo_code"`` reproduces what the authors'
code computes instead: no centring, ``torch.cov`` of the (N, D) matrix (an N × N covariance between
utterances), the trace term divided by N, and the whole loss divided by N once more. For
unit-variance features that version prefers identical modalities to independent ones only while
N < 2·D² roughly (always the case for MultiEMO's D = 256; not for tiny hidden sizes).

**CE**: MultiEMO weights it too (0.2 IEMOCAP, 0.4 MELD) and leaves it unweighted by class, while the
trainer's task loss has weight 1 and uses ``class_weights``. So this distiller *replaces* the task
loss and returns its own ``task`` term = ce_weight · CE, class-weighted only with
``weighted_cross_entropy``. Returned terms: ``task``, ``swfc``, ``soft_hgr``, each already weighted.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import Batch, ModelOutput, component
from merc_bench.losses import masked_cross_entropy
from merc_bench_multiemo.recipe import PAPER


class MultiEMOLossesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ce_weight: float = Field(0.2, ge=0.0, le=1000, description="weight of the cross-entropy (MultiEMO: 0.2 IEMOCAP, 0.4 MELD)")
    swfc_weight: float = Field(0.4, ge=0.0, le=1000, description="weight of SWFC (0.4 IEMOCAP, 0.3 MELD)")
    soft_hgr_weight: float = Field(0.4, ge=0.0, le=1000, description="weight of Soft-HGR (0.4 IEMOCAP, 0.3 MELD)")
    temperature: float = Field(0.8, gt=0.0, le=1000, description="SWFC τ (0.8 IEMOCAP, 1.4 MELD)")
    focusing: float = Field(2.4, ge=0.0, le=100, description="SWFC γ (2.4 IEMOCAP, 2.0 MELD)")
    sample_weight_power: float = Field(
        1.1, ge=0.0, le=100, description="SWFC λ on the inverse class frequency (1.1 IEMOCAP, 1.2 MELD)"
    )
    weighted_cross_entropy: bool = Field(False, description="class-weight the CE too (MultiEMO: no)")
    soft_hgr_variant: Literal["wang2019", "multiemo_code"] = Field(
        "wang2019", description="Soft-HGR as defined by Wang et al. 2019, or as MultiEMO's code computes it"
    )


def swfc_class_weights(class_weights: torch.Tensor | None, classes: int, power: float, device) -> torch.Tensor:
    """w_c = class_weights_c^λ normalised to sum 1 (class_weights = N_train / n_c); uniform 1/C without."""
    if class_weights is None:
        return torch.full((classes,), 1.0 / classes, device=device)
    weights = class_weights.to(device=device, dtype=torch.float32).pow(power)  # (C,)
    return weights / weights.sum()


def sample_weighted_focal_contrastive(
    features: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor, temperature: float, focusing: float
) -> torch.Tensor:
    """L_SWFC over real utterances: features (N, D), labels (N,), class_weights (C,) → scalar."""
    count = features.shape[0]
    if count < 2:
        return features.sum() * 0.0  # no pair to contrast
    z = F.normalize(features.float(), dim=-1)  # (N, D)
    others = ~torch.eye(count, dtype=torch.bool, device=features.device)  # (N, N): k ≠ i
    similarity = (z @ z.T / temperature).masked_fill(~others, float("-inf"))  # (N, N)
    log_p = torch.log_softmax(similarity, dim=-1)  # row i: log P_ij over j ≠ i
    positive = (labels[:, None] == labels[None, :]) & others  # (N, N): j ∈ P(i)
    # Zero the log-probabilities outside P(i) before multiplying, so −∞ on the diagonal never meets 0.
    log_p = torch.where(positive, log_p, torch.zeros_like(log_p))
    focal = (1.0 - log_p.exp()).clamp_min(1e-12).pow(focusing) * log_p  # (N, N), zero outside P(i)
    per_anchor = focal.sum(dim=-1) / positive.sum(dim=-1).clamp_min(1)  # (N,): mean over P(i), 0 if empty
    return -(class_weights[labels] * per_anchor).sum() / count


def soft_hgr(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Wang et al. 2019: E[fᵀg] − ½ tr(cov f · cov g) for f, g (N, D), centred, unbiased (1/(N − 1))."""
    count = f.shape[0]
    if count < 2:
        return (f.sum() + g.sum()) * 0.0  # covariances are undefined for one sample
    f = f.float() - f.float().mean(dim=0)  # (N, D)
    g = g.float() - g.float().mean(dim=0)
    correlation = (f * g).sum() / (count - 1)
    covariance_f = f.T @ f / (count - 1)  # (D, D)
    covariance_g = g.T @ g / (count - 1)
    return correlation - 0.5 * (covariance_f * covariance_g).sum()  # tr(AB) = Σ A ⊙ B for symmetric B


def soft_hgr_as_in_multiemo_code(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The authors' code: mean f_i·g_i − tr(C_f C_g) / (2N), C = torch.cov of (N, D), an N × N matrix."""
    count = f.shape[0]
    f, g = f.float(), g.float()
    mapping = (f * g).sum(dim=-1).mean()
    covariance_f, covariance_g = torch.cov(f), torch.cov(g)  # (N, N): rows are treated as the variables
    return mapping - (covariance_f * covariance_g).sum() / count / 2


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this distiller's options."""
    return {
        "ce_weight": trial.suggest_float(f"{prefix}ce_weight", 0.1, 1.0),
        "swfc_weight": trial.suggest_float(f"{prefix}swfc_weight", 0.0, 1.0),
        "soft_hgr_weight": trial.suggest_float(f"{prefix}soft_hgr_weight", 0.0, 1.0),
        "temperature": trial.suggest_float(f"{prefix}temperature", 0.1, 2.0, log=True),
        "focusing": trial.suggest_float(f"{prefix}focusing", 0.0, 3.0),
        "sample_weight_power": trial.suggest_float(f"{prefix}sample_weight_power", 0.0, 1.5),
    }


@component("distiller", "multiemo-losses", config=MultiEMOLossesConfig, search_space=search_space, paper=PAPER,
           description="MultiEMO's objective: weighted CE + SWFC (fused) + Soft-HGR (modality pairs)")
class MultiEMOLosses(nn.Module):
    """(output, batch, class_weights) → {"task", "swfc", "soft_hgr"}: MultiEMO's weighted objective."""

    replaces_task_loss = True

    def __init__(self, config: MultiEMOLossesConfig) -> None:
        super().__init__()
        self.weights = {"task": config.ce_weight, "swfc": config.swfc_weight, "soft_hgr": config.soft_hgr_weight}
        self.temperature = config.temperature
        self.focusing = config.focusing
        self.sample_weight_power = config.sample_weight_power
        self.weighted_cross_entropy = config.weighted_cross_entropy
        self.pair_loss = soft_hgr if config.soft_hgr_variant == "wang2019" else soft_hgr_as_in_multiemo_code
        self.soft_hgr_variant = config.soft_hgr_variant

    def forward(
        self, *, output: ModelOutput, batch: Batch, class_weights: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        mask = batch.mask  # (B, L)
        labels = batch.labels[mask]  # (N,)
        ce_class_weights = class_weights if self.weighted_cross_entropy else None
        task = masked_cross_entropy(output.logits, batch.labels, mask, ce_class_weights)
        swfc_weights = swfc_class_weights(
            class_weights, output.logits.shape[-1], self.sample_weight_power, output.hidden.device
        )
        swfc = sample_weighted_focal_contrastive(
            output.hidden[mask], labels, swfc_weights, self.temperature, self.focusing
        )
        return {
            "task": self.weights["task"] * task,
            "swfc": self.weights["swfc"] * swfc,
            "soft_hgr": self.weights["soft_hgr"] * self.soft_hgr_loss(output.modality_hidden, mask),
        }

    def soft_hgr_loss(self, modality_hidden: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """−Σ over every pair of modalities of soft-HGR (0 with one modality)."""
        features = [hidden[mask] for hidden in modality_hidden.values()]  # each (N, H)
        total = features[0].new_zeros((), dtype=torch.float32) if features else torch.zeros(())
        for i in range(len(features)):
            for j in range(i + 1, len(features)):
                total = total - self.pair_loss(features[i], features[j])
        if self.soft_hgr_variant == "multiemo_code":
            total = total / max(int(mask.sum()), 1)
        return total
