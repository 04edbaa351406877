"""SDT's one-layer transformer block, used by the intra-modal mixer and the cross-modal fuser.

Ma et al. (2023) §III-C, with the layer as in the authors' code (reference-models.md §2, item 3):

    h   = target + Drop(MHA(query=target, key=value=source))      # no LayerNorm before attention
    out = h + Drop(W2 · Drop(GELU_tanh(W1 · LN(h))))               # feed-forward size H, LN eps 1e-6

Padded keys are masked. Attention is :func:`merc_bench.layers.masked_attention`
(``scaled_dot_product_attention``: fused kernels, attention-probability dropout as in the original);
the projections, the per-utterance gathering and the cheaper CPU dropout stay here, SDT's own. The original allocates a second LayerNorm per
layer that a one-layer encoder never applies; it is left out, so parameter counts differ by
2·H per block from the original's printout, with identical math.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from merc_bench.layers import masked_attention


class SDTTransformerBlock(nn.Module):
    """query (B, L, H) attends over source (B, L, H) → (B, L, H); padded rows of the output are 0.

    Every per-utterance layer (projections, feed-forward, LayerNorm) runs on the N real
    utterances only, gathered from the padded batch; only the attention itself sees the padded
    (B, L) layout. The math for real utterances is the original's; MELD batches of 8 dialogues are
    about half padding, which the original computed through every layer.
    """

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

    def forward(self, target: torch.Tensor, source: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
        """``source=None`` is self-attention (SDT's intra-modal transformer: one shared input dropout)."""
        batch, length, hidden = target.shape
        real = real_positions(mask)
        return scatter_rows(self.forward_tokens(target, source, mask, real), real, batch * length).view(
            batch, length, hidden
        )

    def forward_tokens(
        self, target: torch.Tensor, source: torch.Tensor | None, mask: torch.Tensor, real: torch.Tensor
    ) -> torch.Tensor:
        """Like :meth:`forward`, but returns only the N real utterances' rows: (N, H)."""
        batch, length, hidden = target.shape
        # Each transformer in SDT drops out its own inputs (after speaker/position embeddings).
        target_tokens = dropout(target.reshape(-1, hidden).index_select(0, real), self.dropout, self.training)
        source_tokens = (
            target_tokens
            if source is None
            else dropout(source.reshape(-1, hidden).index_select(0, real), self.dropout, self.training)
        )  # (N, H)
        query = scatter_rows(self.query(target_tokens), real, batch * length)  # (B·L, H)
        key_value = scatter_rows(self.key_value(source_tokens), real, batch * length)  # (B·L, 2H)
        attended = masked_attention(
            query.view(batch, length, hidden), key_value.view(batch, length, 2 * hidden), mask, self.heads,
            self.dropout if self.training else 0.0,
        )  # (B, L, H): only the attention itself sees the padded layout
        attended = attended.reshape(batch * length, hidden).index_select(0, real)  # (N, H)
        hidden_states = target_tokens + dropout(self.output(attended), self.dropout, self.training)
        inner = F.gelu(self.feed_forward_in(self.norm(hidden_states)), approximate="tanh")
        inner = self.feed_forward_out(dropout(inner, self.dropout, self.training))
        return hidden_states + dropout(inner, self.dropout, self.training)  # (N, H)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout: keep each value with probability 1 − p and scale it by 1 / (1 − p).

    The same distribution as ``F.dropout``; on the CPU the keep-mask comes from uniform draws,
    about 3× faster there than ``F.dropout``'s Bernoulli sampler (SDT runs ~50 dropouts a step).
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    return x * (torch.rand_like(x) >= p) * (1.0 / (1.0 - p))


def real_positions(mask: torch.Tensor) -> torch.Tensor:
    """(B, L) mask → (N,) flat indices of the real utterances, in (B, L) order."""
    return mask.reshape(-1).nonzero().squeeze(1)


def scatter_rows(tokens: torch.Tensor, real: torch.Tensor, rows: int) -> torch.Tensor:
    """(N, F) real-utterance rows → (rows, F) with zeros at padded rows."""
    return tokens.new_zeros(rows, tokens.shape[1]).index_copy(0, real, tokens)
