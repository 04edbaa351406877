"""Low-rank Multimodal Fusion (LMF): Liu, Shen, Lakshminarasimhan, Liang, Zadeh and Morency,
"Efficient Low-rank Multimodal Fusion with Modality-Specific Factors", ACL 2018.

Tensor fusion (Zadeh et al., EMNLP 2017) appends a 1 to every modality's vector, z_m = [h_m; 1],
and maps the outer product Z = ⊗_m z_m through a weight tensor W to the fused vector: h = W · Z
(LMF eq. 3). Its cost grows with the product of the modality sizes. LMF factorises W into r
rank-one terms of modality-specific factors, W = Σ_{i=1..r} ⊗_m w_m^(i) (eq. 5), so that

    h = Σ_{i=1..r} λ_i · Π_m (w_m^(i) · z_m) + b            (from eqs. 5–6)

where Π_m is the element-wise product over modalities: the outer product is never built and the
cost is linear in the number of modalities. Eq. 6 as printed places the element-wise product
outside the sum over i; expanding eq. 5 gives the product inside, which is what we compute. The
appended 1 keeps every unimodal and bimodal interaction term inside the product.

Choices where the paper is silent or speaks of utterance-level data (stated, configurable where
reasonable): LMF fuses per utterance, so each utterance's fused vector depends only on its own
modality vectors (context comes from the mixers before it); λ are learned rank weights with a
bias b (as in the paper's Figure 2); factors are initialised Xavier-normal; dropout on the fused
vector. Any non-empty subset of modalities works (one modality: a rank-r bilinear-free map).
The per-modality outputs are the mixer outputs, unchanged.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import FuserOutput, component


class LowRankFusionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int = Field(4, ge=1, le=64, description="r: number of rank-one terms (the paper tunes 1-16)")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout on the fused vector")


def search_space(trial, prefix: str) -> dict:
    """The paper searches ranks 1-16 (ACL 2018, §5.1); dropout as for merc-bench's other fusers."""
    return {
        "rank": trial.suggest_int(f"{prefix}rank", 1, 16, log=True),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.0, 0.5),
    }


@component("fuser", "lmf", config=LowRankFusionConfig, search_space=search_space,
           paper="Liu et al., Efficient Low-rank Multimodal Fusion with Modality-Specific Factors, ACL 2018")
class LowRankFusion(nn.Module):
    """mixed[m] (B, L, H) for every modality → fused (B, L, H) by low-rank tensor fusion."""

    def __init__(self, config: LowRankFusionConfig, *, modalities: tuple[str, ...], hidden_size: int) -> None:
        super().__init__()
        rank = config.rank
        self.modalities = tuple(modalities)
        # One factor per modality: (r, H + 1, H), the +1 row multiplying the appended constant.
        self.factors = nn.ParameterDict({
            m: nn.Parameter(nn.init.xavier_normal_(torch.empty(rank, hidden_size + 1, hidden_size)))
            for m in self.modalities
        })
        self.rank_weights = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, rank)).squeeze(0))  # λ (r,)
        self.bias = nn.Parameter(torch.zeros(hidden_size))
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, *, mixed: dict[str, torch.Tensor], encoded: dict[str, torch.Tensor], mask: torch.Tensor
    ) -> FuserOutput:
        product = None
        for modality in self.modalities:
            hidden = mixed[modality]  # (B, L, H)
            with_one = torch.cat([hidden, hidden.new_ones(*hidden.shape[:-1], 1)], dim=-1)  # (B, L, H+1)
            projected = torch.einsum("bld,rdh->blrh", with_one, self.factors[modality])  # (B, L, r, H)
            product = projected if product is None else product * projected
        fused = torch.einsum("blrh,r->blh", product, self.rank_weights) + self.bias  # (B, L, H)
        return FuserOutput(fused=self.dropout(fused), per_modality=dict(mixed))
