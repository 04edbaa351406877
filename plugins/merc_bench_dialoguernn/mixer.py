"""DialogueRNN as a per-modality mixer: the recurrence of ``cell.py`` (Majumder et al., AAAI 2019,
§"Our Model") over one modality's utterance sequence, as MultiEMO uses it for unimodal context
modelling (Shi and Huang, ACL 2023, §3, unimodal context modelling; authors' Model/DialogueRNN.py,
``BiModel``).

x (B, L, H) and the speakers go through the (Bi)DialogueRNN; the emotion states (B, L, E) are then
brought back to H as in MultiEMO's code: ReLU(Dropout(Linear(E → H))) (``output_projection``), or,
without the projection, ReLU(Dropout(e)) — MultiEMO's unidirectional MELD variant, which needs
E = H.

Defaults are MultiEMO's: every state size equals the hidden size (``None`` = H), the "simple"
context attention, no emotion attention, no listener update, no dropout (its scripts leave both
dropout rates at 0), bidirectional (its IEMOCAP setting; the multiemo recipe turns it off on MELD).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import component
from merc_bench_dialoguernn.cell import DialogueRNN
from merc_bench_dialoguernn.recipe import PAPER


class DialogueRNNMixerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    global_size: int | None = Field(None, gt=0, le=65536, description="D_g (default: the hidden size, as MultiEMO)")
    party_size: int | None = Field(None, gt=0, le=65536, description="D_p (default: the hidden size)")
    emotion_size: int | None = Field(None, gt=0, le=65536, description="D_e per direction (default: the hidden size)")
    bidirectional: bool = Field(True, description="BiDialogueRNN (MultiEMO: on for IEMOCAP, off for MELD)")
    context_attention: Literal["general", "simple"] = Field(
        "simple", description="general: the paper's u_tᵀ W_α g_j; simple: w·g_j (MultiEMO's choice)"
    )
    emotion_attention: bool = Field(False, description="attention over all emotion states (DialogueRNN+Att)")
    listener_update: bool = Field(False, description="update listeners' states too (the paper's default: no)")
    output_projection: bool = Field(
        True, description="Linear(E → H) on the emotion states; off requires E = H (MultiEMO on MELD)"
    )
    state_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on g, q, e inside the recurrence")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the output, before the ReLU")


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this mixer's options (state sizes follow the hidden size)."""
    return {
        "bidirectional": trial.suggest_categorical(f"{prefix}bidirectional", [True, False]),
        "context_attention": trial.suggest_categorical(f"{prefix}context_attention", ["simple", "general"]),
        "emotion_attention": trial.suggest_categorical(f"{prefix}emotion_attention", [False, True]),
        "state_dropout": trial.suggest_float(f"{prefix}state_dropout", 0.0, 0.3),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.0, 0.5),
    }


@component("mixer", "dialoguernn", config=DialogueRNNMixerConfig, search_space=search_space, paper=PAPER,
           description="(Bi)DialogueRNN over one modality's utterances, with speakers")
class DialogueRNNMixer(nn.Module):
    """x (B, L, H), mask (B, L), speakers (B, L) → (B, L, H)."""

    def __init__(self, config: DialogueRNNMixerConfig, *, hidden_size: int, num_speakers: int) -> None:
        super().__init__()
        self.rnn = DialogueRNN(
            input_size=hidden_size,
            parties=num_speakers,
            global_size=config.global_size or hidden_size,
            party_size=config.party_size or hidden_size,
            emotion_size=config.emotion_size or hidden_size,
            bidirectional=config.bidirectional,
            context_attention=config.context_attention,
            listener_update=config.listener_update,
            emotion_attention=config.emotion_attention,
            state_dropout=config.state_dropout,
        )
        if not config.output_projection and self.rnn.output_size != hidden_size:
            raise ValueError(
                f"the dialoguernn mixer without output_projection needs emotion states of the hidden size "
                f"{hidden_size}, got {self.rnn.output_size} (emotion_size × directions); set output_projection "
                f"or choose emotion_size so that they match"
            )
        self.projection = nn.Linear(self.rnn.output_size, hidden_size) if config.output_projection else nn.Identity()
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, speakers: torch.Tensor) -> torch.Tensor:
        emotions = self.rnn(x, speakers, mask)  # (B, L, E)
        return torch.relu(self.dropout(self.projection(emotions)))  # (B, L, H)
