"""Loss helpers shared by the trainer and distillers. All work on real utterances only.

Selecting the real rows (rather than multiplying padded rows by a zero mask, as SDT's reference
code does) keeps values and gradients identical and avoids the NaN gradient that ``kl_div`` gives
for a target of exactly 0 (see reference-models.md §2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["masked_cross_entropy", "masked_kl_divergence"]


def masked_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Class-weighted mean cross-entropy over real utterances.

    logits (B, L, C), labels (B, L), mask (B, L) bool. With ``weight`` the mean is
    Σ w_y · CE / Σ w_y, exactly SDT's ``MaskedNLLLoss``.
    """
    return F.cross_entropy(logits[mask].float(), labels[mask], weight=weight)


def masked_kl_divergence(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """KL(softmax(teacher/T) ‖ softmax(student/T)) summed over classes, averaged over real utterances.

    The teacher is not detached (SDT trains both ends of the KL); no T² factor (SDT's choice).
    """
    student = F.log_softmax(student_logits[mask].float() / temperature, dim=-1)  # (N, C)
    teacher = F.softmax(teacher_logits[mask].float() / temperature, dim=-1)  # (N, C)
    return F.kl_div(student, teacher, reduction="sum") / max(int(mask.sum()), 1)
