"""Building blocks several papers' components share: masked multi-head attention, gated fusion of
modalities, sinusoidal positions.

Public API for plugins (see docs/architecture.md, "Layers"): a plugin uses these instead of writing
its own copy, so that one fix reaches every paper. Each block keeps the submodule names and the
order in which parameters are created that the plugins had before they moved here, so state dicts,
seeded initialisations and the golden outputs are unchanged.

* :func:`masked_attention` / :class:`MaskedMultiHeadAttention` — scaled dot-product attention
  (Vaswani et al., "Attention Is All You Need", NeurIPS 2017, §3.2.1–3.2.2, eqs. 1 and the
  multi-head definition) of a query sequence over a source sequence of the same dialogue, padded
  source utterances masked out. SDT's transformer blocks (Ma et al., IEEE TMM 2023, §III-C),
  SUMMER's DynAttn (Li et al. 2025, eq. 4: this times a learned scalar φ) and MultiEMO's MultiAttn
  (Shi and Huang, ACL 2023, §3) are all this attention.
* :func:`gated_fusion` / :class:`GatedFusion` — SDT's multimodal gated fusion (§III-D): one shared
  bias-free ``Linear(H, H)`` scores every modality per feature, a softmax across modalities weighs
  them, fused = Σ_m weight_m ⊙ h_m. SUMMER combines its HCMF branches the same way.
* :func:`sinusoidal_positions` — Vaswani et al. (2017) §3.5, used unscaled by SDT's encoder.
* :func:`window_mask`, :func:`multimodal_edge_mask`, :func:`symmetric_normalise` — dense dialogue
  graphs for a whole padded batch: utterance windows (the context windows of DialogueGCN, Ghosal et
  al., EMNLP 2019, §3.3, and of CORECT's relational temporal graph, Nguyen et al., Findings of EMNLP
  2023), the (modality, utterance) node graph with intra-modal and same-utterance inter-modal edges
  (MMGCN's and M3Net's), and the renormalised adjacency D^-1/2 A D^-1/2 of graph convolutions.

B dialogues, L utterances (padded), H hidden size, M modalities; the mask (B, L) is True for real
utterances.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GatedFusion", "MaskedMultiHeadAttention", "gated_fusion", "masked_attention", "multimodal_edge_mask",
           "sinusoidal_positions", "symmetric_normalise", "window_mask"]


def masked_attention(query: torch.Tensor, key_value: torch.Tensor, mask: torch.Tensor, heads: int,
                     dropout: float = 0.0) -> torch.Tensor:
    """softmax(Q Kᵀ / √d_k) V per head, padded keys masked; the projections are the caller's.

    ``query`` (B, L, H) is the projected query; ``key_value`` (B, L, 2H) the projected keys and
    values side by side (one ``Linear(H, 2H)``, so the source is read once); ``mask`` (B, L) marks
    the real source utterances; ``dropout`` is applied to the attention probabilities (pass 0 in
    eval mode). Returns the heads concatenated, (B, L, H), before any output projection. Runs
    through ``scaled_dot_product_attention`` (fused kernels where the device has them).
    """
    batch, length, hidden = query.shape
    q = query.view(batch, length, heads, -1).transpose(1, 2)  # (B, heads, L, H/heads)
    k, v = key_value.view(batch, length, 2, heads, -1).permute(2, 0, 3, 1, 4)  # each (B, heads, L, H/heads)
    attended = F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask[:, None, None, :], dropout_p=dropout
    )  # (B, heads, L, H/heads); the (B, 1, 1, L) mask hides padded keys from every query
    return attended.transpose(1, 2).reshape(batch, length, hidden)


class MaskedMultiHeadAttention(nn.Module):
    """query (B, L, H) attends over source (B, L, H), padded source utterances masked → (B, L, H).

    Standard multi-head attention with biased Q, K, V and output maps (K and V share one
    ``Linear(H, 2H)``, the parameter ``key_value``); dropout on the attention probabilities while
    training. Raises ``ValueError`` when ``heads`` does not divide ``hidden_size`` (in a component's
    constructor, that is the registry's refusal message).
    """

    def __init__(self, hidden_size: int, heads: int, dropout: float) -> None:
        super().__init__()
        if hidden_size % heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by heads {heads}")
        self.heads = heads
        self.dropout = dropout
        # Created in this order (query, key_value, output): a seeded model initialises them as before.
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key_value = nn.Linear(hidden_size, 2 * hidden_size)
        self.output = nn.Linear(hidden_size, hidden_size)

    def forward(self, query: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attended = masked_attention(self.query(query), self.key_value(source), mask, self.heads,
                                    self.dropout if self.training else 0.0)  # (B, L, H)
        return self.output(attended)


def gated_fusion(states: list[torch.Tensor], score: nn.Module) -> torch.Tensor:
    """Σ_m softmax_m(score(h_m)) ⊙ h_m: per-modality states M × (..., H) → fused (..., H).

    ``score`` maps (..., M, H) → (..., M, H) (SDT: one bias-free ``Linear(H, H)`` shared by every
    modality); the softmax runs across modalities, separately for each feature.
    """
    stacked = torch.stack(states, dim=-2)  # (..., M, H)
    weights = torch.softmax(score(stacked), dim=-2)  # (..., M, H)
    return (weights * stacked).sum(dim=-2)


class GatedFusion(nn.Module):
    """per-modality (..., H) × M → fused (..., H) by :func:`gated_fusion` with its own ``score`` layer.

    With one modality the softmax is 1 whatever the score, so the score layer cannot learn: it is
    frozen, not removed, so that creating it still draws the same random numbers (the weights
    initialised after it stay as they were).
    """

    def __init__(self, hidden_size: int, modalities: int) -> None:
        super().__init__()
        self.score = nn.Linear(hidden_size, hidden_size, bias=False)
        if modalities == 1:
            self.score.weight.requires_grad_(False)

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        return gated_fusion(states, self.score)


def sinusoidal_positions(length: int, size: int) -> torch.Tensor:
    """Vaswani et al. (2017) §3.5: PE[p, 2i] = sin(p / 10000^(2i/H)), PE[p, 2i+1] = cos(...). (L, H)"""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)  # (L, 1)
    frequency = torch.exp(torch.arange(0, size, 2, dtype=torch.float32) * (-math.log(10000.0) / size))
    table = torch.zeros(length, size)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


def window_mask(mask: torch.Tensor, past: int, future: int) -> torch.Tensor:
    """(B, L) real-utterance mask → (B, L, L) bool, [b, i, j] True when utterance j is in i's window.

    The window is i − past ≤ j ≤ i + future and includes i itself; both ends must be real.
    """
    length = mask.shape[1]
    position = torch.arange(length, device=mask.device)
    offset = position[None, :] - position[:, None]  # (L, L): j − i
    inside = (offset >= -past) & (offset <= future)  # (L, L)
    return inside[None] & mask[:, :, None] & mask[:, None, :]  # (B, L, L)


def multimodal_edge_mask(mask: torch.Tensor, modalities: int, *, past: int | None = None, future: int | None = None,
                         self_loops: bool = True) -> torch.Tensor:
    """(B, L) real-utterance mask → (B, M·L, M·L) bool: which (modality, utterance) nodes are connected.

    Nodes are ordered modality-major: node ``m·L + i`` is utterance i seen through modality m.
    ``[b, m·L + i, n·L + j]`` is True for m = n when j lies in i's window (``past``/``future``;
    ``None`` for either reaches the dialogue's end on that side) and for m ≠ n when i = j (the same
    utterance in two modalities). ``self_loops`` keeps or drops each node's edge with itself.
    Padded utterances have no edges.
    """
    length = mask.shape[1]
    device = mask.device
    modality = torch.arange(modalities, device=device).repeat_interleave(length)  # (N,): node → modality
    utterance = torch.arange(length, device=device).repeat(modalities)  # (N,): node → utterance
    same_modality = modality[:, None] == modality[None, :]  # (N, N)
    offset = utterance[None, :] - utterance[:, None]  # (N, N): j − i
    near = torch.ones_like(same_modality)
    if past is not None:
        near = near & (offset >= -past)
    if future is not None:
        near = near & (offset <= future)
    connected = (same_modality & near) | (offset == 0)  # (N, N)
    if not self_loops:
        connected = connected & ~torch.eye(len(modality), dtype=torch.bool, device=device)
    real = mask.repeat(1, modalities)  # (B, N)
    return connected[None] & real[:, :, None] & real[:, None, :]  # (B, N, N)


def symmetric_normalise(adjacency: torch.Tensor) -> torch.Tensor:
    """(B, N, N) weighted adjacency A → D^-1/2 A D^-1/2 (D = row sums; empty rows stay empty)."""
    degree = adjacency.sum(dim=-1)  # (B, N)
    scale = torch.where(degree > 0, degree, torch.ones_like(degree)).rsqrt()  # (B, N)
    return scale[:, :, None] * adjacency * scale[:, None, :]
