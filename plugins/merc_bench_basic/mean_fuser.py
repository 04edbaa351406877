"""Mean fuser: fused = the average of the modalities' mixer outputs; per-modality outputs unchanged.

With one modality it is the identity, which makes a unimodal model "encoder → mixer → head" (the
path SUMMER's unimodal teacher takes).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from merc_bench import FuserOutput, component


class MeanFuserConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@component("fuser", "mean", config=MeanFuserConfig)
class MeanFuser(nn.Module):
    """mixed[m] (B, L, H) → fused (B, L, H) = mean over modalities."""

    def __init__(self, config: MeanFuserConfig, *, modalities: tuple[str, ...]) -> None:
        super().__init__()
        self.modalities = tuple(modalities)

    def forward(
        self, *, mixed: dict[str, torch.Tensor], encoded: dict[str, torch.Tensor], mask: torch.Tensor
    ) -> FuserOutput:
        fused = torch.stack([mixed[m] for m in self.modalities], dim=0).mean(dim=0)  # (B, L, H)
        return FuserOutput(fused=fused, per_modality=dict(mixed))
