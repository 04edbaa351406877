"""M3Net fuser (Chen, Shao, Zhu, Shen, "Multivariate, Multi-frequency and Multimodal: Rethinking Graph
Neural Networks for Emotion Recognition in Conversation", CVPR 2023, §3; equations cited by what
they compute, the paper's numbering was not at hand; settings checked against the authors' code,
feiyuchen7/M3NET, ``model_hyper.py``, ``HypergraphConv.py``, ``high_fre_conv.py``).

Nodes are (modality, utterance) pairs; the graphs are those of :mod:`merc_bench_m3net.graph`.

1. Speaker embedding: x_i^m = h_i^m + W_s s_i for the modalities ``speaker_embedding`` names
   (``text``, the default, as the authors' code; ``all``; ``none``). x is the mixer output. A run
   that leaves text out (``--modalities``) gets no speaker embedding under ``text``.
2. Shared input map x¹ = W_in x (the code's ``fc1``, no activation), the start of both branches.
3. Multivariate branch (§3.2), ``hypergraph_layers`` layers (3 in the authors' code) of hypergraph
   convolution on the incidence H (B, N, E):
       X' = LeakyReLU(D_v⁻¹ H W D_e⁻¹ Hᵀ X Θ + b),
   D_e = hyperedge sizes, W = diag(hyperedge weights), D_v = Σ_e w_e H_ve. Θ is HGNN's (Feng et
   al., AAAI 2019) learned map; the authors' code leaves it out (the product is commented out), so
   ``hypergraph_transform = False`` is the default. Hyperedge weights: the code keeps a learned
   vector indexed by a hyperedge's *position in the batch* (and a second one by the position of a
   node–hyperedge incidence), which gives no hyperedge a stable identity across batches; here
   ``hyperedge_weights = "learned"`` learns one positive weight per hyperedge *kind* (context,
   multimodal), shared by all layers as the code shares its vector, and ``"fixed"`` uses 1. The
   version of ``model_hyper.py`` that matches ``model.py``'s call builds its hypergraph layers
   without PyG's hyperedge attention (an older version switched it on); none is offered here.
4. Multi-frequency branch (§3.3), ``frequency_layers`` layers (4 in the code) on Ã, each
       X' = ε X + (G ⊙ Ã) X,     G_ij = tanh(aᵀ [x_i; x_j] + c)       (``frequency = "adaptive"``)
   which is Σ_j (α^L_ij F_L + α^H_ij F_H)_ij x_j with α^L − α^H = G and F_L = εI + Ã, F_H = εI − Ã
   (graph.py): positive G lets a neighbour's low-frequency (shared) signal in, negative G its
   high-frequency (differing) signal. The authors' code is ε = 1 with the previous layer (a
   residual) and no activation between layers, as here; FAGCN's ε multiplies the first layer's input
   instead (not offered). ``frequency = "low"`` (G = 1) and ``"high"`` (G = −1) fix the filter, for
   ablations. ``window_past``/``window_future`` limit the intra-modal edges (None: the whole
   dialogue, as the authors' ``--graph_construct direct``).
5. Per node [hypergraph output; multi-frequency output] (and the input x first with
   ``input_residual``, the code's ``--use_residue``, off in the authors' run scripts); per
   utterance the concatenation over modalities, dropout and ReLU, then one linear map to H. M3Net
   classifies that concatenation with one linear layer; the model's head on top of this map
   composes with it into one linear classifier, as in the paper. The per-modality outputs are the
   sum of the two branches' outputs for that modality's nodes.

Choices where paper and code are silent or differ: node features are the mixer outputs (the
authors: a linear map then a 2-layer BiGRU for text, linear maps for audio and visual); the code's
batch normalisation of the text features and its average of four RoBERTa layers are the dataset's
business here; every graph keeps the model's hidden size H.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import FuserOutput, component
from merc_bench_m3net.graph import frequency_adjacency, hyperedge_incidence
from merc_bench_m3net.recipe import PAPER

CONTEXT, MULTIMODAL = 0, 1  # hyperedge kinds


class M3NetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hypergraph_layers: int = Field(3, ge=1, le=32, description="layers of hypergraph convolution (code: num_L)")
    frequency_layers: int = Field(4, ge=1, le=32, description="layers of multi-frequency convolution (code: num_K)")
    frequency: Literal["adaptive", "low", "high"] = Field(
        "adaptive", description="learned per-edge mix of low- and high-pass filters, or one fixed filter"
    )
    epsilon: float = Field(1.0, ge=0.0, le=10.0, description="ε: weight of a node's own signal in both filters")
    window_past: int | None = Field(None, ge=0, le=10_000, description="intra-modal edges from up to p earlier "
                                    "utterances (None: all)")
    window_future: int | None = Field(None, ge=0, le=10_000, description="intra-modal edges from up to f later "
                                      "utterances (None: all)")
    hyperedge_weights: Literal["learned", "fixed"] = Field(
        "learned", description="one learned positive weight per hyperedge kind, or all 1"
    )
    hypergraph_transform: bool = Field(False, description="HGNN's learned Θ in each hypergraph layer (code: none)")
    speaker_embedding: Literal["all", "text", "none"] = Field(
        "text", description="modalities whose nodes get the speaker embedding added"
    )
    input_residual: bool = Field(False, description="fuse [x; hypergraph; multi-frequency] per node (code: "
                                 "--use_residue)")
    dropout: float = Field(0.5, ge=0.0, lt=1.0)


class HypergraphConv(nn.Module):
    """X (B, N, H), incidence (B, N, E), hyperedge weights (E,) → LeakyReLU(D_v⁻¹ H W D_e⁻¹ Hᵀ X Θ + b)."""

    def __init__(self, hidden_size: int, transform: bool) -> None:
        super().__init__()
        self.transform = nn.Linear(hidden_size, hidden_size, bias=False) if transform else None  # Θ
        self.bias = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, x: torch.Tensor, incidence: torch.Tensor, edge_weights: torch.Tensor) -> torch.Tensor:
        if self.transform is not None:
            x = self.transform(x)
        size = incidence.sum(dim=1).clamp_min(1.0)  # (B, E): D_e (an empty hyperedge gathers nothing)
        edges = (incidence.transpose(1, 2) @ x) / size[..., None]  # (B, E, H): each hyperedge's mean node
        weighted = incidence * edge_weights  # (B, N, E): H W
        degree = weighted.sum(dim=-1, keepdim=True)  # (B, N, 1): D_v
        nodes = (weighted @ edges) / torch.where(degree > 0, degree, torch.ones_like(degree))  # (B, N, H)
        return F.leaky_relu(nodes + self.bias)


class FrequencyConv(nn.Module):
    """X (B, N, H), Ã (B, N, N) → ε X + (G ⊙ Ã) X, G the learned gate in [−1, 1] or a fixed ±1."""

    def __init__(self, hidden_size: int, gate: Literal["adaptive", "low", "high"], epsilon: float) -> None:
        super().__init__()
        self.epsilon = epsilon
        self.fixed = {"low": 1.0, "high": -1.0}.get(gate)
        self.gate = nn.Linear(2 * hidden_size, 1) if gate == "adaptive" else None  # aᵀ [x_i; x_j] + c

    def edge_gate(self, x: torch.Tensor) -> torch.Tensor:
        """X (B, N, H) → G (B, N, N), G[b, i, j] = tanh(aᵀ [x_i; x_j] + c) for the edge j → i."""
        hidden = x.shape[-1]
        target = x @ self.gate.weight[:, :hidden].T  # (B, N, 1): the part of aᵀ[x_i; x_j] from x_i
        source = x @ self.gate.weight[:, hidden:].T  # (B, N, 1): from x_j
        return torch.tanh(target + source.transpose(1, 2) + self.gate.bias)  # (B, N, N)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        gate = self.fixed if self.gate is None else self.edge_gate(x)
        return self.epsilon * x + (gate * adjacency) @ x  # (B, N, H)


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this fuser's options."""
    return {
        "hypergraph_layers": trial.suggest_int(f"{prefix}hypergraph_layers", 1, 6),
        "frequency_layers": trial.suggest_int(f"{prefix}frequency_layers", 1, 8),
        "epsilon": trial.suggest_float(f"{prefix}epsilon", 0.1, 2.0),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.1, 0.6),
    }


@component("fuser", "m3net", config=M3NetConfig, search_space=search_space, paper=PAPER)
class M3NetFuser(nn.Module):
    """mixed[m] (B, L, H), speakers and mask (B, L) → fused (B, L, H) and per-modality (B, L, H)."""

    def __init__(
        self, config: M3NetConfig, *, modalities: tuple[str, ...], hidden_size: int, num_speakers: int
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.window = (config.window_past, config.window_future)
        with_speaker = {"all": self.modalities, "text": ("text",), "none": ()}[config.speaker_embedding]
        self.speaker_modalities = tuple(m for m in self.modalities if m in with_speaker)
        self.speakers = nn.Embedding(num_speakers, hidden_size) if self.speaker_modalities else None
        self.input = nn.Linear(hidden_size, hidden_size)  # W_in (the code's fc1)
        self.log_edge_weights = nn.Parameter(torch.zeros(2)) if config.hyperedge_weights == "learned" else None
        self.hypergraph = nn.ModuleList(
            HypergraphConv(hidden_size, config.hypergraph_transform) for _ in range(config.hypergraph_layers)
        )
        self.frequency = nn.ModuleList(
            FrequencyConv(hidden_size, config.frequency, config.epsilon) for _ in range(config.frequency_layers)
        )
        self.input_residual = config.input_residual
        per_node = (3 if config.input_residual else 2) * hidden_size
        self.output = nn.Linear(len(self.modalities) * per_node, hidden_size)
        self.dropout = nn.Dropout(config.dropout)

    def hyperedge_weights(self, length: int, device: torch.device) -> torch.Tensor:
        """(E,) weights of the M context hyperedges, then the L multimodal ones."""
        kinds = torch.tensor([CONTEXT] * len(self.modalities) + [MULTIMODAL] * length, device=device)
        if self.log_edge_weights is None:
            return torch.ones(len(kinds), device=device)
        return self.log_edge_weights.exp()[kinds]  # positive, 1 at initialisation (as the code's)

    def forward(
        self,
        *,
        mixed: dict[str, torch.Tensor],
        encoded: dict[str, torch.Tensor],
        mask: torch.Tensor,
        speakers: torch.Tensor,
    ) -> FuserOutput:
        batch, length = mask.shape
        modalities = len(self.modalities)
        nodes = [mixed[m] for m in self.modalities]
        if self.speakers is not None:
            # Padded positions hold an out-of-range index; slot 0 is as good as any, they join no edge.
            speaker = self.speakers(torch.where(mask, speakers, torch.zeros_like(speakers)))  # (B, L, H)
            nodes = [x + speaker if m in self.speaker_modalities else x for m, x in zip(self.modalities, nodes)]
        x = torch.stack(nodes, dim=1).reshape(batch, modalities * length, -1)  # (B, N, H), modality-major
        start = self.input(x)  # (B, N, H)

        incidence = hyperedge_incidence(mask, modalities).to(start.dtype)  # (B, N, E)
        edge_weights = self.hyperedge_weights(length, mask.device).to(start.dtype)  # (E,)
        multivariate = start
        for layer in self.hypergraph:
            multivariate = layer(multivariate, incidence, edge_weights)  # (B, N, H)

        past, future = self.window
        adjacency = frequency_adjacency(mask, modalities, past=past, future=future).to(start.dtype)  # (B, N, N)
        frequency = start
        for layer in self.frequency:
            frequency = layer(frequency, adjacency)  # (B, N, H)

        parts = [x, multivariate, frequency] if self.input_residual else [multivariate, frequency]
        per_node = torch.cat(parts, dim=-1).view(batch, modalities, length, -1)  # (B, M, L, P)
        per_utterance = per_node.permute(0, 2, 1, 3).reshape(batch, length, -1)  # (B, L, M·P)
        fused = self.output(torch.relu(self.dropout(per_utterance)))  # (B, L, H)
        both = (multivariate + frequency).view(batch, modalities, length, -1)  # (B, M, L, H)
        per_modality = {m: both[:, k] for k, m in enumerate(self.modalities)}
        return FuserOutput(fused=fused, per_modality=per_modality)
