"""Hierarchical Cross-Modal Fusion fuser (SUMMER, §III-E, eqs. 4–6).

One branch per modality m ("HCMF_t", "HCMF_a", "HCMF_v"); each branch is a stack of L layers, and
every layer runs three stages on the branch's stream X (B, L, H):

1. bidirectional cross-attention between m and its second modality s:
   X ← LN(X + DynAttn(Q=X, K=V=S) + DynAttn(Q=S, K=V=X))        (eq. 5, H_{ta})
2. the stage-1 output queries the third modality r:
   X ← LN(X + DynAttn(Q=X, K=V=R))                               (eq. 6, H_{tav})
3. a feed-forward network: X ← LN(X + W2 · GELU(W1 · X)).

DynAttn (eq. 4) is multi-head attention whose output is scaled by a learnable factor φ:
DynAttn(Q, K, V) = φ · softmax(QKᵀ / √d_k) V, with Q, K, V linear projections and φ one scalar
per attention module, initialised to 1. Padded keys are masked.

Choices where the paper is silent (documented; the combination is a config option):
* the second and third modalities of a branch are the other two in the order text, audio, visual
  (text branch: audio then visual; audio branch: text then visual; visual branch: text then audio);
* the other modalities' inputs are the mixer (SDMoE) outputs, the same for every layer; only the
  branch's own stream is updated layer by layer;
* "bidirectional" adds both directions' outputs, which is possible because every modality has one
  vector per utterance, so positions align;
* with two modalities stage 2 is skipped; with one, stage 1 attends the modality to itself;
* the branches are combined into one prediction by SDT's multimodal gated fusion (``combine =
  "gated"``, since SUMMER extends SDT), or by their mean, or by a linear layer over their
  concatenation. Post-norm residuals and a feed-forward size of 4H, as in a BERT-like encoder.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import FuserOutput, component
from merc_bench.layers import MaskedMultiHeadAttention, gated_fusion
from merc_bench_summer.recipe import PAPER


class HCMFConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    heads: int = Field(4, gt=0, le=1024, description="attention heads (must divide the hidden size)")
    layers: int = Field(6, gt=0, le=64, description="L stacked layers per branch")
    feed_forward_multiplier: int = Field(4, gt=0, le=64, description="feed-forward size = multiplier × H")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    combine: Literal["gated", "mean", "concat"] = Field(
        "gated", description="how the branches become one representation (the paper does not say)"
    )


class DynamicAttention(MaskedMultiHeadAttention):
    """DynAttn (eq. 4): φ · softmax(QKᵀ/√d_k) V. query (B, L, H), source (B, L, H) → (B, L, H).

    A subclass rather than a wrapper so that the parameters keep their names (``query``,
    ``key_value``, ``output``, ``phi``) and creation order: state dicts and seeded runs are unchanged.
    """

    def __init__(self, hidden_size: int, heads: int, dropout: float) -> None:
        super().__init__(hidden_size, heads, dropout)
        self.phi = nn.Parameter(torch.ones(()))  # φ, the learnable scale of the attention output

    def forward(self, query: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.phi * super().forward(query, source, mask)


class HCMFLayer(nn.Module):
    """One layer of one branch: stage 1 (bidirectional with the second modality), stage 2 (third), FFN."""

    def __init__(self, hidden_size: int, heads: int, feed_forward: int, dropout: float, stages: int) -> None:
        super().__init__()
        self.forward_attention = DynamicAttention(hidden_size, heads, dropout)  # branch queries second
        self.backward_attention = DynamicAttention(hidden_size, heads, dropout)  # second queries branch
        self.norm_first = nn.LayerNorm(hidden_size)
        self.third_attention = DynamicAttention(hidden_size, heads, dropout) if stages == 2 else None
        self.norm_second = nn.LayerNorm(hidden_size) if stages == 2 else None
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden_size, feed_forward), nn.GELU(), nn.Dropout(dropout), nn.Linear(feed_forward, hidden_size)
        )
        self.norm_third = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, stream: torch.Tensor, second: torch.Tensor, third: torch.Tensor | None, mask: torch.Tensor
    ) -> torch.Tensor:
        both_ways = self.forward_attention(stream, second, mask) + self.backward_attention(second, stream, mask)
        stream = self.norm_first(stream + self.dropout(both_ways))  # H_{ta}
        if self.third_attention is not None:
            stream = self.norm_second(stream + self.dropout(self.third_attention(stream, third, mask)))  # H_{tav}
        return self.norm_third(stream + self.dropout(self.feed_forward(stream)))


def search_space(trial, prefix: str) -> dict:
    return {
        "layers": trial.suggest_int(f"{prefix}layers", 1, 6),
        "heads": trial.suggest_categorical(f"{prefix}heads", [2, 4, 8]),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.0, 0.5),
        "combine": trial.suggest_categorical(f"{prefix}combine", ["gated", "mean", "concat"]),
    }


@component("fuser", "hcmf", config=HCMFConfig, search_space=search_space, paper=PAPER)
class HCMFFuser(nn.Module):
    """mixed[m] (B, L, H), mask (B, L) → fused (B, L, H) and one branch output per modality."""

    def __init__(self, config: HCMFConfig, *, modalities: tuple[str, ...], hidden_size: int) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.partners = {
            m: ([o for o in self.modalities if o != m] or [m]) for m in self.modalities
        }  # second (and third) modality of each branch; a lone modality partners itself
        stages = 2 if len(self.modalities) >= 3 else 1
        self.branches = nn.ModuleDict(
            {
                m: nn.ModuleList(
                    HCMFLayer(hidden_size, config.heads, config.feed_forward_multiplier * hidden_size, config.dropout,
                              stages)
                    for _ in range(config.layers)
                )
                for m in self.modalities
            }
        )
        self.combine = config.combine
        if self.combine == "gated":
            # SDT's multimodal gated fusion (merc_bench.layers.gated_fusion); the layer keeps its own name
            # here, not GatedFusion's `score`, so that state dicts stay as they were.
            self.fusion_score = nn.Linear(hidden_size, hidden_size, bias=False)
            if len(self.modalities) == 1:
                # A softmax over one modality is 1 whatever the score: the layer cannot learn, so it is
                # frozen (kept, so that the weights initialised after it stay as they were).
                self.fusion_score.weight.requires_grad_(False)
        elif self.combine == "concat":
            self.fusion_project = nn.Linear(len(self.modalities) * hidden_size, hidden_size)

    def forward(
        self, *, mixed: dict[str, torch.Tensor], encoded: dict[str, torch.Tensor], mask: torch.Tensor
    ) -> FuserOutput:
        branches = {}
        for modality, layers in self.branches.items():
            partners = self.partners[modality]
            second = mixed[partners[0]]
            third = mixed[partners[1]] if len(partners) > 1 else None
            stream = mixed[modality]
            for layer in layers:
                stream = layer(stream, second, third, mask)
            branches[modality] = stream  # (B, L, H)
        states = [branches[m] for m in self.modalities]
        if self.combine == "gated":
            fused = gated_fusion(states, self.fusion_score)  # M × (B, L, H) → (B, L, H)
        elif self.combine == "mean":
            fused = torch.stack(states, dim=0).mean(dim=0)
        else:
            fused = self.fusion_project(torch.cat(states, dim=-1))
        return FuserOutput(fused=fused, per_modality=branches)
