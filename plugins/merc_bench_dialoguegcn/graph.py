"""DialogueGCN's utterance graph (Ghosal et al., EMNLP 2019, §3.3, the speaker-level context
encoder's graph construction), built for a whole padded batch at once as dense tensors.

Nodes are the utterances of one dialogue. Utterance i receives an edge from every utterance j of
its context window, i − p ≤ j ≤ i + f, j ≠ i (the paper's past window p and future window f, 10/10
by default). The self-connection of Eq. 2 is a separate term in the fuser, not an edge here.

Every edge j → i has a relation type that depends on who speaks each utterance and on whether j
comes before i ("past") or after it ("future") (the paper's edge relations). Two relation schemes:

* ``speaker_pairs`` — the paper's: one relation per (past or future, speaker of j, speaker of i),
  so 2·M² relations for M speakers;
* ``same_or_different`` — (past or future, same speaker or not): 4 relations whatever the number
  of speakers, for corpora such as MELD where speaker indices carry no identity across dialogues.

The speaker index can be the dataset's own (``dataset``: IEMOCAP's M/F slots, MELD's one-hot
slots) or recomputed as the order in which speakers first talk within the dialogue
(``first_appearance``). Indices at or above ``max_speakers`` share the last slot, which bounds the
relation count at 2·max_speakers².

Relation index of an edge j → i: ``direction · M² + speaker(j) · M + speaker(i)`` with direction
0 = past, 1 = future (``speaker_pairs``), or ``direction · 2 + (0 if same speaker else 1)``
(``same_or_different``). Adjacency tensors are indexed ``[batch, relation, target i, source j]``.
"""

from __future__ import annotations

from typing import Literal

import torch

from merc_bench.layers import window_mask  # shared with other graph fusers; the fuser imports it from here

RelationScheme = Literal["speaker_pairs", "same_or_different"]
SpeakerOrder = Literal["dataset", "first_appearance"]

PAST, FUTURE = 0, 1


def relation_count(scheme: RelationScheme, max_speakers: int) -> int:
    """R, the number of relation types of a scheme."""
    return 2 * max_speakers**2 if scheme == "speaker_pairs" else 4


def first_appearance_order(speakers: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L) speaker indices → (B, L) ranks: 0 for whoever talks first in the dialogue, 1 next, ...

    Padded positions get rank 0 (they take part in no edge).
    """
    length = speakers.shape[1]
    position = torch.arange(length, device=speakers.device)
    same = (speakers[:, :, None] == speakers[:, None, :]) & mask[:, :, None] & mask[:, None, :]  # (B, L, L)
    # First position where each utterance's speaker talks (L for padded rows, which match nothing).
    first = torch.where(same, position[None, None, :], length).amin(dim=-1)  # (B, L)
    is_first = (first == position[None, :]) & mask  # (B, L): this utterance introduces its speaker
    # Rank = how many speakers were introduced strictly before this speaker's first utterance.
    rank = (is_first[:, None, :] & (position[None, None, :] < first[:, :, None])).sum(dim=-1)  # (B, L)
    return torch.where(mask, rank, torch.zeros_like(rank))


def speaker_slots(speakers: torch.Tensor, mask: torch.Tensor, order: SpeakerOrder, max_speakers: int) -> torch.Tensor:
    """(B, L) speaker indices → (B, L) slots in [0, max_speakers); padded positions get slot 0."""
    slots = first_appearance_order(speakers, mask) if order == "first_appearance" else speakers
    slots = slots.clamp(0, max_speakers - 1)  # speakers beyond the bound share the last slot
    return torch.where(mask, slots, torch.zeros_like(slots))


def relation_types(slots: torch.Tensor, scheme: RelationScheme, max_speakers: int) -> torch.Tensor:
    """(B, L) speaker slots → (B, L, L) long, [b, i, j] the relation of an edge j → i (any i, j)."""
    length = slots.shape[1]
    position = torch.arange(length, device=slots.device)
    direction = (position[None, :] > position[:, None]).long()[None]  # (1, L, L): 1 when j is after i
    source, target = slots[:, None, :], slots[:, :, None]  # (B, 1, L) for j, (B, L, 1) for i
    if scheme == "speaker_pairs":
        return direction * max_speakers**2 + source * max_speakers + target
    return direction * 2 + (source != target).long()


def relation_adjacency(
    speakers: torch.Tensor,
    mask: torch.Tensor,
    *,
    past: int,
    future: int,
    scheme: RelationScheme = "speaker_pairs",
    max_speakers: int = 2,
    order: SpeakerOrder = "dataset",
) -> torch.Tensor:
    """The relation-typed edges of a batch: (B, L) speakers and mask → (B, R, L, L) bool.

    ``[b, r, i, j]`` is True when utterance j sends an edge of relation r to utterance i. Every
    edge has exactly one relation; there are no self-edges and no edges from or to padding.
    """
    edges = window_mask(mask, past, future)  # (B, L, L)
    edges = edges & ~torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)[None]
    slots = speaker_slots(speakers, mask, order, max_speakers)  # (B, L)
    types = relation_types(slots, scheme, max_speakers)  # (B, L, L)
    relations = torch.arange(relation_count(scheme, max_speakers), device=mask.device)
    return (types[:, None] == relations[None, :, None, None]) & edges[:, None]  # (B, R, L, L)
