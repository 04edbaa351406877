"""GraphSmile's SDP, sentiment dynamics perception, with its sentiment classification term, as a
distiller (Li, Wang, Zeng, "Tracing Intricate Cues in Dialogue: Joint Graph Structure and Sentiment
Dynamics for Multimodal Emotion Recognition", IEEE TPAMI 2025, arXiv:2407.21536: the SDP module
and the joint objective; the authors' code ``SenShift_Feat``, ``build_match_sen_shift_label`` and
the ``emo_sen_sft`` loss of ``trainer.py``). Terms are cited by what they compute: the paper's
equation numbering was not at hand.

From the fused representation e_i (B, L, H) (``output.hidden``, GraphSmile's ``feat_fusion``):
* sentiment term: ŝ_i = W_s e_i + b_s over the target classes, loss_sen = CE(ŝ, s), mean over real
  utterances;
* shift term: for utterance pairs (i, j) of the same dialogue, ĉ_ij = W_c [e_i; e_j] + b_c over
  {same, shifted}, target c_ij = [s_i ≠ s_j], loss_sft = CE(ĉ, c), mean over the pairs.
Returned as {"sentiment": λ_sen · loss_sen, "shift": λ_sft · loss_sft}; the trainer adds the emotion
cross-entropy with weight 1 (λ_emo = 1 in every published setting).

Pairs (``shift_window``): the dialogue is cut into consecutive blocks of w utterances (the last
one shorter) and every ordered pair inside a block is a pair, (i, i) included (``self_pairs``,
as in the code; such a pair is never a shift); None pairs every two utterances of the dialogue
(the code's −1). ĉ is computed as W_c¹ e_i + W_c² e_j + b_c with W_c = [W_c¹ W_c²], the same
linear map, without building the (pairs, 2H) concatenation.

Targets (``labels``) — merc-bench's datasets carry emotion labels only, so s is derived from them:
* ``sentiment``: a coarse sentiment per emotion class. Default per family, by class index:
  IEMOCAP (hap, sad, neu, ang, exc, fru) → (positive, negative, neutral, negative, positive,
  negative), exactly the authors' IEMOCAP mapping; MELD (neutral, surprise, fear, sadness, joy,
  disgust, anger) → (neutral, negative, negative, negative, positive, negative, negative). MELD's
  own per-utterance sentiment, which the authors read from the feature file, equals this mapping
  for every class but surprise, which MELD annotates negative or positive case by case (856 and 780
  of the 1,636 surprise utterances in the official CSVs): negative is the majority. Another
  mapping, e.g. surprise → positive, is given as ``class_sentiments``, one value per class. A
  dataset whose class count is not its family's needs ``class_sentiments`` (else: an error).
* ``emotion``: s is the emotion class itself, so the shift term predicts emotion shifts and the
  classification term is a second emotion head; fits any label set.
* ``auto`` (default): ``sentiment`` when ``class_sentiments`` is given or the dataset has its
  family's class count (IEMOCAP 6, MELD 7), ``emotion`` otherwise. The build context names no
  classes, only their count, so a 7-class ``meld``-family corpus is assumed to list MELD's classes
  in MELD's order (as the family's class weights and settings assume too).
Neither term is class-weighted (the authors' losses are plain NLL); ``class_weights`` weigh the
trainer's emotion term only.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import Batch, ModelOutput, UserError, component
from merc_bench_graphsmile.recipe import PAPER

Sentiment = Literal["negative", "neutral", "positive"]
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")

#: The coarse sentiment of each emotion class, in the class order of the family's feature files.
FAMILY_SENTIMENTS: dict[str, tuple[str, ...]] = {
    "iemocap": ("positive", "negative", "neutral", "negative", "positive", "negative"),
    "meld": ("neutral", "negative", "negative", "negative", "positive", "negative", "negative"),
}


class SentimentDynamicsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: Literal["auto", "sentiment", "emotion"] = Field(
        "auto", description="targets: a coarse sentiment of each class, the emotion classes, or auto (see docs)"
    )
    class_sentiments: list[Sentiment] | None = Field(
        None, min_length=1, max_length=1000,
        description="labels=sentiment: the sentiment of each emotion class (default: the family's mapping)",
    )
    shift_window: int | None = Field(
        None, ge=1, le=10_000, description="w: pairs within blocks of w utterances (None: the whole dialogue)"
    )
    self_pairs: bool = Field(True, description="count (i, i) as a pair, as the authors' code does")
    sentiment_weight: float = Field(1.0, ge=0.0, le=1000, description="λ_sen of the classification term")
    shift_weight: float = Field(1.0, ge=0.0, le=1000, description="λ_sft of the shift term")


def resolved_labels(config: SentimentDynamicsConfig, family: str, num_classes: int) -> str:
    """``sentiment`` or ``emotion``: what ``labels = "auto"`` means for this dataset."""
    if config.labels != "auto":
        return config.labels
    fits_family = len(FAMILY_SENTIMENTS.get(family, ())) == num_classes
    return "sentiment" if config.class_sentiments is not None or fits_family else "emotion"


def class_targets(config: SentimentDynamicsConfig, family: str, num_classes: int) -> torch.Tensor:
    """(C,) long: the target id of each emotion class (itself, or its sentiment's index in SENTIMENTS)."""
    if resolved_labels(config, family, num_classes) == "emotion":
        return torch.arange(num_classes)
    mapping = config.class_sentiments
    if mapping is None:
        mapping = FAMILY_SENTIMENTS.get(family)
        if mapping is None or len(mapping) != num_classes:
            raise UserError(
                f"the sentiment-dynamics distiller has no sentiment mapping for a {family!r} dataset with "
                f"{num_classes} classes (it knows IEMOCAP's 6 and MELD's 7 classes): give one sentiment per "
                "class with --set distiller.class_sentiments=[...] (a JSON list), or --set distiller.labels=emotion."
            )
    elif len(mapping) != num_classes:
        raise UserError(
            f"distiller.class_sentiments has {len(mapping)} values, but the dataset has {num_classes} "
            "classes: give one sentiment (negative, neutral or positive) per class, in the dataset's class order."
        )
    return torch.tensor([SENTIMENTS.index(s) for s in mapping])


def shift_pairs(mask: torch.Tensor, window: int | None, self_pairs: bool) -> torch.Tensor:
    """(B, L) real-utterance mask → (B, L, L) bool: [b, i, j] True when (i, j) is an SDP pair.

    Both real, in the same block of ``window`` consecutive utterances from the dialogue's start
    (every pair of the dialogue when ``window`` is None), i ≠ j unless ``self_pairs``.
    """
    length = mask.shape[1]
    position = torch.arange(length, device=mask.device)
    block = position // window if window is not None else torch.zeros_like(position)  # (L,)
    pairs = (block[:, None] == block[None, :])[None] & mask[:, :, None] & mask[:, None, :]  # (B, L, L)
    if not self_pairs:
        pairs = pairs & ~torch.eye(length, dtype=torch.bool, device=mask.device)[None]
    return pairs


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this distiller's options."""
    return {
        "shift_window": trial.suggest_int(f"{prefix}shift_window", 2, 24),
        "sentiment_weight": trial.suggest_float(f"{prefix}sentiment_weight", 0.1, 1.5),
        "shift_weight": trial.suggest_float(f"{prefix}shift_weight", 0.1, 1.5),
    }


@component("distiller", "sentiment-dynamics", config=SentimentDynamicsConfig, search_space=search_space,
           paper=PAPER)
class SentimentDynamics(nn.Module):
    """(model output, batch) → {"sentiment": scalar, "shift": scalar}, besides the emotion cross-entropy."""

    def __init__(self, config: SentimentDynamicsConfig, *, hidden_size: int, num_classes: int, family: str) -> None:
        super().__init__()
        targets = class_targets(config, family, num_classes)  # (C,)
        self.register_buffer("targets", targets, persistent=False)
        self.window = config.shift_window
        self.self_pairs = config.self_pairs
        self.sentiment_weight = config.sentiment_weight
        self.shift_weight = config.shift_weight
        emotions = resolved_labels(config, family, num_classes) == "emotion"
        self.classifier = nn.Linear(hidden_size, num_classes if emotions else len(SENTIMENTS))
        self.shift = nn.Linear(2 * hidden_size, 2)  # W_c on [e_i; e_j]

    def forward(
        self, *, output: ModelOutput, batch: Batch, class_weights: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        e = output.hidden  # (B, L, H)
        hidden = e.shape[-1]
        targets = self.targets[batch.labels.clamp(0, self.targets.numel() - 1)]  # (B, L); padding: any valid id
        sentiment = F.cross_entropy(self.classifier(e[batch.mask]).float(), targets[batch.mask])
        first = F.linear(e, self.shift.weight[:, :hidden])  # (B, L, 2): W_c¹ e_i
        second = F.linear(e, self.shift.weight[:, hidden:])  # (B, L, 2): W_c² e_j
        pairs = shift_pairs(batch.mask, self.window, self.self_pairs)  # (B, L, L)
        logits = first[:, :, None, :] + second[:, None, :, :] + self.shift.bias  # (B, L, L, 2)
        shifted = (targets[:, :, None] != targets[:, None, :]).long()  # (B, L, L)
        # a sum over at most B·L² pairs divided by their count: no NaN when a batch has no pair at all
        # (single-utterance dialogues without self pairs)
        shift = F.cross_entropy(logits[pairs].float(), shifted[pairs], reduction="sum") / pairs.sum().clamp_min(1)
        return {"sentiment": self.sentiment_weight * sentiment, "shift": self.shift_weight * shift}
