"""Sparse Dynamic Mixture of Experts mixer (SUMMER, §III-D, eqs. 2–3).

Per modality, n BiGRU experts read the utterance sequence U_m (B, L, H) (the "auxiliary expert
network"): E_i = BiGRU_i(U_m). A token-wise gating network gives every utterance one weight per
expert, w = Linear(H → n)(U_m). Dynamic routing then keeps, per utterance, only the experts whose
weight lies inside (μ − ασ, μ + ασ), μ and σ being the mean and population standard deviation of
that utterance's n weights, and mixes them with a softmax over the kept experts (eq. 2):

    G_i = exp((w_i + g_i) / τ) / Σ_{j kept} exp((w_j + g_j) / τ),   g = −log(−log R), R ~ U(0, 1)

Gumbel noise is added while training only; evaluation is deterministic (g = 0). The output is
SD_m = Σ_i G_i · E_i (eq. 3).

What α does for small n: with the population σ, no weight's z-score |w_i − μ| / σ can exceed
√(n − 1) (it equals √(n − 1) only when the other n − 1 weights are all equal). So for
α > √(n − 1) nothing is ever deactivated and SDMoE is a dense, softmax-weighted mixture; the
paper's α = 2 can only deactivate anything with n ≥ 6 experts. The paper does not give n: the
default here is 6, the smallest n for which α = 2 routes sparsely.

Choices where the paper is silent (documented, configurable where it matters):
* when σ = 0 (all weights equal) every expert is kept, since the open interval would be empty;
* if routing deactivates every expert (possible only for α < 1), the highest-weight expert is kept;
* the gate is one linear layer per modality; each expert is a one-layer BiGRU with H/2 units per
  direction, packed so padded utterances never enter the recurrence.

The mean number of active experts per real utterance is reported as the metric ``active_experts``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from merc_bench import MixerOutput, component
from merc_bench_summer.recipe import PAPER


class SDMoEConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experts: int = Field(6, ge=1, le=64, description="n BiGRU experts (paper: unspecified; 6 is the least where α=2 routes)")
    alpha: float = Field(2.0, gt=0, le=100, description="α: keep experts with weights in (μ − ασ, μ + ασ)")
    temperature: float = Field(0.5, gt=0, le=100, description="τ of the Gumbel-softmax gate")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout on the mixed output")


def routing_mask(weights: torch.Tensor, alpha: float) -> torch.Tensor:
    """Which experts stay active: |w_i − μ| < α·σ per token (population σ). (..., n) → bool (..., n).

    μ and σ are taken in float64: for nearly tied weights float32 rounding alone pushes a z-score
    past √(n−1) (by up to 1.5 % for n = 2), deactivating experts the bound says must stay.
    """
    weights = weights.double()
    mean = weights.mean(dim=-1, keepdim=True)
    spread = weights.std(dim=-1, keepdim=True, correction=0)
    keep = (weights - mean).abs() < alpha * spread
    keep = keep | (spread == 0)  # all weights equal: the open interval is empty, keep everyone
    best = F.one_hot(weights.argmax(dim=-1), weights.shape[-1]).bool()
    return torch.where(keep.any(dim=-1, keepdim=True), keep, best)


def gumbel_noise(like: torch.Tensor) -> torch.Tensor:
    """g = −log(−log R), R ~ U(0, 1) (clamped away from 0 and 1)."""
    uniform = torch.rand_like(like).clamp(1e-9, 1 - 1e-9)
    return -torch.log(-torch.log(uniform))


class BiGRUExpert(nn.Module):
    """x (B, L, H), lengths (B,) → (B, L, H)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.gru = nn.GRU(hidden_size, hidden_size // 2, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


def search_space(trial, prefix: str) -> dict:
    return {
        "experts": trial.suggest_int(f"{prefix}experts", 2, 8),
        "alpha": trial.suggest_float(f"{prefix}alpha", 0.5, 3.0),
        "temperature": trial.suggest_float(f"{prefix}temperature", 0.1, 2.0, log=True),
    }


@component("mixer", "sdmoe", config=SDMoEConfig, search_space=search_space, paper=PAPER)
class SDMoEMixer(nn.Module):
    """U_m (B, L, H), mask (B, L) → MixerOutput(SD_m (B, L, H), metrics={"active_experts"})."""

    def __init__(self, config: SDMoEConfig, *, hidden_size: int) -> None:
        super().__init__()
        if hidden_size % 2:
            raise ValueError(f"SDMoE's BiGRU experts need an even hidden size, got {hidden_size}")
        self.alpha = config.alpha
        self.temperature = config.temperature
        self.experts = nn.ModuleList(BiGRUExpert(hidden_size) for _ in range(config.experts))
        self.gate = nn.Linear(hidden_size, config.experts)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> MixerOutput:
        lengths = mask.sum(dim=1).cpu()  # (B,)
        expert_outputs = torch.stack([expert(x, lengths) for expert in self.experts], dim=-2)  # (B, L, n, H)
        weights = self.gate(x)  # (B, L, n)
        active = routing_mask(weights.detach(), self.alpha)  # (B, L, n); routing itself is not differentiated
        logits = weights + gumbel_noise(weights) if self.training else weights
        logits = (logits / self.temperature).masked_fill(~active, float("-inf"))
        gates = torch.softmax(logits, dim=-1)  # (B, L, n), zero for deactivated experts
        mixed = (gates.unsqueeze(-1) * expert_outputs).sum(dim=-2)  # (B, L, H)
        active_per_token = active.sum(dim=-1).float()[mask]  # (N,)
        return MixerOutput(hidden=self.dropout(mixed), metrics={"active_experts": active_per_token.mean()})
