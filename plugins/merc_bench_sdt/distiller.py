"""SDT's self-distillation (Ma et al. 2023, §III-E, eqs. for L_task and L_KD; reference-models.md §2).

Loss terms added to the trainer's task loss CE(fused):

* ``ce_<m>``: class-weighted cross-entropy of each modality head (the "unimodal" task losses);
* ``kl_<m>``: KL(softmax(fused/T) ‖ softmax(head_m/T)) summed over classes and averaged over real
  utterances — the fused prediction teaches each modality head.

As in SDT's code: every weight is 1, the fused (teacher) logits are **not** detached, and there is
no T² factor. KL is computed on real utterances only (see :mod:`merc_bench.losses`).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import Batch, ModelOutput, component
from merc_bench.losses import masked_cross_entropy, masked_kl_divergence
from merc_bench_sdt.recipe import PAPER


class SelfDistillationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, gt=0, le=1000, description="T: SDT uses 1 on IEMOCAP, 8 on MELD")
    unimodal_weight: float = Field(1.0, ge=0, le=1000, description="weight of each modality head's cross-entropy")
    kl_weight: float = Field(1.0, ge=0, le=1000, description="weight of each KL term")
    detach_teacher: bool = Field(False, description="stop gradients through the fused logits (SDT: no)")


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this distiller's options."""
    return {
        "temperature": trial.suggest_categorical(f"{prefix}temperature", [1.0, 2.0, 4.0, 8.0]),
        "kl_weight": trial.suggest_float(f"{prefix}kl_weight", 0.1, 2.0),
    }


@component("distiller", "self-distillation", config=SelfDistillationConfig, search_space=search_space,
           paper=PAPER)
class SelfDistillation(nn.Module):
    """(model output, batch) → {"ce_<m>": ..., "kl_<m>": ...} for every modality head."""

    def __init__(self, config: SelfDistillationConfig, *, modalities: tuple[str, ...]) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.temperature = config.temperature
        self.unimodal_weight = config.unimodal_weight
        self.kl_weight = config.kl_weight
        self.detach_teacher = config.detach_teacher

    def forward(
        self, *, output: ModelOutput, batch: Batch, class_weights: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        if not output.modality_logits:
            raise ValueError("self-distillation needs per-modality heads: set model.modality_heads=true")
        teacher = output.logits.detach() if self.detach_teacher else output.logits
        terms = {}
        for modality in self.modalities:
            student = output.modality_logits[modality]  # (B, L, C)
            terms[f"ce_{modality}"] = self.unimodal_weight * masked_cross_entropy(
                student, batch.labels, batch.mask, class_weights
            )
            terms[f"kl_{modality}"] = self.kl_weight * masked_kl_divergence(
                student, teacher, batch.mask, self.temperature
            )
        return terms
