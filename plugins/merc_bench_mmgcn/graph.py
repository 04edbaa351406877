"""MMGCN's multimodal dialogue graph (Hu, Liu, Zhao, Jin, "MMGCN: Multimodal Fusion via Deep Graph
Convolution Network for Emotion Recognition in Conversation", ACL 2021, §3, graph construction),
built for a whole padded batch at once as dense (B, N, N) tensors with N = M·L.

Nodes: one per (modality, utterance) pair of a dialogue, ordered modality-major, so node
``m·L + i`` is utterance i seen through modality m (M modalities, L padded utterances).

Edges (undirected, weighted):
* intra-modal — every pair of real utterances of the same modality and dialogue, each node with
  itself included (its weight is the similarity of a vector with itself, ≈ 1: the self-loop of
  the renormalised GCN adjacency);
* inter-modal — the nodes of the same real utterance in two different modalities.

Weight of an edge (the paper's edge-weighting equation for A_ij): the angular similarity of the two node vectors,
1 − arccos(sim(x_i, x_j)) / π with sim the cosine similarity, in [0, 1]. The cosine is shrunk by
``(1 − 1e-5)`` before arccos, whose slope is infinite at ±1 (a vector with itself, or two
parallel vectors, would otherwise send an infinite gradient); the authors' code does the same.

Normalisation: P̃ = D^-1/2 A D^-1/2 with D the row sums of A. Padded nodes have no edges (zero
rows and columns); their degree is treated as 1 so nothing divides by zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from merc_bench.layers import multimodal_edge_mask, symmetric_normalise

#: keeps arccos away from ±1, where its derivative is infinite
COSINE_SHRINK = 1.0 - 1e-5


def edge_mask(mask: torch.Tensor, modalities: int) -> torch.Tensor:
    """(B, L) real-utterance mask → (B, M·L, M·L) bool: which node pairs are connected.

    ``[b, m·L + i, n·L + j]`` is True for m = n (same modality, any real i, j, including i = j)
    and for m ≠ n with i = j (same utterance, two modalities).
    """
    return multimodal_edge_mask(mask, modalities)  # the whole dialogue, self-loops kept


def angular_similarity(nodes: torch.Tensor) -> torch.Tensor:
    """(B, N, H) node vectors → (B, N, N) 1 − arccos(cosine similarity) / π, in [0, 1], float32.

    Computed in float32 even under bf16 autocast: bf16 rounds the shrunk cosine 1 − 1e-5 back to 1.
    """
    with torch.autocast(nodes.device.type, enabled=False):
        unit = F.normalize(nodes.float(), dim=-1)  # eps inside: a zero vector gives cosine 0, not NaN
        cosine = (unit @ unit.transpose(1, 2)).clamp(-1.0, 1.0) * COSINE_SHRINK  # (B, N, N)
        return 1.0 - torch.arccos(cosine) / math.pi


def multimodal_adjacency(nodes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, M, L, H) node vectors and (B, L) mask → normalised weighted adjacency (B, M·L, M·L)."""
    batch, modalities, length, hidden = nodes.shape
    flat = nodes.reshape(batch, modalities * length, hidden)  # (B, N, H), modality-major
    connected = edge_mask(mask, modalities)  # (B, N, N)
    weights = angular_similarity(flat).masked_fill(~connected, 0.0)  # (B, N, N), float32
    return symmetric_normalise(weights)
