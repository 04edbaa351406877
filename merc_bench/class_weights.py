"""Published class weights: dataset facts that several papers' recipes use.

A recipe that weights its cross-entropy the way a paper did takes the weights from here, so that
two plugins never copy (or import) each other's numbers.

``IEMOCAP_INVERSE_FREQUENCY``
    1 / (the class's share of IEMOCAP's training utterances), in merc-bench's IEMOCAP class order
    hap, sad, neu, ang, exc, fru — the weights in the training script of SDT (Ma et al., "A
    Transformer-Based Model With Self-Distillation for Multimodal Emotion Recognition in
    Conversations", IEEE TMM 2023), which SUMMER, DialogueGCN and MMGCN's recipes reuse. The shares
    are the script's six-digit values, kept as published (they sum to 1.0000 within rounding).
"""

from __future__ import annotations

__all__ = ["IEMOCAP_INVERSE_FREQUENCY", "IEMOCAP_TRAIN_SHARES"]

#: Share of each class among IEMOCAP's training utterances (hap, sad, neu, ang, exc, fru), as in SDT's script.
IEMOCAP_TRAIN_SHARES = (0.086747, 0.144406, 0.227883, 0.160585, 0.127711, 0.252668)

#: 1 / share per class: rare classes weigh more. A list, as ``training.class_weights`` takes one.
IEMOCAP_INVERSE_FREQUENCY = [1 / share for share in IEMOCAP_TRAIN_SHARES]
