"""Identity mixer: passes each utterance through unchanged (the "no context" reference)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from merc_bench import component


class IdentityMixerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@component("mixer", "identity", config=IdentityMixerConfig)
class IdentityMixer(nn.Module):
    """x (B, L, H) → x: every utterance is treated on its own."""

    def __init__(self, config: IdentityMixerConfig) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x
