"""Concatenation fuser (early/feature-level fusion): fused = ReLU(Linear([h_text; h_audio; h_visual])).

The simplest inter-modal reference: no cross-modal interaction beyond one linear layer. The
per-modality outputs are the mixer outputs, unchanged.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import FuserOutput, component


class ConcatFuserConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dropout: float = Field(0.1, ge=0.0, lt=1.0)


def search_space(trial, prefix: str) -> dict:
    return {"dropout": trial.suggest_float(f"{prefix}dropout", 0.0, 0.5)}


@component("fuser", "concat", config=ConcatFuserConfig, search_space=search_space)
class ConcatFuser(nn.Module):
    """mixed[m] (B, L, H) → fused (B, L, H)."""

    def __init__(self, config: ConcatFuserConfig, *, modalities: tuple[str, ...], hidden_size: int) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.project = nn.Linear(len(self.modalities) * hidden_size, hidden_size)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, *, mixed: dict[str, torch.Tensor], encoded: dict[str, torch.Tensor], mask: torch.Tensor
    ) -> FuserOutput:
        joined = torch.cat([mixed[m] for m in self.modalities], dim=-1)  # (B, L, M·H)
        fused = self.dropout(torch.relu(self.project(joined)))  # (B, L, H)
        return FuserOutput(fused=fused, per_modality=dict(mixed))
