"""GraphSmile's inter-modal graph of one modality pair (Li, Wang, Zeng, "Tracing Intricate Cues in
Dialogue: Joint Graph Structure and Sentiment Dynamics for Multimodal Emotion Recognition", IEEE
TPAMI 2025, arXiv:2407.21536: the GSF module's heterogeneous graph; the authors' code
``HeterGConv_Edge``), built for a whole padded batch at once as dense (B, 2L, 2L) tensors.

Nodes: the utterances of one dialogue seen through two modalities a and b, ordered modality-major,
so node ``i`` is utterance i of modality a and node ``L + i`` utterance i of modality b.

Edges: only *between* the two modalities. Node a_i receives an edge from b_j (and b_i from a_j)
for every real j in i's context window i − p ≤ j ≤ i + f (:func:`merc_bench.layers.window_mask`,
p/f = the paper's past/future windows), j = i included — an utterance's own other-modality node is
its closest inter-modal neighbour. There are no edges within a modality and no self-loops: the
graph is bipartite, so one propagation step brings the other modality's cues and two steps bring
the same modality's context back (the paper's "alternating" inter- and intra-modal layers).

Weights: ``uniform`` gives every edge weight 1. ``offset`` scales every edge by a learned weight
of its direction (a → b or b → a) and its offset j − i, initialised to 1. The authors' code learns
one weight per *position in its list of the batch's edges* (a 500,000-long vector, sliced to the
batch's edge count), so which weight an edge gets there depends on the lengths of the dialogues
before it in the batch; per-direction-and-offset weights are the closest reading that gives the
same edge the same weight in every batch.

Normalisation: P = D^-1/2 A D^-1/2 with D the row sums of A (Kipf and Welling, ICLR 2017, Eq. 2,
here without the added self-loops, as in the authors' code); padded nodes have no edges.
"""

from __future__ import annotations

import torch

from merc_bench.layers import symmetric_normalise, window_mask

__all__ = ["offset_index", "pair_adjacency", "pair_edges"]


def offset_index(length: int, past: int, future: int, device: torch.device | None = None) -> torch.Tensor:
    """(L, L) long: [i, j] = (j − i) + past, the slot of offset j − i in a (past + 1 + future)-long
    weight vector; offsets outside the window are clamped into range (their edges do not exist)."""
    position = torch.arange(length, device=device)
    return (position[None, :] - position[:, None] + past).clamp(0, past + future)


def _bipartite(to_a: torch.Tensor, to_b: torch.Tensor) -> torch.Tensor:
    """Blocks (B, L, L) a ← b and b ← a → (B, 2L, 2L) with empty blocks within each modality."""
    none = torch.zeros_like(to_a)
    return torch.cat([torch.cat([none, to_a], dim=2), torch.cat([to_b, none], dim=2)], dim=1)


def pair_edges(mask: torch.Tensor, past: int, future: int) -> torch.Tensor:
    """(B, L) real-utterance mask → (B, 2L, 2L) bool: which node pairs of a modality pair are connected.

    ``[b, i, L + j]`` (a_i ← b_j) and ``[b, L + i, j]`` (b_i ← a_j) are True when j is in i's window
    and both are real; the two diagonal blocks (edges within a modality) are all False.
    """
    window = window_mask(mask, past, future)  # (B, L, L)
    return _bipartite(window, window)


def pair_adjacency(
    mask: torch.Tensor, past: int, future: int, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """The normalised adjacency P (B, 2L, 2L) of a modality pair's graph.

    ``weights`` (2, past + 1 + future), or None for uniform weights: row 0 weighs the edges a ← b,
    row 1 the edges b ← a, each indexed by the offset j − i (:func:`offset_index`).
    """
    length = mask.shape[1]
    window = window_mask(mask, past, future)  # (B, L, L)
    if weights is None:
        to_a = to_b = window.float()
    else:
        slots = offset_index(length, past, future, mask.device)  # (L, L)
        to_a = torch.where(window, weights[0][slots], 0.0)  # (B, L, L): a_i ← b_j
        to_b = torch.where(window, weights[1][slots], 0.0)  # (B, L, L): b_i ← a_j
    return symmetric_normalise(_bipartite(to_a, to_b))
