"""MultiAttn fuser (Shi and Huang, "MultiEMO: An Attention-Based Correlation-Aware Multimodal Fusion
Framework for Emotion Recognition in Conversations", ACL 2023, §3, MultiAttn and the emotion
classifier; equation numbers not checked, as the paper text was not at hand; the structure below
was checked against the authors' Model/MultiAttn.py and Model/MultiEMO_Model.py).

One branch per modality m (MultiAttn_text, MultiAttn_audio, MultiAttn_visual), a stack of layers;
each layer updates the branch's stream X (B, L, H) in three post-norm residual sublayers:

1. X ← LN(X + Attn(Q = X, K = V = A))      the query modality attends to its first partner A;
2. X ← LN(X + Attn(Q = X, K = V = B))      the result attends to its second partner B;
3. X ← LN(X + FFN(X)),  FFN(X) = W2 ReLU(W1 X).

Attn is multi-head scaled dot-product attention (4 heads, each with its own biased Q, K, V maps of
size H / heads, then a linear map of the concatenated heads, which is standard multi-head
attention: :class:`merc_bench.layers.MaskedMultiHeadAttention`). Partners are the other modalities in dataset order (text: audio then visual; audio: text
then visual; visual: text then audio) and are the fuser's *inputs* (the DialogueRNN mixer's outputs)
at every layer; only the branch's own stream is updated, as in the authors' code.

The three branch outputs are the per-modality representations (Soft-HGR's inputs); MultiEMO
concatenates them and applies one linear layer, fused = W_fc [f_t ⊕ f_a ⊕ f_v] + b (the
representation its SWFC loss reads). Its classifier is then a two-layer MLP
(Linear(H → H or 2H) → ReLU → Linear → Dropout); here the model's single linear head replaces it
(a simplification: one hidden layer fewer).

Choices where the paper is silent or the code does something we cannot keep:

* padded keys are masked (the authors' code attends to padded utterances too, which would make
  real outputs depend on the padding);
* any non-empty subset of modalities works: with two modalities sublayer 2 is skipped (there is no
  second partner); with one, there is no cross-attention at all and each layer is the FFN sublayer;
* dropout (after each sublayer, inside the FFN and, here also, on the attention weights) defaults
  to 0, the value the authors' scripts run with; the FFN size is ``feed_forward_multiplier`` × H
  (1024 = 4 × 256 in MultiEMO).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import FuserOutput, component
from merc_bench.layers import MaskedMultiHeadAttention
from merc_bench_multiemo.recipe import PAPER


class MultiAttnConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    heads: int = Field(4, gt=0, le=1024, description="attention heads (must divide the hidden size)")
    layers: int = Field(6, gt=0, le=64, description="stacked MultiAttn layers per modality (MultiEMO: 6 IEMOCAP, 2 MELD)")
    feed_forward_multiplier: int = Field(4, gt=0, le=64, description="feed-forward size = multiplier × H")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout in every sublayer (MultiEMO runs with 0)")


class MultiAttnLayer(nn.Module):
    """One layer of one branch; ``partners`` (0, 1 or 2) cross-attention sublayers, then the FFN."""

    def __init__(self, hidden_size: int, heads: int, feed_forward: int, dropout: float, partners: int) -> None:
        super().__init__()
        self.attentions = nn.ModuleList(MaskedMultiHeadAttention(hidden_size, heads, dropout) for _ in range(partners))
        self.attention_norms = nn.ModuleList(nn.LayerNorm(hidden_size) for _ in range(partners))
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden_size, feed_forward), nn.ReLU(), nn.Linear(feed_forward, hidden_size), nn.Dropout(dropout)
        )
        self.feed_forward_norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, stream: torch.Tensor, partners: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        for attention, norm, partner in zip(self.attentions, self.attention_norms, partners):
            stream = norm(stream + self.dropout(attention(stream, partner, mask)))  # (B, L, H)
        return self.feed_forward_norm(stream + self.dropout(self.feed_forward(stream)))


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this fuser's options."""
    return {
        "layers": trial.suggest_int(f"{prefix}layers", 1, 6),
        "heads": trial.suggest_categorical(f"{prefix}heads", [2, 4, 8]),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.0, 0.5),
    }


@component("fuser", "multiattn", config=MultiAttnConfig, search_space=search_space, paper=PAPER,
           description="MultiAttn: per-modality stacks of cross-attention to the other modalities, then concat + linear")
class MultiAttnFuser(nn.Module):
    """mixed[m] (B, L, H), mask (B, L) → fused (B, L, H) and one branch output per modality."""

    def __init__(self, config: MultiAttnConfig, *, modalities: tuple[str, ...], hidden_size: int) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.partners = {m: [o for o in self.modalities if o != m] for m in self.modalities}
        partner_count = len(self.modalities) - 1  # 0, 1 or 2 cross-attention sublayers per layer
        self.branches = nn.ModuleDict(
            {
                m: nn.ModuleList(
                    MultiAttnLayer(hidden_size, config.heads, config.feed_forward_multiplier * hidden_size,
                                   config.dropout, partner_count)
                    for _ in range(config.layers)
                )
                for m in self.modalities
            }
        )
        self.fc = nn.Linear(len(self.modalities) * hidden_size, hidden_size)  # W_fc over the concatenation

    def forward(
        self, *, mixed: dict[str, torch.Tensor], encoded: dict[str, torch.Tensor], mask: torch.Tensor
    ) -> FuserOutput:
        branches = {}
        for modality, layers in self.branches.items():
            partners = [mixed[p] for p in self.partners[modality]]  # fixed inputs, every layer
            stream = mixed[modality]  # (B, L, H)
            for layer in layers:
                stream = layer(stream, partners, mask)
            branches[modality] = stream
        fused = self.fc(torch.cat([branches[m] for m in self.modalities], dim=-1))  # (B, L, M·H) → (B, L, H)
        return FuserOutput(fused=fused, per_modality=branches)
