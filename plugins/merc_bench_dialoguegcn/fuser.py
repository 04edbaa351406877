"""DialogueGCN fuser (Ghosal, Majumder, Poria, Chhaya, Gelbukh, "DialogueGCN: A Graph Convolutional
Neural Network for Emotion Recognition in Conversation", EMNLP 2019).

1. Sequential context encoder (§3.2): g_i = BiGRU over the utterances. DialogueGCN is a text model;
   on several modalities it is run, as in the multimodal comparisons of MMGCN (Hu et al. 2021),
   on the early-fused (concatenated) features. ``context = "bigru"`` does exactly that: it
   concatenates the encoder outputs ``encoded[m]`` and runs its own BiGRU (H/2 units per
   direction, ``gru_layers`` layers, 2 as in the authors' code). ``context = "mixed"`` instead
   concatenates the mixer outputs (a per-modality context model, e.g. the ``bigru`` mixer) and
   projects them to H with one linear layer.
2. Edge weights (Eq. 1): α_ij = softmax over j in i's window (i included) of g_iᵀ W_e g_j.
3. Relational graph convolution (Eq. 2):
   h_i¹ = ReLU(Σ_r Σ_{j ∈ N_i^r} α_ij / |N_i^r| · W_r g_j + α_ii · W_0 g_i),
   relations and windows from :mod:`merc_bench_dialoguegcn.graph`. Optional basis decomposition
   W_r = Σ_b a_rb V_b (Schlichtkrull et al. 2018; the authors' code uses 30 bases), which keeps
   the 2·M² relations of MELD's 9 speaker slots affordable.
4. Graph convolution (Eq. 3): h_i² = ReLU(Σ_{j ∈ N_i} W h_j¹ + W_0 h_i¹), N_i = i's window without
   i. ``graph_aggregation = "mean"`` divides the sum by |N_i| (not in the paper).
5. h_i = [g_i; h_i²] (2H). With ``dialogue_attention`` (Eqs. 4–5, the authors' "nodal attention"):
   β_i = softmax over the dialogue's real utterances j of h_iᵀ W_β h_j, h̃_i = Σ_j β_ij h_j.
6. fused_i = Dropout(ReLU(W_l h̃_i + b_l)) (Eq. 6), (B, L, H); the model's head is Eq. 7's W_smax.

Choices where the paper is silent: every layer keeps the model's hidden size H (the paper uses
200 for g and 100 for the graph layers); the W_0 of Eqs. 2 and 3 carry the layers' biases; dropout
(0.5) is applied to g and to the fused output; the self-connection is the separate α_ii W_0 g_i
term of Eq. 2, not an edge with a relation (the authors' code makes it one). Relation weights of
relations absent from a batch get no gradient in it. The per-modality outputs are ``mixed``
unchanged.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from merc_bench import FuserOutput, component
from merc_bench_dialoguegcn.graph import relation_adjacency, relation_count, window_mask
from merc_bench_dialoguegcn.recipe import PAPER


class DialogueGCNConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    context: Literal["bigru", "mixed"] = Field(
        "bigru", description="own BiGRU over the concatenated encoder outputs, or the mixers' outputs"
    )
    gru_layers: int = Field(2, ge=1, le=4, description="layers of the own BiGRU (context='bigru')")
    window_past: int = Field(10, ge=0, le=10_000, description="p: edges from up to p earlier utterances")
    window_future: int = Field(10, ge=0, le=10_000, description="f: edges from up to f later utterances")
    relations: Literal["speaker_pairs", "same_or_different"] = Field(
        "speaker_pairs",
        description="2·M² (past/future, speaker of j, speaker of i) or 4 (past/future, same speaker?)",
    )
    speaker_order: Literal["dataset", "first_appearance"] = Field(
        "dataset", description="speaker slots as the dataset gives them, or by order of first turn in the dialogue"
    )
    max_speakers: int | None = Field(
        None, ge=1, le=32, description="M: speaker slots for relations (default: the dataset's); higher share the last"
    )
    bases: int | None = Field(
        None, ge=1, le=2048, description="basis decomposition of the relation weights (None: one weight per relation)"
    )
    graph_aggregation: Literal["sum", "mean"] = Field(
        "sum", description="Eq. 3 over the neighbours: sum (paper) or mean"
    )
    dialogue_attention: bool = Field(
        True, description="attention over the whole dialogue before classifying (Eqs. 4–5)"
    )
    dropout: float = Field(0.5, ge=0.0, lt=1.0)


class SequentialContext(nn.Module):
    """Early fusion + BiGRU: encoded[m] (B, L, H) × M, mask → g (B, L, H); padded steps never enter."""

    def __init__(self, input_size: int, hidden_size: int, layers: int, dropout: float) -> None:
        super().__init__()
        if hidden_size % 2:
            raise ValueError(f"the dialoguegcn BiGRU needs an even hidden size, got {hidden_size}")
        self.gru = nn.GRU(input_size, hidden_size // 2, num_layers=layers, batch_first=True, bidirectional=True,
                          dropout=dropout if layers > 1 else 0.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, mask.sum(dim=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, L, H)
        return out


class EdgeAttention(nn.Module):
    """Eq. 1: g (B, L, H), window (B, L, L) → α (B, L, L), each real row summing to 1 over its window."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.weight = nn.Linear(hidden_size, hidden_size, bias=False)  # W_e

    def forward(self, g: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        scores = torch.einsum("bih,bjh->bij", g, self.weight(g))  # (B, L, L): g_iᵀ W_e g_j
        # A padded row has an empty window; letting it attend to itself keeps its softmax finite.
        allowed = window | torch.eye(g.shape[1], dtype=torch.bool, device=g.device)[None]
        return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


class RelationalGraphConv(nn.Module):
    """Eq. 2: g (B, L, H), edges (B, R, L, L), α (B, L, L) → h¹ (B, L, H)."""

    def __init__(self, hidden_size: int, relations: int, bases: int | None) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(hidden_size)  # nn.Linear's default initialisation range
        kernels = relations if bases is None else bases
        # W_r, one per relation, or the bases V_b
        self.kernels = nn.Parameter(torch.empty(kernels, hidden_size, hidden_size).uniform_(-bound, bound))
        # a_rb with unit variance summed over b, so W_r = Σ_b a_rb V_b starts as large as a direct W_r.
        spread = math.sqrt(3.0 / bases) if bases is not None else 0.0
        self.coefficients = (
            nn.Parameter(torch.empty(relations, bases).uniform_(-spread, spread)) if bases is not None else None
        )
        self.root = nn.Linear(hidden_size, hidden_size)  # W_0 (with the layer's bias)

    def forward(self, g: torch.Tensor, edges: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        neighbours = edges.sum(dim=-1, keepdim=True).clamp_min(1)  # (B, R, L, 1): |N_i^r|
        weights = edges * alpha[:, None] / neighbours  # (B, R, L, L): α_ij / |N_i^r| on each edge
        if self.coefficients is not None:
            # Σ_r Σ_j w_rij g_j Σ_b a_rb V_b = Σ_b (Σ_j [Σ_r a_rb w_rij] g_j) V_b: mixing the edge weights
            # into the bases first aggregates over bases (30) instead of relations (162 on MELD).
            weights = torch.einsum("brij,rc->bcij", weights, self.coefficients)  # (B, bases, L, L)
        gathered = weights @ g[:, None]  # (B, R or bases, L, H): Σ_j per relation or basis, before W
        messages = torch.einsum("brih,rhk->bik", gathered, self.kernels)  # (B, L, H)
        self_weight = alpha.diagonal(dim1=1, dim2=2)[..., None]  # (B, L, 1): α_ii
        return torch.relu(messages + self_weight * self.root(g))


class NeighbourGraphConv(nn.Module):
    """Eq. 3: h¹ (B, L, H), neighbours (B, L, L) bool → h² (B, L, H)."""

    def __init__(self, hidden_size: int, aggregation: str) -> None:
        super().__init__()
        self.aggregation = aggregation
        self.neighbour = nn.Linear(hidden_size, hidden_size, bias=False)  # W
        self.root = nn.Linear(hidden_size, hidden_size)  # W_0

    def forward(self, h: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        adjacency = neighbours.to(h.dtype)  # (B, L, L)
        if self.aggregation == "mean":
            adjacency = adjacency / adjacency.sum(dim=-1, keepdim=True).clamp_min(1)
        return torch.relu(self.neighbour(adjacency @ h) + self.root(h))


class DialogueAttention(nn.Module):
    """Eqs. 4–5: h (B, L, D), mask (B, L) → h̃ (B, L, D), each utterance attending the whole dialogue."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight = nn.Linear(size, size, bias=False)  # W_β

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = torch.einsum("bid,bjd->bij", h, self.weight(h))  # (B, L, L): h_iᵀ W_β h_j
        beta = torch.softmax(scores.masked_fill(~mask[:, None, :], float("-inf")), dim=-1)  # over real j
        return beta @ h


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this fuser's options."""
    return {
        "window_past": trial.suggest_int(f"{prefix}window_past", 2, 12),
        "window_future": trial.suggest_int(f"{prefix}window_future", 0, 12),
        "relations": trial.suggest_categorical(f"{prefix}relations", ["speaker_pairs", "same_or_different"]),
        "dialogue_attention": trial.suggest_categorical(f"{prefix}dialogue_attention", [True, False]),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.1, 0.6),
    }


@component("fuser", "dialoguegcn", config=DialogueGCNConfig, search_space=search_space, paper=PAPER)
class DialogueGCNFuser(nn.Module):
    """mixed/encoded[m] (B, L, H), speakers and mask (B, L) → fused (B, L, H); per-modality = mixed."""

    def __init__(
        self, config: DialogueGCNConfig, *, modalities: tuple[str, ...], hidden_size: int, num_speakers: int
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.context = config.context
        self.window = (config.window_past, config.window_future)
        self.relations = config.relations
        self.speaker_order = config.speaker_order
        self.max_speakers = config.max_speakers or num_speakers
        joined = len(self.modalities) * hidden_size
        if config.context == "bigru":
            self.sequence = SequentialContext(joined, hidden_size, config.gru_layers, config.dropout)
        else:
            self.sequence = nn.Linear(joined, hidden_size)
        self.edge_attention = EdgeAttention(hidden_size)
        self.relational = RelationalGraphConv(hidden_size, relation_count(config.relations, self.max_speakers),
                                              config.bases)
        self.graph = NeighbourGraphConv(hidden_size, config.graph_aggregation)
        self.dialogue_attention = DialogueAttention(2 * hidden_size) if config.dialogue_attention else None
        self.output = nn.Linear(2 * hidden_size, hidden_size)  # W_l of Eq. 6
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        *,
        mixed: dict[str, torch.Tensor],
        encoded: dict[str, torch.Tensor],
        mask: torch.Tensor,
        speakers: torch.Tensor,
    ) -> FuserOutput:
        if self.context == "bigru":
            g = self.sequence(torch.cat([encoded[m] for m in self.modalities], dim=-1), mask)  # (B, L, H)
        else:
            g = self.sequence(torch.cat([mixed[m] for m in self.modalities], dim=-1))  # (B, L, H)
        g = self.dropout(g)
        past, future = self.window
        window = window_mask(mask, past, future)  # (B, L, L), i itself included
        edges = relation_adjacency(
            speakers, mask, past=past, future=future, scheme=self.relations,
            max_speakers=self.max_speakers, order=self.speaker_order,
        )  # (B, R, L, L)
        alpha = self.edge_attention(g, window)  # (B, L, L)
        h1 = self.relational(g, edges, alpha)  # (B, L, H)
        h2 = self.graph(h1, edges.any(dim=1))  # (B, L, H)
        h = torch.cat([g, h2], dim=-1)  # (B, L, 2H)
        if self.dialogue_attention is not None:
            h = self.dialogue_attention(h, mask)
        fused = self.dropout(torch.relu(self.output(h)))  # (B, L, H)
        return FuserOutput(fused=fused, per_modality=dict(mixed))
