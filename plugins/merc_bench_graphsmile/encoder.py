"""GraphSmile's input projections (Li, Wang, Zeng, IEEE TPAMI 2025, arXiv:2407.21536: the
unimodal feature encoding before GSF; the authors' code ``GraphSmile.__init__``: ``batchnorms_t``
and ``dim_layer_t/a/v``).

Per modality m: h_m = Dropout(LeakyReLU(W_m BN(x_m) + b_m)), (B, L, D_m) → (B, L, H), where BN is a
batch normalisation of the features (learned scale and shift, running statistics at evaluation).
The authors normalise the text features only (``normalise = "text"``); ``all`` and ``none`` are
offered because the audio and visual features of the community files are unnormalised too.

Choices where the code and merc-bench differ:
* BN's batch statistics are taken over the real utterances of the batch only. The authors' code
  normalises the padded (B·L, D) tensor, zero rows included, so its statistics depend on how much
  padding a batch has; here padded positions change nothing.
* A training batch with a single real utterance cannot give a variance; it is normalised with the
  running statistics instead (and does not update them).
* The authors' code can also sum or concatenate the four RoBERTa layers of the SDT text files
  (``--textf_mode``); its published runs use the first (``textf0``), which is the text feature
  merc-bench's datasets load.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import component
from merc_bench_graphsmile.recipe import PAPER


class GraphSmileEncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    normalise: Literal["text", "all", "none"] = Field(
        "text", description="modalities whose features are batch-normalised before the projection"
    )
    dropout: float = Field(0.3, ge=0.0, lt=1.0, description="after the LeakyReLU (code default 0.3)")


def masked_batch_norm(norm: nn.BatchNorm1d, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Batch normalisation of x (B, L, D) over its real utterances (mask (B, L)); padded rows are 0."""
    real = x[mask]  # (N, D)
    if norm.training and real.shape[0] < 2:  # no variance from one utterance: use the running statistics
        normalised = F.batch_norm(real, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                                  training=False, eps=norm.eps)
    else:
        normalised = norm(real)
    out = x.new_zeros(x.shape)
    out[mask] = normalised.to(x.dtype)
    return out


@component("encoder", "graphsmile", config=GraphSmileEncoderConfig, paper=PAPER)
class GraphSmileEncoder(nn.Module):
    """features[m] (B, L, D_m), mask (B, L) → encoded[m] (B, L, H)."""

    def __init__(self, config: GraphSmileEncoderConfig, *, feature_dims: dict[str, int], hidden_size: int) -> None:
        super().__init__()
        normalised = {"text": ("text",), "all": tuple(feature_dims), "none": ()}[config.normalise]
        self.norms = nn.ModuleDict({m: nn.BatchNorm1d(dim) for m, dim in feature_dims.items() if m in normalised})
        self.projections = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(dim, hidden_size), nn.LeakyReLU(), nn.Dropout(config.dropout))
            for m, dim in feature_dims.items()
        })

    def forward(
        self, *, features: dict[str, torch.Tensor], speakers: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        encoded = {}
        for modality, projection in self.projections.items():
            x = features[modality]  # (B, L, D_m)
            if modality in self.norms:
                x = masked_batch_norm(self.norms[modality], x, mask)
            encoded[modality] = projection(x)  # (B, L, H)
        return encoded
