"""Bidirectional GRU mixer over the utterance sequence (the context encoder of DialogueGCN,
Ghosal et al. 2019, §3.2 "sequential context encoder", and of many MERC baselines).

The two directions' states (H/2 each) are concatenated back to H. Sequences are packed, so padded
utterances never reach the recurrence and real outputs do not depend on the padding.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from merc_bench import component


class BiGRUMixerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layers: int = Field(1, gt=0, le=16)
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout on the GRU output")


def search_space(trial, prefix: str) -> dict:
    return {"layers": trial.suggest_int(f"{prefix}layers", 1, 2), "dropout": trial.suggest_float(f"{prefix}dropout", 0.0, 0.5)}


@component("mixer", "bigru", config=BiGRUMixerConfig, search_space=search_space)
class BiGRUMixer(nn.Module):
    """x (B, L, H), mask (B, L) → (B, L, H)."""

    def __init__(self, config: BiGRUMixerConfig, *, hidden_size: int) -> None:
        super().__init__()
        if hidden_size % 2:
            raise ValueError(f"the bigru mixer needs an even hidden size, got {hidden_size}")
        self.gru = nn.GRU(hidden_size, hidden_size // 2, num_layers=config.layers, batch_first=True,
                          bidirectional=True)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(dim=1).cpu()  # (B,)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, L, H)
        return self.dropout(out)
