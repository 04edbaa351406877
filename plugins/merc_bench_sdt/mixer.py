"""Intra-modal transformer mixer (SDT, Ma et al. 2023, §III-C "intra-modal transformer").

One SDT transformer block per modality with self-attention over the dialogue's utterances
(SDT's ``t→t``, ``a→a``, ``v→v``): each utterance attends to every real utterance of its dialogue,
past and future, which is how SDT models conversational context within a modality.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import component
from merc_bench_sdt.recipe import PAPER
from merc_bench_sdt.transformer import SDTTransformerBlock


class TransformerMixerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    heads: int = Field(8, gt=0, le=1024, description="attention heads (must divide the hidden size)")
    dropout: float = Field(0.5, ge=0.0, lt=1.0)


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this mixer's options."""
    return {
        "heads": trial.suggest_categorical(f"{prefix}heads", [4, 8]),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.1, 0.6),
    }


@component("mixer", "transformer", config=TransformerMixerConfig, search_space=search_space, paper=PAPER)
class TransformerMixer(nn.Module):
    """x (B, L, H), mask (B, L) → (B, L, H)."""

    def __init__(self, config: TransformerMixerConfig, *, hidden_size: int) -> None:
        super().__init__()
        self.block = SDTTransformerBlock(hidden_size=hidden_size, heads=config.heads, dropout=config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.block(x, None, mask)
