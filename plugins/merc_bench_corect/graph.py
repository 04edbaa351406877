"""CORECT's relational temporal graph (Nguyen, Mai, Le, Kieu, Le, "Conversation Understanding using
Relational Temporal Graph Neural Networks with Auxiliary Cross-Modality Interaction", Findings of
EMNLP 2023, RT-GCN's graph construction, as the authors' code leson502/CORECT_EMNLP2023 builds it),
built for a whole padded batch at once as dense tensors.

Nodes: one per (modality, utterance) pair of a dialogue, ordered modality-major, so node ``m·L + i``
is utterance i seen through modality m (M modalities, L padded utterances, N = M·L nodes).

Edges j → i (every edge has exactly one relation type; none from or to padding):

* temporal (``temporal=True``) — within one modality m, from every utterance j of i's window
  i − past ≤ j ≤ i + future (:func:`merc_bench.layers.window_mask`), i itself included. Relation
  ``direction · M + m`` with direction 0 = past (j < i), 1 = future (j > i), 2 = the node itself,
  so 3·M temporal relations, one set per modality. With ``temporal=False`` each node only has its
  self-edge, relation ``m`` (M relations), as the authors' ``edge_type="multi"``.
* cross-modal (``cross_modal=True``) — between the nodes of the same real utterance in two
  different modalities, one relation per ordered pair (source modality k, target modality m):
  M·(M − 1) relations after the temporal ones.

Speakers are not relation types here (unlike DialogueGCN's): CORECT adds a speaker embedding to
the node features instead (the ``corect`` encoder).

Windows: the authors' code builds, for every centre utterance c, edges from c to the utterances of
``range(c − past, c + future)`` (a half-open slice), and PyTorch Geometric passes messages from an
edge's first node to its second. Utterance i therefore *receives* from i − (future − 1) … i + past:
the roles of the two windows are swapped and the future one is one shorter than its name.
:func:`received_window` converts either reading into the (past, future) window an utterance reads.

Adjacency tensors are indexed ``[batch, relation, target node, source node]``.
"""

from __future__ import annotations

from typing import Literal

import torch

from merc_bench.layers import window_mask

WindowConvention = Literal["paper", "authors_code"]

PAST, FUTURE, ITSELF = 0, 1, 2


def received_window(past: int, future: int, convention: WindowConvention) -> tuple[int, int]:
    """(past, future) as configured → (past, future) utterances a node receives messages from.

    ``paper``: as written, i − past … i + future. ``authors_code``: i − (future − 1) … i + past
    (see the module docstring); ``future`` must then be at least 1, or no node would read itself.
    """
    if convention == "paper":
        return past, future
    if future < 1:
        raise ValueError("window_convention='authors_code' needs window_future >= 1 (the authors' slice "
                         "range(c - past, c + future) excludes the centre utterance when future is 0)")
    return future - 1, past


def relation_count(modalities: int, *, temporal: bool = True, cross_modal: bool = True) -> int:
    """R: 3·M temporal (or M self-edge) relations, plus M·(M − 1) cross-modal ones."""
    return (3 if temporal else 1) * modalities + (modalities * (modalities - 1) if cross_modal else 0)


def node_layout(length: int, modalities: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) modality and (N,) utterance of every node, modality-major."""
    modality = torch.arange(modalities, device=device).repeat_interleave(length)
    utterance = torch.arange(length, device=device).repeat(modalities)
    return modality, utterance


def node_mask(mask: torch.Tensor, modalities: int) -> torch.Tensor:
    """(B, L) real-utterance mask → (B, M·L): the real nodes."""
    return mask.repeat(1, modalities)


def relation_adjacency(
    mask: torch.Tensor,
    modalities: int,
    *,
    past: int,
    future: int,
    temporal: bool = True,
    cross_modal: bool = True,
) -> torch.Tensor:
    """The relation-typed edges of a batch: (B, L) mask → (B, R, M·L, M·L) bool.

    ``past`` and ``future`` are the window a node receives from (see :func:`received_window`).
    ``[b, r, n, n']`` is True when node n' sends an edge of relation r to node n.
    """
    length = mask.shape[1]
    modality, utterance = node_layout(length, modalities, mask.device)  # (N,), (N,)
    same_modality = modality[:, None] == modality[None, :]  # (N, N)
    same_utterance = utterance[:, None] == utterance[None, :]  # (N, N)
    real = node_mask(mask, modalities)  # (B, N)
    both_real = real[:, :, None] & real[:, None, :]  # (B, N, N)

    if temporal:
        window = window_mask(mask, past, future)  # (B, L, L) over utterances, i itself included
        in_window = window[:, utterance[:, None], utterance[None, :]]  # (B, N, N)
        intra = in_window & same_modality[None]  # (B, N, N)
        source, target = utterance[None, :], utterance[:, None]
        direction = torch.where(source < target, PAST, torch.where(source > target, FUTURE, ITSELF))  # (N, N)
        intra_type = direction * modalities + modality[:, None]  # (N, N): direction · M + m
    else:
        intra = (same_modality & same_utterance)[None] & both_real  # self-edges only
        intra_type = modality[:, None].expand(-1, modality.shape[0])  # (N, N): m
    temporal_relations = (3 if temporal else 1) * modalities

    relations = torch.arange(relation_count(modalities, temporal=temporal, cross_modal=cross_modal),
                             device=mask.device)  # (R,)
    edges = (intra_type[None, None] == relations[None, :, None, None]) & intra[:, None]  # (B, R, N, N)
    if cross_modal and modalities > 1:
        inter = (same_utterance & ~same_modality)[None] & both_real  # (B, N, N)
        src, tgt = modality[None, :], modality[:, None]  # (1, N) source k, (N, 1) target m
        # Index of the ordered pair (k, m), k ≠ m, among the M·(M − 1) pairs: k·(M − 1) + rank of m without k.
        pair = src * (modalities - 1) + torch.where(tgt < src, tgt, tgt - 1)  # (N, N); meaningless where k = m
        inter_type = temporal_relations + pair  # (N, N)
        edges = edges | ((inter_type[None, None] == relations[None, :, None, None]) & inter[:, None])
    return edges
