"""Per-modality cross-entropy: train each modality's head on its own loss (late fusion).

Late (decision-level) fusion trains one unimodal model per modality and combines their decisions
only at prediction time; it is the classic counterpart of early (feature-level) fusion among the
"model-agnostic" fusion approaches of Baltrušaitis, Ahuja and Morency (Multimodal Machine
Learning: A Survey and Taxonomy, IEEE TPAMI 2019, section "Fusion"). Its unimodal parts are the
single-modality rows of SUMMER's Table I (Li et al., 2025). In merc-bench a late-fusion model is
``encoder → mixer per modality → modality heads`` with ``model.prediction = "modality_average"``,
which predicts from the average of the heads' class probabilities (see :mod:`merc_bench.model`).

This distiller supplies the matching objective. For every modality m it returns

    ce.<m> = class-weighted mean cross-entropy of head m over real utterances

(:func:`merc_bench.losses.masked_cross_entropy`, the same weighting as the trainer's task loss), and
it *replaces* the trainer's task loss on the averaged prediction (``replaces_task_loss``). The
trainer sums the terms. With a linear encoder, a mixer per modality and the parameter-free mean
fuser, the modalities share no parameters, so term ``ce.<m>`` is the only one whose gradient
reaches modality m's encoder, mixer and head: each modality's model trains exactly as it would
alone, in one run.

Choices that are ours:

* The terms are summed, not averaged, over modalities, so a modality's gradient does not shrink
  when modalities are added (with Adam the loss scale matters only through weight decay).
* No loss on the averaged prediction itself: late fusion, as its name says, fuses only decisions.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from merc_bench import Batch, ModelOutput, component
from merc_bench.losses import masked_cross_entropy


class PerModalityCrossEntropyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@component("distiller", "per-modality-ce", config=PerModalityCrossEntropyConfig)
class PerModalityCrossEntropy(nn.Module):
    """(model output, batch) → {"ce.<m>": class-weighted CE of modality m's head} for every modality."""

    replaces_task_loss = True

    def __init__(self, config: PerModalityCrossEntropyConfig, *, modalities: tuple[str, ...]) -> None:
        super().__init__()
        self.modalities = tuple(modalities)

    def forward(
        self, *, output: ModelOutput, batch: Batch, class_weights: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        missing = [m for m in self.modalities if m not in output.modality_logits]
        if missing:
            raise ValueError(
                f"per-modality-ce needs a head for every modality (missing: {', '.join(missing)}): "
                "set model.modality_heads=true"
            )
        return {
            f"ce.{modality}": masked_cross_entropy(
                output.modality_logits[modality], batch.labels, batch.mask, class_weights
            )  # each term sees only its own head's logits (B, L, C)
            for modality in self.modalities
        }
