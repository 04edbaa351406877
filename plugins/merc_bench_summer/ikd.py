"""Interactive Knowledge Distillation (SUMMER, §III-F, eqs. 7–10) from a frozen unimodal teacher.

The teacher is a registered recipe restricted to one modality (``distiller.teacher.*``): by default
recipe ``sdt`` on ``text``, i.e. SDT's "original attention" model on the text features alone — the
text row of the paper's Table I, which motivates text as the teacher (§IV-E a). It trains on its
own schedule: the teacher recipe's published settings for the dataset family (SDT: MELD lr 5e-6,
batch 8, 50 epochs; IEMOCAP lr 1e-4, batch 16, 150 epochs, class weights), each overridable
(``teacher.epochs``, ``teacher.lr``, ``teacher.batch_size``, ``teacher.hidden_size``), not on the
student's. :mod:`merc_bench.teachers` trains it first on the student's split and seed, keeps its
best dev epoch (never test), caches it, freezes it and hands it to this distiller
(``attach_teacher``). Per batch:

* p_tea = softmax(teacher(batch)) — the teacher's own prediction;
* p_st = softmax(teacher.head(adapter(h))) — the teacher's classifier applied to the student's
  intermediate features h. We take h = the student's **fused representation** (the input of its
  prediction head); ``adapter`` is a learned linear map when the teacher's hidden size differs and
  the identity otherwise;
* L_cross = KL(p_tea ‖ p_st), summed over classes, averaged over real utterances (eq. 7);
* L_align = CE(p_st, ground truth) (eq. 8), class-weighted like the task loss;
* L_smooth = −Σ_j gt_j log p_j on the student's own prediction with gt = 1 − ε for the true class and
  ε / (C − 1) for the others (eq. 9), class-weighted like the task loss too: each utterance counts
  with its true class's weight and the mean divides by the sum of those weights (SDT's
  ``MaskedNLLLoss`` weighting; with ε → 0 it is the weighted task cross-entropy);
* L_IKD = k1·L_smooth + k2·L_align + k3·L_cross (eq. 10).

L_smooth is the student's task loss, so this distiller *replaces* the trainer's plain
cross-entropy (``replaces_task_loss``) instead of adding to it. Gradients reach the student (and the
adapter) through the frozen teacher classifier; the teacher's weights never change.

``self_distillation_temperature`` (off by default, as in the paper, whose objective has no other
distillation term) adds SDT's self-distillation terms beside IKD's — for every modality head the
class-weighted cross-entropy ``ce_<m>`` and KL(softmax(fused/T) ‖ softmax(head_m/T)) ``kl_<m>``,
weights 1, fused logits not detached, no T² (SDT's choices) — so the Table IV ablation can *add* IKD
to SDT's objective instead of replacing it (``ikd=add`` in the components grid). Plugins do not
import each other, so these two terms are computed here with the shared losses rather than by
SDT's distiller; a test checks that they equal SDT's.
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


class TeacherOptions(BaseModel):
    """``distiller.teacher.*``: which model the teacher is and its own schedule (None: the teacher recipe's)."""

    model_config = ConfigDict(extra="forbid")

    recipe: str = Field("sdt", max_length=200,
                        description="the registered recipe the teacher is, restricted to `modality`")
    modality: str = Field("text", max_length=100, description="the teacher's one modality")
    # The bounds are the run configuration's own (merc_bench.config.TrainingConfig / ModelConfig).
    epochs: int | None = Field(None, gt=0, le=100_000,
                               description="teacher epochs (default: the teacher recipe's for the family)")
    lr: float | None = Field(None, gt=0, le=10, allow_inf_nan=False,
                             description="teacher learning rate (default: the teacher recipe's for the family)")
    batch_size: int | None = Field(None, gt=0, le=100_000,
                                   description="teacher dialogues per batch (default: the teacher recipe's)")
    hidden_size: int | None = Field(None, gt=0, le=65536,
                                    description="teacher hidden size (default: the teacher recipe's)")


class IKDConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    smoothing: float = Field(0.1, gt=0.0, lt=1.0, description="ε of the label-smoothed loss")
    smooth_weight: float = Field(0.4, ge=0.0, le=1000, description="k1")
    align_weight: float = Field(0.3, ge=0.0, le=1000, description="k2")
    cross_weight: float = Field(0.3, ge=0.0, le=1000, description="k3")
    teacher: TeacherOptions = Field(default_factory=TeacherOptions, description="the frozen teacher")
    self_distillation_temperature: float | None = Field(
        None, gt=0, le=1000, allow_inf_nan=False,
        description="add SDT's self-distillation terms at this temperature (needs model.modality_heads); "
        "None: IKD alone, the paper's objective")


#: Training settings the teacher takes from the student's run: how it runs and how an epoch is
#: selected, not what it learns with (its schedule is its recipe's or ``distiller.teacher.*``).
STUDENT_EXECUTION = ("precision", "compile", "selection_metric")


def label_smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                                 smoothing: float, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 9 over real utterances: targets 1 − ε (true class) and ε / (C − 1) (others).

    With ``weight`` (C,) each utterance counts with its true class's weight and the mean is
    Σ w_y · L / Σ w_y, the weighting of :func:`merc_bench.losses.masked_cross_entropy`.
    """
    log_probs = F.log_softmax(logits[mask].float(), dim=-1)  # (N, C)
    classes = log_probs.shape[-1]
    real_labels = labels[mask]  # (N,)
    targets = torch.full_like(log_probs, smoothing / (classes - 1))
    targets.scatter_(1, real_labels.unsqueeze(1), 1.0 - smoothing)
    per_utterance = -(targets * log_probs).sum(dim=-1)  # (N,)
    if weight is None:
        return per_utterance.mean()
    utterance_weight = weight.to(per_utterance.dtype)[real_labels]  # (N,)
    return (utterance_weight * per_utterance).sum() / utterance_weight.sum()


@component("distiller", "ikd", config=IKDConfig, paper=PAPER)
class InteractiveKnowledgeDistillation(nn.Module):
    """(student output, batch) → {"smooth", "align", "cross"} with a frozen teacher attached."""

    replaces_task_loss = True

    def __init__(self, config: IKDConfig, *, hidden_size: int, modalities: tuple[str, ...] | None = None) -> None:
        super().__init__()
        teacher_modality = config.teacher.modality
        if modalities is not None and teacher_modality not in modalities:
            # The teacher reads its modality from the student's batches, which hold only the run's modalities.
            raise ValueError(
                f"the teacher reads {teacher_modality!r}, which this run leaves out (modalities: "
                f"{', '.join(modalities)}); add it to --modalities or set distiller.teacher.modality to one of them"
            )
        self.hidden_size = hidden_size
        self.modalities = tuple(modalities or ())
        self.smoothing = config.smoothing
        self.weights = {"smooth": config.smooth_weight, "align": config.align_weight, "cross": config.cross_weight}
        self.teacher_options = config.teacher
        self.self_distillation_temperature = config.self_distillation_temperature
        self.adapter: nn.Module = nn.Identity()
        self.teacher: nn.Module | None = None

    def teacher_overrides(self, student: dict[str, Any], recipe: Any) -> dict[str, Any]:
        """The teacher's run configuration: ``recipe(name)`` (a recipe's values for the student's dataset
        family) of the teacher recipe on its one modality, with its own schedule; from the student's
        run (a dict of RunConfig fields) only how it runs (:data:`STUDENT_EXECUTION`)."""
        options = self.teacher_options
        values = recipe(options.recipe)
        training = dict(values["training"])
        training.update({name: student["training"][name] for name in STUDENT_EXECUTION if name in student["training"]})
        training.update({name: getattr(options, name) for name in ("epochs", "lr", "batch_size")
                         if getattr(options, name) is not None})
        model = dict(values["model"])
        if options.hidden_size is not None:
            model["hidden_size"] = options.hidden_size
        return {slot: values[slot] for slot in ("encoder", "mixer", "fuser", "distiller")} | {
            "recipe": f"{options.recipe}[{options.modality}]", "modalities": [options.modality],
            "model": model, "training": training,
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
        terms = {
            "smooth": self.weights["smooth"]
            * label_smoothed_cross_entropy(output.logits, batch.labels, mask, self.smoothing, class_weights),
            "align": self.weights["align"]
            * masked_cross_entropy(student_in_teacher_space, batch.labels, mask, class_weights),
            "cross": self.weights["cross"] * masked_kl_divergence(student_in_teacher_space, teacher_logits, mask),
        }
        if self.self_distillation_temperature is not None:
            terms.update(self._self_distillation(output, batch, class_weights))
        return terms

    def _self_distillation(self, output: ModelOutput, batch: Batch,
                           class_weights: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """SDT's terms per modality head: class-weighted CE and KL from the (not detached) fused logits."""
        if not output.modality_logits:
            raise ValueError("ikd with self_distillation_temperature needs per-modality heads: set "
                             "model.modality_heads=true")
        terms = {}
        for modality in self.modalities:
            head = output.modality_logits[modality]  # (B, L, C)
            terms[f"ce_{modality}"] = masked_cross_entropy(head, batch.labels, batch.mask, class_weights)
            terms[f"kl_{modality}"] = masked_kl_divergence(head, output.logits, batch.mask,
                                                           self.self_distillation_temperature)
        return terms
