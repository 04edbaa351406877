"""DialogueRNN as an early-fusion fuser (Majumder et al., "DialogueRNN: An Attentive RNN for Emotion
Detection in Conversations", AAAI 2019; its multimodal runs, BiDialogueRNN+Att_MM).

The paper's multimodal DialogueRNN concatenates each utterance's text, audio and visual features
and runs one recurrence over them. Here every modality is first projected to H by the encoder
(``linear`` in the recipe) and the fuser concatenates those projections, u_t = h_t^text ⊕ h_t^audio
⊕ h_t^visual (B, L, M·H): early fusion of projected features, equivalent to the paper's
concatenated features up to that per-modality linear map. It then runs the (Bi)DialogueRNN of
``cell.py`` with the speakers, optionally the emotion attention, and the paper's classifier layer
l_t = ReLU(W_l ẽ_t + b_l) ("Emotion Classification"), whose output is the fused representation;
the model's linear head is the paper's softmax layer. So the paper's D_h is the model's
``hidden_size`` and is not repeated here (two copies could disagree).

Choices (see also cell.py):

* ``source = "encoded"`` reads the encoder outputs, as above; ``"mixed"`` reads the mixers'
  outputs instead, for recipes that put an intra-modal mixer in front;
* dropout as in the authors' code: ``state_dropout`` inside the recurrence (their rec_dropout),
  ``emotion_dropout`` on the emotion states (their dropout + 0.15) and ``dropout`` after l_t;
* per_modality is the mixers' output unchanged: this fuser has no per-modality branch.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import FuserOutput, component
from merc_bench_dialoguernn.cell import DialogueRNN
from merc_bench_dialoguernn.recipe import PAPER


class DialogueRNNFuserConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    global_size: int = Field(500, gt=0, le=65536, description="D_g, size of the global state")
    party_size: int = Field(500, gt=0, le=65536, description="D_p, size of each party state")
    emotion_size: int = Field(300, gt=0, le=65536, description="D_e, size of the emotion state (per direction)")
    bidirectional: bool = Field(True, description="BiDialogueRNN (the variant the paper reports best)")
    context_attention: Literal["general", "simple"] = Field(
        "general", description="general: the paper's u_tᵀ W_α g_j; simple: w·g_j without a query"
    )
    emotion_attention: bool = Field(True, description="attention over all emotion states (DialogueRNN+Att)")
    listener_update: bool = Field(False, description="update listeners' states too (the paper's default: no)")
    source: Literal["encoded", "mixed"] = Field(
        "encoded", description="fuse the encoder outputs (early fusion) or the mixers' outputs"
    )
    state_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout on g, q, e inside the recurrence")
    emotion_dropout: float = Field(0.25, ge=0.0, lt=1.0, description="dropout on the emotion states")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout after the classifier layer l_t")


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this fuser's options."""
    return {
        "global_size": trial.suggest_categorical(f"{prefix}global_size", [150, 300, 500]),
        "party_size": trial.suggest_categorical(f"{prefix}party_size", [150, 300, 500]),
        "emotion_size": trial.suggest_categorical(f"{prefix}emotion_size", [100, 200, 300]),
        "context_attention": trial.suggest_categorical(f"{prefix}context_attention", ["general", "simple"]),
        "emotion_attention": trial.suggest_categorical(f"{prefix}emotion_attention", [True, False]),
        "listener_update": trial.suggest_categorical(f"{prefix}listener_update", [False, True]),
        "state_dropout": trial.suggest_float(f"{prefix}state_dropout", 0.0, 0.3),
        "emotion_dropout": trial.suggest_float(f"{prefix}emotion_dropout", 0.0, 0.5),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.0, 0.5),
    }


@component("fuser", "dialoguernn", config=DialogueRNNFuserConfig, search_space=search_space, paper=PAPER,
           description="early fusion, then (Bi)DialogueRNN with global, party and emotion GRUs")
class DialogueRNNFuser(nn.Module):
    """encoded[m] (B, L, H), speakers (B, L), mask (B, L) → fused (B, L, H); per_modality = mixed."""

    def __init__(
        self, config: DialogueRNNFuserConfig, *, modalities: tuple[str, ...], hidden_size: int, num_speakers: int
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.source = config.source
        self.rnn = DialogueRNN(
            input_size=len(self.modalities) * hidden_size,
            parties=num_speakers,
            global_size=config.global_size,
            party_size=config.party_size,
            emotion_size=config.emotion_size,
            bidirectional=config.bidirectional,
            context_attention=config.context_attention,
            listener_update=config.listener_update,
            emotion_attention=config.emotion_attention,
            state_dropout=config.state_dropout,
            emotion_dropout=config.emotion_dropout,
        )
        self.classifier_layer = nn.Linear(self.rnn.output_size, hidden_size)  # W_l, b_l
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        *,
        mixed: dict[str, torch.Tensor],
        encoded: dict[str, torch.Tensor],
        mask: torch.Tensor,
        speakers: torch.Tensor,
    ) -> FuserOutput:
        inputs = encoded if self.source == "encoded" else mixed
        joined = torch.cat([inputs[m] for m in self.modalities], dim=-1)  # (B, L, M·H): u_t
        emotions = self.rnn(joined, speakers, mask)  # (B, L, E), E = D_e or 2·D_e
        fused = self.dropout(torch.relu(self.classifier_layer(emotions)))  # (B, L, H): l_t
        return FuserOutput(fused=fused, per_modality=dict(mixed))
