"""CORECT's pairwise cross-modal feature interaction, P-CM (Nguyen et al., Findings of EMNLP 2023),
built on the cross-modal transformer of MulT (Tsai et al., "Multimodal Transformer for
Unaligned Multimodal Language Sequences", ACL 2019, §3.1–3.2: crossmodal attention
CM_{k→m}(X_m, X_k) = softmax(Q_m K_kᵀ / √d) V_k inside a pre-norm transformer block).

For every target modality m and every other modality k a cross-modal transformer reads the whole
dialogue: queries from modality m, keys and values from modality k, ``crossmodal_layers`` layers of
``crossmodal_heads`` heads. The M − 1 outputs of a target are concatenated ((M − 1)·H) and a
self-attention transformer (``self_attention_layers`` × ``self_attention_heads``) runs over them.
The M results are concatenated per utterance: (B, L, M·(M − 1)·H). P-CM needs two modalities; with
one there is nothing to pair (the authors' code switches it off too).

A block, as MulT's code (which CORECT's reuses): inputs scaled by √width; per layer
x ← x + Attn(LN(x), LN(source), LN(source)) and x ← x + W₂ ReLU(W₁ LN(x)) (W₁: width → 4·width),
one LayerNorm per sub-layer, the first shared by query and source; a final LayerNorm. No position
encoding and no dropout (the authors leave MulT's dropouts at their default 0 and add no positions).

Differences from the authors' code: padded utterances are masked out of every attention (theirs
attends to them); the linear layers use PyTorch's default initialisation (theirs Xavier-uniform with
zero biases for the feed-forward layers), which changes nothing but the starting point.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from merc_bench.layers import MaskedMultiHeadAttention


class CrossmodalLayer(nn.Module):
    """query (B, L, W), source (B, L, W), mask (B, L) → (B, L, W): one pre-norm MulT layer."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attention = MaskedMultiHeadAttention(width, heads, dropout=0.0)
        self.attention_norm = nn.LayerNorm(width)  # applied to the query and to the source, as in MulT
        self.feed_forward = nn.Sequential(nn.Linear(width, 4 * width), nn.ReLU(), nn.Linear(4 * width, width))
        self.feed_forward_norm = nn.LayerNorm(width)

    def forward(self, query: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = query + self.attention(self.attention_norm(query), self.attention_norm(source), mask)
        return x + self.feed_forward(self.feed_forward_norm(x))


class CrossmodalTransformer(nn.Module):
    """query (B, L, W), optional source (B, L, W), mask (B, L) → (B, L, W).

    Without a source the block is self-attention (MulT's encoder over one sequence).
    """

    def __init__(self, width: int, *, heads: int, layers: int) -> None:
        super().__init__()
        self.scale = math.sqrt(width)  # MulT's embed_scale
        self.layers = nn.ModuleList(CrossmodalLayer(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)

    def forward(self, query: torch.Tensor, mask: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        x = self.scale * query
        scaled_source = None if source is None else self.scale * source
        for layer in self.layers:
            x = layer(x, x if scaled_source is None else scaled_source, mask)
        return self.norm(x)


class PairwiseCrossmodal(nn.Module):
    """states[m] (B, L, H) for M ≥ 2 modalities, mask (B, L) → (B, L, M·(M − 1)·H)."""

    def __init__(self, modalities: tuple[str, ...], hidden_size: int, *, crossmodal_layers: int,
                 crossmodal_heads: int, self_attention_layers: int, self_attention_heads: int) -> None:
        super().__init__()
        if len(modalities) < 2:
            raise ValueError("P-CM pairs modalities: it needs at least two")
        self.modalities = tuple(modalities)
        self.pairs = nn.ModuleDict({
            f"{source}_to_{target}": CrossmodalTransformer(hidden_size, heads=crossmodal_heads, layers=crossmodal_layers)
            for target in self.modalities for source in self.modalities if source != target
        })
        joined = (len(self.modalities) - 1) * hidden_size
        self.memories = nn.ModuleDict({
            target: CrossmodalTransformer(joined, heads=self_attention_heads, layers=self_attention_layers)
            for target in self.modalities
        })

    @property
    def output_size(self) -> int:
        return sum(memory.norm.normalized_shape[0] for memory in self.memories.values())

    def forward(self, states: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        outputs = []
        for target in self.modalities:
            crossed = [self.pairs[f"{source}_to_{target}"](states[target], mask, source=states[source])
                       for source in self.modalities if source != target]  # (M − 1) × (B, L, H)
            outputs.append(self.memories[target](torch.cat(crossed, dim=-1), mask))  # (B, L, (M − 1)·H)
        return torch.cat(outputs, dim=-1)  # (B, L, M·(M − 1)·H)
