"""CORECT's unimodal encoders and speaker embedding (Nguyen et al., Findings of EMNLP 2023; the shapes
and layer choices follow the authors' code, leson502/CORECT_EMNLP2023: the paper's text could not be
consulted here, so no equation numbers are cited).

* Text (``text_context = "transformer"``, the authors' ``rnn=transformer``): a post-norm Transformer
  encoder (Vaswani et al. 2017) run at the text feature width D_t — ``text_layers`` layers,
  feed-forward ``text_feedforward`` (PyTorch's default 2048, which the authors keep), ReLU,
  ``dropout`` — then ``Linear(D_t, H)``. Heads: ``text_heads``, or by default the authors' rule,
  the smallest h in 7…14 that divides D_t, else 1 (1024-d RoBERTa features: 8 heads). No position
  encoding (the authors add none). ``text_context = "mlp"`` gives text the audio/visual encoder.
* Every other modality: ``Linear(D_m, H) → ReLU → Linear(H, H) → ReLU``.
* Speaker embedding (``speaker_embedding``): one learned vector per speaker slot, added to every
  modality's encoding (H). Padded positions use the extra row ``num_speakers`` (zero, never trained).

Choices where the authors' code differs from what merc-bench must do: their text transformer has
no padding mask, so padded utterances take part in every real utterance's attention; here padded
utterances are masked out (a padded position must not change a real output). Their speaker
embedding has no padding row (padding reuses speaker 0), which only touches padded positions.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import component
from merc_bench_corect.recipe import PAPER


class CorectEncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text_context: Literal["transformer", "mlp"] = Field(
        "transformer", description="text: Transformer encoder over the dialogue, or the two-layer MLP of the others"
    )
    text_layers: int = Field(2, ge=1, le=12, description="layers of the text Transformer encoder")
    text_heads: int | None = Field(
        None, ge=1, le=64, description="heads of the text Transformer (None: smallest of 7…14 dividing D_t, else 1)"
    )
    text_feedforward: int = Field(2048, ge=1, le=16_384, description="feed-forward width of the text Transformer")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="dropout inside the text Transformer")
    speaker_embedding: bool = Field(True, description="add a learned speaker embedding to every modality")


def authors_head_count(width: int) -> int:
    """The authors' rule for the text Transformer's heads: the smallest h in 7…14 dividing ``width``, else 1."""
    return next((h for h in range(7, 15) if width % h == 0), 1)


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this encoder's options."""
    return {
        "text_context": trial.suggest_categorical(f"{prefix}text_context", ["transformer", "mlp"]),
        "text_layers": trial.suggest_int(f"{prefix}text_layers", 1, 3),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.1, 0.6),
    }


class TextTransformer(nn.Module):
    """text (B, L, D_t), mask → (B, L, H): Transformer encoder at width D_t, padded utterances masked, then D_t → H."""

    def __init__(self, width: int, hidden_size: int, *, layers: int, heads: int, feedforward: int,
                 dropout: float) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"text_heads {heads} does not divide the text feature size {width}")
        layer = nn.TransformerEncoderLayer(d_model=width, nhead=heads, dim_feedforward=feedforward,
                                           dropout=dropout, batch_first=True)
        # enable_nested_tensor=False: keep padded rows as ordinary (masked) rows in every mode.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.output = nn.Linear(width, hidden_size)

    def forward(self, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        contextual = self.encoder(text, src_key_padding_mask=~mask)  # (B, L, D_t); True in the mask = padding
        return self.output(contextual)  # (B, L, H)


def feed_forward(width: int, hidden_size: int) -> nn.Sequential:
    """(…, D_m) → (…, H): Linear → ReLU → Linear → ReLU, the authors' audio and visual encoder."""
    return nn.Sequential(nn.Linear(width, hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size), nn.ReLU())


@component("encoder", "corect", config=CorectEncoderConfig, search_space=search_space, paper=PAPER)
class CorectEncoder(nn.Module):
    """features[m] (B, L, D_m), speakers (B, L), mask (B, L) → encoded[m] (B, L, H)."""

    def __init__(
        self, config: CorectEncoderConfig, *, feature_dims: dict[str, int], hidden_size: int, num_speakers: int
    ) -> None:
        super().__init__()
        self.contextual = "text" if config.text_context == "transformer" and "text" in feature_dims else None
        encoders = {}
        for modality, width in feature_dims.items():
            if modality == self.contextual:
                heads = config.text_heads or authors_head_count(width)
                encoders[modality] = TextTransformer(
                    width, hidden_size, layers=config.text_layers, heads=heads,
                    feedforward=config.text_feedforward, dropout=config.dropout,
                )
            else:
                encoders[modality] = feed_forward(width, hidden_size)
        self.encoders = nn.ModuleDict(encoders)
        self.speakers = (
            nn.Embedding(num_speakers + 1, hidden_size, padding_idx=num_speakers) if config.speaker_embedding else None
        )

    def forward(
        self, *, features: dict[str, torch.Tensor], speakers: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        speaker = self.speakers(speakers) if self.speakers is not None else 0.0  # (B, L, H)
        encoded = {}
        for modality, encoder in self.encoders.items():
            if modality == self.contextual:
                encoded[modality] = encoder(features[modality], mask) + speaker
            else:
                encoded[modality] = encoder(features[modality]) + speaker
        return encoded
