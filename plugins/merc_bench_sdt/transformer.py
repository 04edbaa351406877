"""SDT's one-layer transformer block, used by the intra-modal mixer and the cross-modal fuser.

Ma et al. (2023) §III-C, with the layer as in the authors' code (reference-models.md §2, item 3):

    h   = target + Drop(MHA(query=target, key=value=source))      # no LayerNorm before attention
    out = h + Drop(W2 · Drop(GELU_tanh(W1 · LN(h))))               # feed-forward size H, LN eps 1e-6

Padded keys are masked. Attention runs through ``scaled_dot_product_attention`` (fused kernels,
attention-probability dropout as in the original). The original allocates a second LayerNorm per
layer that a one-layer encoder never applies; it is left out, so parameter counts differ by
2·H per block from the original's printout, with identical math.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SDTTransformerBlock(nn.Module):
    """query (B, L, H) attends over source (B, L, H) → (B, L, H)."""

    def __init__(self, *, hidden_size: int, heads: int, dropout: float) -> None:
        super().__init__()
        if hidden_size % heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by heads {heads}")
        self.heads = heads
        self.dropout = dropout
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key_value = nn.Linear(hidden_size, 2 * hidden_size)
        self.output = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=1e-6)
        self.feed_forward_in = nn.Linear(hidden_size, hidden_size)
        self.feed_forward_out = nn.Linear(hidden_size, hidden_size)

    def forward(self, target: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = target.shape
        # Each transformer in SDT drops out its own inputs (after speaker/position embeddings).
        target = F.dropout(target, self.dropout, self.training)
        source = target if source is None else F.dropout(source, self.dropout, self.training)
        query = self.query(target).view(batch, length, self.heads, -1).transpose(1, 2)  # (B, heads, L, H/heads)
        key, value = self.key_value(source).view(batch, length, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        key_mask = mask[:, None, None, :]  # (B, 1, 1, L): True where the key is a real utterance
        attended = F.scaled_dot_product_attention(
            query, key, value, attn_mask=key_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, heads, L, H/heads)
        attended = self.output(attended.transpose(1, 2).reshape(batch, length, hidden))  # (B, L, H)
        hidden_states = target + F.dropout(attended, self.dropout, self.training)
        inner = F.gelu(self.feed_forward_in(self.norm(hidden_states)), approximate="tanh")
        inner = self.feed_forward_out(F.dropout(inner, self.dropout, self.training))
        return hidden_states + F.dropout(inner, self.dropout, self.training)
