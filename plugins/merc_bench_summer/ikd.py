"""Interactive Knowledge Distillation (SUMMER, §III-F, eqs. 7–10) from a frozen unimodal teacher.

The teacher is a unimodal model — by default the text modality through SDT's "original attention"
path: encoder → intra-modal transformer → classifier head (the paper's Table I motivates text).
The trainer trains it first, on the same split with the same trainer and seed, caches it, freezes
it and hands it to this distiller (``attach_teacher``). Per batch:

* p_tea = softmax(teacher(batch)) — the teacher's own prediction;
* p_st = softmax(teacher.head(adapter(h))) — the teacher's classifier applied to the student's
  intermediate features h. We take h = the student's **fused representation** (the input of its
  prediction head); ``adapter`` is a learned linear map when the teacher's hidden size differs and
  the identity otherwise;
* L_cross = KL(p_tea ‖ p_st), summed over classes, averaged over real utterances (eq. 7);
* L_align = CE(p_st, ground truth) (eq. 8), class-weighted like the task loss;
* L_smooth = −Σ_j gt_j log p_j on the student's own prediction with gt = 1 − ε for the true class and
  ε / (C − 1) for the others (eq. 9);
* L_IKD = k1·L_smooth + k2·L_align + k3·L_cross (eq. 10).

L_smooth is the student's task loss, so this distiller *replaces* the trainer's plain
cross-entropy (``replaces_task_loss``) instead of adding to it. Gradients reach the student (and the
adapter) through the frozen teacher classifier; the teacher's weights never change.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import Batch, ModelOutput, component
from merc_bench.losses import masked_cross_entropy, masked_kl_divergence
from merc_bench_summer.recipe import PAPER


class IKDConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    smoothing: float = Field(0.1, gt=0.0, lt=1.0, description="ε of the label-smoothed loss")
    smooth_weight: float = Field(0.4, ge=0.0, le=1000, description="k1")
    align_weight: float = Field(0.3, ge=0.0, le=1000, description="k2")
    cross_weight: float = Field(0.3, ge=0.0, le=1000, description="k3")
    teacher_modality: str = Field("text", max_length=100, description="the teacher's one modality")
    teacher_mixer: str = Field("transformer", max_length=200, description="the teacher's intra-modal mixer (SDT's)")
    teacher_epochs: int | None = Field(None, gt=0, le=100_000, description="teacher epochs (default: the student's)")


def label_smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                                 smoothing: float) -> torch.Tensor:
    """Eq. 9 over real utterances: targets 1 − ε (true class) and ε / (C − 1) (others)."""
    log_probs = F.log_softmax(logits[mask].float(), dim=-1)  # (N, C)
    classes = log_probs.shape[-1]
    targets = torch.full_like(log_probs, smoothing / (classes - 1))
    targets.scatter_(1, labels[mask].unsqueeze(1), 1.0 - smoothing)
    return -(targets * log_probs).sum(dim=-1).mean()


@component("distiller", "ikd", config=IKDConfig, paper=PAPER)
class InteractiveKnowledgeDistillation(nn.Module):
    """(student output, batch) → {"smooth", "align", "cross"} with a frozen teacher attached."""

    replaces_task_loss = True

    def __init__(self, config: IKDConfig, *, hidden_size: int, modalities: tuple[str, ...] | None = None) -> None:
        super().__init__()
        teacher_modality = config.teacher_modality
        if modalities is not None and teacher_modality not in modalities:
            # The teacher reads its modality from the student's batches, which hold only the run's modalities.
            raise ValueError(
                f"the teacher reads {teacher_modality!r}, which this run leaves out (modalities: "
                f"{', '.join(modalities)}); add it to --modalities or set distiller.teacher_modality to one of them"
            )
        self.hidden_size = hidden_size
        self.smoothing = config.smoothing
        self.weights = {"smooth": config.smooth_weight, "align": config.align_weight, "cross": config.cross_weight}
        self.teacher_modality = teacher_modality
        self.teacher_mixer = config.teacher_mixer
        self.teacher_epochs = config.teacher_epochs
        self.adapter: nn.Module = nn.Identity()
        self.teacher: nn.Module | None = None

    def teacher_overrides(self, student: dict[str, Any]) -> dict[str, Any]:
        """The teacher's run configuration, derived from the student's (a dict of RunConfig fields)."""
        mixer_config = dict(student["mixer"]["config"]) if student["mixer"]["name"] == self.teacher_mixer else {}
        training = dict(student["training"])
        if self.teacher_epochs is not None:
            training["epochs"] = self.teacher_epochs
        return {
            "modalities": [self.teacher_modality],
            "mixer": {"name": self.teacher_mixer, "config": mixer_config},
            "fuser": {"name": "mean", "config": {}},
            "distiller": {"name": "none", "config": {}},
            "model": {**student["model"], "modality_heads": False, "prediction": "fused"},
            "training": training,
        }

    def attach_teacher(self, teacher: nn.Module, teacher_hidden_size: int) -> None:
        """Freeze ``teacher`` and use it from now on; adds an adapter if hidden sizes differ."""
        teacher.eval()
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
        self.teacher = teacher
        if teacher_hidden_size != self.hidden_size:
            self.adapter = nn.Linear(self.hidden_size, teacher_hidden_size).to(next(teacher.parameters()).device)

    def train(self, mode: bool = True) -> InteractiveKnowledgeDistillation:
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # the teacher stays deterministic (no dropout) while the student trains
        return self

    def forward(
        self, *, output: ModelOutput, batch: Batch, class_weights: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        if self.teacher is None:
            raise RuntimeError("IKD needs a teacher: the pipeline (merc_bench.pipeline.train_seed) attaches one before "
                               "training the student")
        mask = batch.mask
        with torch.no_grad():
            teacher_logits = self.teacher(batch).logits  # (B, L, C): p_tea
        student_in_teacher_space = self.teacher.head(self.adapter(output.hidden))  # (B, L, C): p_st
        return {
            "smooth": self.weights["smooth"]
            * label_smoothed_cross_entropy(output.logits, batch.labels, mask, self.smoothing),
            "align": self.weights["align"]
            * masked_cross_entropy(student_in_teacher_space, batch.labels, mask, class_weights),
            "cross": self.weights["cross"] * masked_kl_divergence(student_in_teacher_space, teacher_logits, mask),
        }
