"""M3Net's two graphs over a dialogue (Chen, Shao, Zhu, Shen, "Multivariate, Multi-frequency and
Multimodal: Rethinking Graph Neural Networks for Emotion Recognition in Conversation", CVPR 2023,
§3; equations are cited by what they compute, the paper's numbering was not at hand), built for a
whole padded batch at once as dense tensors.

Nodes: one per (modality, utterance) pair, ordered modality-major as in MMGCN, so node ``m·L + i``
is utterance i seen through modality m (M modalities, L padded utterances, N = M·L).

1. The **hypergraph** (multivariate relations, §3.2): an edge that joins any number of nodes.
   Hyperedge k < M is modality k's *context* hyperedge, joining that modality's nodes of every
   real utterance of the dialogue; hyperedge M + i is utterance i's *multimodal* hyperedge, joining
   its M nodes. The incidence matrix H is (B, N, E) with E = M + L; a padded utterance's
   hyperedge is empty and its nodes belong to no hyperedge.
2. The **multi-frequency graph** (§3.3): an ordinary graph with the intra-modal edges between an
   utterance and the others of its modality within a window (the authors' run scripts use the
   whole dialogue: ``past = future = None``) and inter-modal edges between the nodes of the same
   utterance, without self-loops (the filters below add the node's own term), normalised as
   Ã = D^-1/2 A D^-1/2 (:func:`merc_bench.layers.multimodal_edge_mask` and
   :func:`merc_bench.layers.symmetric_normalise`).

Frequency filters (the spectral reading of §3.3, after FAGCN: Bo, Wang, Shi, Shen, "Beyond
Low-frequency Information in Graph Convolutional Networks", AAAI 2021, §3): the normalised
Laplacian L = I − Ã has eigenvalues in [0, 2]; the low-pass filter F_L = εI + Ã = (ε + 1)I − L
keeps the smooth (low-eigenvalue) components of a graph signal, the high-pass filter
F_H = εI − Ã = (ε − 1)I + L keeps the rapidly changing ones. An edge that mixes the two with
weights α^L_ij + α^H_ij = 1 applies (α^L_ij − α^H_ij) Ã_ij = g_ij Ã_ij with g_ij ∈ [−1, 1]:
g = 1 is pure low-pass aggregation (the neighbours' average is added), g = −1 pure high-pass (it is
subtracted). :func:`frequency_filters` builds F_L and F_H as dense matrices; the fuser computes
εx + (g ⊙ Ã) x without forming them, and a test checks that the two agree.
"""

from __future__ import annotations

import torch

from merc_bench.layers import multimodal_edge_mask, symmetric_normalise


def hyperedge_incidence(mask: torch.Tensor, modalities: int) -> torch.Tensor:
    """(B, L) real-utterance mask → incidence H (B, M·L, M + L), float: H[b, v, e] = 1 when node v is in e.

    Columns 0..M−1 are the modalities' context hyperedges, column M + i utterance i's multimodal one.
    """
    length = mask.shape[1]
    device = mask.device
    modality = torch.arange(modalities, device=device).repeat_interleave(length)  # (N,): node → modality
    utterance = torch.arange(length, device=device).repeat(modalities)  # (N,): node → utterance
    context = modality[:, None] == torch.arange(modalities, device=device)[None, :]  # (N, M)
    multimodal = utterance[:, None] == torch.arange(length, device=device)[None, :]  # (N, L)
    incidence = torch.cat([context, multimodal], dim=1)  # (N, E)
    real = mask.repeat(1, modalities)  # (B, N): padded nodes join nothing
    return (incidence[None] & real[:, :, None]).to(torch.float32)  # (B, N, E)


def frequency_adjacency(mask: torch.Tensor, modalities: int, *, past: int | None = None,
                        future: int | None = None) -> torch.Tensor:
    """(B, L) mask → Ã = D^-1/2 A D^-1/2 (B, M·L, M·L) of the multi-frequency graph (no self-loops)."""
    edges = multimodal_edge_mask(mask, modalities, past=past, future=future, self_loops=False)  # (B, N, N)
    return symmetric_normalise(edges.to(torch.float32))


def frequency_filters(adjacency: torch.Tensor, epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ã (B, N, N) → (F_L, F_H) = (εI + Ã, εI − Ã), the low- and high-pass filters, each (B, N, N)."""
    identity = torch.eye(adjacency.shape[-1], dtype=adjacency.dtype, device=adjacency.device)[None]
    return epsilon * identity + adjacency, epsilon * identity - adjacency
