"""No distillation: the trainer's task loss alone."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from merc_bench import component


class NoDistillerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@component("distiller", "none", config=NoDistillerConfig)
class NoDistiller(nn.Module):
    """Adds no loss terms."""

    def __init__(self, config: NoDistillerConfig) -> None:
        super().__init__()

    def forward(self, *, output, batch, class_weights: torch.Tensor | None) -> dict[str, torch.Tensor]:
        return {}
