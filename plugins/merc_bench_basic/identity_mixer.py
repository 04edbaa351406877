"""Identity mixer: passes each utterance through unchanged (the "no context" reference)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn


class IdentityMixerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentityMixer(nn.Module):
    """x (B, L, H) → x: every utterance is treated on its own."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x
