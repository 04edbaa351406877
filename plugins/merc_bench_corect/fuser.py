"""CORECT fuser (Nguyen, Mai, Le, Kieu, Le, "Conversation Understanding using Relational Temporal Graph
Neural Networks with Auxiliary Cross-Modality Interaction", Findings of EMNLP 2023).

1. RT-GCN (relational temporal graph convolution). Nodes are (modality, utterance) pairs whose features are the per-modality states
   (``mixed[m]``, (B, L, H); with the recipe's identity mixer, the ``corect`` encoder's output), edges
   the temporal and cross-modal relations of :mod:`merc_bench_corect.graph`.
   a. Relational graph convolution (Schlichtkrull et al., ESWC 2018, Eq. 2; the authors use PyTorch
      Geometric's ``RGCNConv``): h_n = W_0 x_n + b + Σ_r Σ_{n' ∈ N_n^r} W_r x_{n'} / |N_n^r|. No
      activation follows it, as in the authors' code.
   b. Graph transformer (Shi et al., "Masked Label Prediction", IJCAI 2021, Eqs. 3–5; the authors'
      ``TransformerConv``), ``graph_heads`` heads of width H, concatenated:
      α_nn' = softmax over n' ∈ N_n (all relations together) of (W_q h_n)ᵀ (W_k h_n') / √H,
      g_n = W_s h_n + Σ_n' α_nn' W_v h_n' (every map with a bias), then
      g_n ← LeakyReLU(BatchNorm(g_n)) (``graph_norm``), (heads·H) per node.
   c. Per utterance the M node outputs are concatenated: (B, L, M·heads·H).
2. P-CM (pairwise cross-modal feature interaction): :class:`merc_bench_corect.crossmodal.PairwiseCrossmodal` on the same states,
   (B, L, M·(M − 1)·H); skipped with one modality or ``crossmodal = False``.
3. Classifier input: [RT-GCN; P-CM] → Linear(·, H) → ReLU → Dropout = fused (B, L, H); the
   model's head is the classifier's second linear layer (H → C). The per-modality outputs are
   ``mixed`` unchanged.

Choices and readings (the paper's text and equation numbers could not be consulted here, so the
equations cited are those of the layers' own papers; CORECT's structure follows the authors' code,
leson502/CORECT_EMNLP2023):

* windows: ``window_convention`` chooses between the windows as named (``paper``) and as the
  authors' code builds them (``authors_code``, the recipe's: swapped and one shorter, graph.py);
* BatchNorm statistics are taken over the real nodes of the batch only (the authors' packed graph
  has no padding; a dense batch does, and padded nodes must not change real outputs). A batch with
  a single real node normalises with the running statistics. ``graph_norm = "layer"`` (LayerNorm per
  node) or ``"none"`` are the other readings one could defend for small batches;
* ``graph = False`` or ``crossmodal = False`` drop one branch (the paper's ablations); at least one
  must stay on;
* the RGCN's relation weights are full H×H matrices (no basis decomposition; R = 15 on three
  modalities), and relations absent from a batch get no gradient in it; they start uniform in
  ±1/√H (PyTorch Geometric starts them Glorot-uniform), which changes only the starting point.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from merc_bench import FuserOutput, component
from merc_bench_corect.crossmodal import PairwiseCrossmodal
from merc_bench_corect.graph import node_mask, received_window, relation_adjacency, relation_count
from merc_bench_corect.recipe import PAPER


class CorectFuserConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_past: int = Field(11, ge=0, le=10_000, description="P: the past window (see window_convention)")
    window_future: int = Field(5, ge=0, le=10_000, description="F: the future window (see window_convention)")
    window_convention: Literal["paper", "authors_code"] = Field(
        "paper", description="windows as named (i-P…i+F) or as the authors' code builds them (i-(F-1)…i+P)"
    )
    temporal_edges: bool = Field(True, description="past/future/self edges within each modality (else self-edges only)")
    cross_modal_edges: bool = Field(True, description="edges between an utterance's nodes in different modalities")
    graph: bool = Field(True, description="the RT-GCN branch")
    graph_heads: int = Field(7, ge=1, le=64, description="heads of the graph transformer (concatenated)")
    graph_norm: Literal["batch", "layer", "none"] = Field(
        "batch", description="normalisation after the graph transformer: BatchNorm over real nodes (authors), LayerNorm, none"
    )
    crossmodal: bool = Field(True, description="the P-CM branch (needs two or more modalities)")
    crossmodal_layers: int = Field(2, ge=1, le=12, description="layers of each pairwise cross-modal transformer")
    crossmodal_heads: int = Field(2, ge=1, le=64, description="heads of the cross-modal transformers (divide H)")
    self_attention_layers: int = Field(3, ge=1, le=12, description="layers of the self-attention over each target's pairs")
    self_attention_heads: int = Field(2, ge=1, le=64, description="heads of that self-attention (divide (M-1)·H)")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="dropout after the classifier's hidden layer")

    @model_validator(mode="after")
    def _some_branch(self) -> CorectFuserConfig:
        if not (self.graph or self.crossmodal):
            raise ValueError("graph and crossmodal are both off: CORECT needs at least one of its two branches")
        received_window(self.window_past, self.window_future, self.window_convention)  # refuses future=0 in code's
        return self


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this fuser's options."""
    return {
        "window_past": trial.suggest_int(f"{prefix}window_past", 1, 12),
        "window_future": trial.suggest_int(f"{prefix}window_future", 1, 12),
        "graph_heads": trial.suggest_int(f"{prefix}graph_heads", 1, 8),
        "crossmodal_layers": trial.suggest_int(f"{prefix}crossmodal_layers", 1, 3),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.1, 0.6),
    }


class RelationalGraphConv(nn.Module):
    """RGCN (Schlichtkrull et al. 2018, Eq. 2): x (B, N, H), edges (B, R, N, N) → (B, N, H), mean per relation."""

    def __init__(self, hidden_size: int, relations: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(hidden_size)  # nn.Linear's initialisation range
        self.kernels = nn.Parameter(torch.empty(relations, hidden_size, hidden_size).uniform_(-bound, bound))  # W_r
        self.root = nn.Linear(hidden_size, hidden_size)  # W_0 and the bias

    def forward(self, x: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        weights = edges.to(x.dtype)
        weights = weights / weights.sum(dim=-1, keepdim=True).clamp_min(1)  # (B, R, N, N): 1 / |N_n^r| per edge
        gathered = weights @ x[:, None]  # (B, R, N, H): mean of each relation's neighbours, before W_r
        return torch.einsum("brnh,rhk->bnk", gathered, self.kernels) + self.root(x)  # (B, N, H)


class GraphTransformer(nn.Module):
    """Shi et al. 2021 Eqs. 3–5: h (B, N, H), neighbours (B, N, N) bool → (B, N, heads·H), heads concatenated."""

    def __init__(self, hidden_size: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden_size, heads * hidden_size)
        self.key = nn.Linear(hidden_size, heads * hidden_size)
        self.value = nn.Linear(hidden_size, heads * hidden_size)
        self.skip = nn.Linear(hidden_size, heads * hidden_size)  # W_s: the root term

    def forward(self, h: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        batch, nodes, hidden = h.shape
        q = self.query(h).view(batch, nodes, self.heads, hidden)  # (B, N, heads, H)
        k = self.key(h).view(batch, nodes, self.heads, hidden)
        v = self.value(h).view(batch, nodes, self.heads, hidden)
        scores = torch.einsum("bnhd,bmhd->bhnm", q, k) / math.sqrt(hidden)  # (B, heads, N, N)
        # Padded nodes have no neighbours; letting them read themselves keeps their softmax finite.
        allowed = neighbours | torch.eye(nodes, dtype=torch.bool, device=h.device)[None]  # (B, N, N)
        alpha = torch.softmax(scores.masked_fill(~allowed[:, None], float("-inf")), dim=-1)
        attended = torch.einsum("bhnm,bmhd->bnhd", alpha, v).reshape(batch, nodes, self.heads * hidden)
        return attended + self.skip(h)  # (B, N, heads·H)


class RealNodeBatchNorm(nn.Module):
    """BatchNorm1d over the real nodes only: x (B, N, D), real (B, N) → (B, N, D); padded rows are 0."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(size)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        rows = x[real]  # (n, D): the real nodes of the whole batch
        if self.training and rows.shape[0] < 2:  # one value per channel has no variance: use running statistics
            normed = F.batch_norm(rows, self.norm.running_mean, self.norm.running_var, self.norm.weight,
                                  self.norm.bias, training=False, eps=self.norm.eps)
        else:
            normed = self.norm(rows)
        return torch.zeros_like(x).index_put(real.nonzero(as_tuple=True), normed.to(x.dtype))


@component("fuser", "corect", config=CorectFuserConfig, search_space=search_space, paper=PAPER)
class CorectFuser(nn.Module):
    """mixed[m] (B, L, H), mask (B, L) → fused (B, L, H) from RT-GCN and P-CM; per-modality = mixed."""

    def __init__(self, config: CorectFuserConfig, *, modalities: tuple[str, ...], hidden_size: int) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        count = len(self.modalities)
        self.window = received_window(config.window_past, config.window_future, config.window_convention)
        self.temporal_edges = config.temporal_edges
        self.cross_modal_edges = config.cross_modal_edges
        width = 0
        self.graph = self.graph_transformer = self.norm = None
        if config.graph:
            relations = relation_count(count, temporal=config.temporal_edges, cross_modal=config.cross_modal_edges)
            self.graph = RelationalGraphConv(hidden_size, relations)
            self.graph_transformer = GraphTransformer(hidden_size, config.graph_heads)
            node_width = config.graph_heads * hidden_size
            self.norm = {"batch": RealNodeBatchNorm(node_width), "layer": nn.LayerNorm(node_width),
                         "none": None}[config.graph_norm]
            width += count * node_width
        self.crossmodal = None
        if config.crossmodal and count > 1:
            self.crossmodal = PairwiseCrossmodal(
                self.modalities, hidden_size, crossmodal_layers=config.crossmodal_layers,
                crossmodal_heads=config.crossmodal_heads, self_attention_layers=config.self_attention_layers,
                self_attention_heads=config.self_attention_heads,
            )
            width += self.crossmodal.output_size
        if width == 0:
            raise ValueError("with one modality P-CM has nothing to pair and graph=False leaves no branch: "
                             "turn the graph on (fuser.graph=true) or use two or more modalities")
        self.hidden = nn.Linear(width, hidden_size)  # the classifier's first layer
        self.dropout = nn.Dropout(config.dropout)

    def relational_temporal(self, mixed: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """RT-GCN: per-modality states (B, L, H) → (B, L, M·heads·H)."""
        batch, length = mask.shape
        count = len(self.modalities)
        nodes = torch.cat([mixed[m] for m in self.modalities], dim=1)  # (B, M·L, H), modality-major
        past, future = self.window
        edges = relation_adjacency(mask, count, past=past, future=future, temporal=self.temporal_edges,
                                   cross_modal=self.cross_modal_edges)  # (B, R, N, N)
        h = self.graph(nodes, edges)  # (B, N, H)
        g = self.graph_transformer(h, edges.any(dim=1))  # (B, N, heads·H)
        real = node_mask(mask, count)  # (B, N)
        if isinstance(self.norm, RealNodeBatchNorm):
            g = self.norm(g, real)
        elif self.norm is not None:
            g = self.norm(g)
        g = F.leaky_relu(g)
        per_modality = g.view(batch, count, length, -1)  # (B, M, L, heads·H)
        return per_modality.permute(0, 2, 1, 3).reshape(batch, length, -1)  # (B, L, M·heads·H)

    def forward(self, *, mixed: dict[str, torch.Tensor], encoded: dict[str, torch.Tensor],
                mask: torch.Tensor) -> FuserOutput:
        branches = []
        if self.graph is not None:
            branches.append(self.relational_temporal(mixed, mask))
        if self.crossmodal is not None:
            branches.append(self.crossmodal(mixed, mask))  # (B, L, M·(M − 1)·H)
        joined = torch.cat(branches, dim=-1)  # (B, L, width)
        fused = self.dropout(torch.relu(self.hidden(joined)))  # (B, L, H)
        return FuserOutput(fused=fused, per_modality=dict(mixed))
