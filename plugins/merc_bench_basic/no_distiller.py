"""No distillation: the trainer's task loss alone."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn


class NoDistillerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoDistiller(nn.Module):
    """Adds no loss terms."""

    def forward(self, *, output, batch, class_weights: torch.Tensor | None) -> dict[str, torch.Tensor]:
        return {}
