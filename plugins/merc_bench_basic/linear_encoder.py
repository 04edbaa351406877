"""Plain linear encoder: a projection D_m → H per modality, nothing else.

The reference point for encoders: no speaker or position information, so any context a model
uses must come from its mixer or fuser.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import component


class LinearEncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bias: bool = Field(True, description="add a bias to each projection")


@component("encoder", "linear", config=LinearEncoderConfig)
class LinearEncoder(nn.Module):
    """features[m] (B, L, D_m) → encoded[m] (B, L, H)."""

    def __init__(self, config: LinearEncoderConfig, *, feature_dims: dict[str, int], hidden_size: int) -> None:
        super().__init__()
        self.projections = nn.ModuleDict(
            {m: nn.Linear(dim, hidden_size, bias=config.bias) for m, dim in feature_dims.items()})

    def forward(
        self, *, features: dict[str, torch.Tensor], speakers: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return {m: projection(features[m]) for m, projection in self.projections.items()}
