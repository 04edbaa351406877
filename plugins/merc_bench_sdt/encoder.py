"""Speaker-and-position encoder (SDT, Ma et al. 2023, "A Transformer-Based Model With
Self-Distillation for Multimodal Emotion Recognition in Conversations", IEEE TMM, §III-B).

Per modality a bias-free projection D_m → H (SDT's ``Conv1d(D, H, 1, bias=False)``, written as the
equivalent ``Linear`` so no transposes are needed), plus one speaker embedding shared by all
modalities (index ``num_speakers`` is the padding index) and an unscaled sinusoidal position
encoding (:func:`merc_bench.layers.sinusoidal_positions`). SDT adds speaker and position embeddings to the input of *every* transformer; adding
them once here gives the same sums, and each transformer then applies its own input dropout.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import component
from merc_bench.layers import sinusoidal_positions
from merc_bench_sdt.recipe import PAPER


class SpeakerPositionEncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speaker_embedding: bool = Field(True, description="add a learned speaker embedding")
    position_encoding: bool = Field(True, description="add the sinusoidal position encoding")


@component("encoder", "speaker-position", config=SpeakerPositionEncoderConfig, paper=PAPER)
class SpeakerPositionEncoder(nn.Module):
    """features[m] (B, L, D_m), speakers (B, L) → encoded[m] (B, L, H)."""

    def __init__(
        self, config: SpeakerPositionEncoderConfig, *, feature_dims: dict[str, int], hidden_size: int, num_speakers: int
    ) -> None:
        super().__init__()
        self.projections = nn.ModuleDict({m: nn.Linear(dim, hidden_size, bias=False) for m, dim in feature_dims.items()})
        self.speakers = (
            nn.Embedding(num_speakers + 1, hidden_size, padding_idx=num_speakers) if config.speaker_embedding else None
        )
        self.position_encoding = config.position_encoding
        # SDT precomputes 512 positions; longer dialogues extend the table on demand.
        self.register_buffer("positions", sinusoidal_positions(512, hidden_size), persistent=False)

    def forward(
        self, *, features: dict[str, torch.Tensor], speakers: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        length = speakers.shape[1]
        context = 0.0
        if self.position_encoding:
            if length > self.positions.shape[0]:
                self.positions = sinusoidal_positions(length, self.positions.shape[1]).to(self.positions)
            context = self.positions[:length].unsqueeze(0)  # (1, L, H)
        if self.speakers is not None:
            context = context + self.speakers(speakers)  # (B, L, H)
        return {m: projection(features[m]) + context for m, projection in self.projections.items()}
