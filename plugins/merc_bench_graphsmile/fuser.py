"""GraphSmile's GSF fuser, graph structure fusion (Li, Wang, Zeng, "Tracing Intricate Cues in
Dialogue: Joint Graph Structure and Sentiment Dynamics for Multimodal Emotion Recognition", IEEE
TPAMI 2025, arXiv:2407.21536: the GSF module; the authors' code ``HeterGConv_Edge`` and
``GraphSmile.forward``). Equations are cited by what they compute: the paper's numbering was not
at hand.

1. One graph per modality pair (a, b) — text–audio, text–visual, audio–visual on three modalities
   (the authors' t–v, t–a, v–a), M(M − 1)/2 in general — with only inter-modal edges inside a
   past/future window (:mod:`merc_bench_graphsmile.graph`). Node features x = [h_a; h_b] (B, 2L, H),
   h the mixer outputs (GraphSmile's own input projections are the ``graphsmile`` encoder).
2. K graph-convolution layers per pair (Kipf and Welling, ICLR 2017, Eq. 2), each with its own
   weights and *no* non-linearity between them: g⁽⁰⁾ = x, g⁽ᵏ⁾ = P g⁽ᵏ⁻¹⁾ W⁽ᵏ⁾ + b⁽ᵏ⁾. Since the graph is
   bipartite, odd layers gather the other modality and even layers the own modality's context: the
   paper's alternation of inter- and intra-modal dependencies layer by layer.
3. Every layer's output enters the pair's result through its own Linear → LeakyReLU → Dropout:
   z = x + Σ_k Drop(LeakyReLU(U⁽ᵏ⁾ g⁽ᵏ⁾ + c⁽ᵏ⁾)) (B, 2L, H), split back into z_a and z_b.
4. Fusion: one shared Linear → LeakyReLU map φ over the 2·M(M − 1)/2 pair outputs, averaged:
   fused = mean over pairs and their two modalities of φ(z); the model's head (GraphSmile's
   ``emo_output``) classifies it.

Choices where the paper and code leave room:
* per-modality outputs (GraphSmile has none): the mean of φ(z_m) over the pairs that contain m;
* one layer count K for every pair (the published settings use the same count for all three);
* edge weights ``offset`` (learned per direction and offset) or ``uniform``: see graph.py for why
  the authors' per-edge-position weights are not reproduced;
* with one modality there is no pair and no graph: fused = per-modality = φ(h) (the authors' code
  prints "Unable to construct heterogeneous graph!" and passes the features through).
Speakers are not used (GraphSmile is not speaker-aware).
"""

from __future__ import annotations

import itertools
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import FuserOutput, component
from merc_bench_graphsmile.graph import pair_adjacency
from merc_bench_graphsmile.recipe import PAPER


class GraphSmileFuserConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layers: int = Field(6, ge=1, le=64, description="K graph-convolution layers per modality pair (code default 6)")
    window_past: int = Field(17, ge=0, le=10_000, description="p: edges from up to p earlier utterances")
    window_future: int = Field(17, ge=0, le=10_000, description="f: edges from up to f later utterances")
    edge_weights: Literal["offset", "uniform"] = Field(
        "offset", description="learned weight per direction and offset j − i (init 1), or all 1"
    )
    dropout: float = Field(0.3, ge=0.0, lt=1.0, description="after each layer's LeakyReLU (code default 0.3)")


class PairGraph(nn.Module):
    """Steps 2–3 for one modality pair: h_a, h_b (B, L, H), mask (B, L) → z_a, z_b (B, L, H)."""

    def __init__(self, hidden_size: int, config: GraphSmileFuserConfig) -> None:
        super().__init__()
        self.window = (config.window_past, config.window_future)
        slots = config.window_past + 1 + config.window_future
        # rows: edges a ← b, b ← a; columns: offsets −p..f; 1 = the unweighted graph the code starts from
        self.edge_weights = nn.Parameter(torch.ones(2, slots)) if config.edge_weights == "offset" else None
        self.convolutions = nn.ModuleList(nn.Linear(hidden_size, hidden_size) for _ in range(config.layers))
        self.outputs = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.LeakyReLU(), nn.Dropout(config.dropout))
            for _ in range(config.layers)
        )

    def forward(self, a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = mask.shape[1]
        adjacency = pair_adjacency(mask, *self.window, self.edge_weights)  # (B, 2L, 2L)
        x = torch.cat([a, b], dim=1)  # (B, 2L, H), modality-major
        g, z = x, x
        for convolution, output in zip(self.convolutions, self.outputs):
            g = convolution(adjacency.to(g.dtype) @ g)  # (P g) W + b = P (g W) + b
            z = z + output(g)
        return z[:, :length], z[:, length:]


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this fuser's options."""
    return {
        "layers": trial.suggest_int(f"{prefix}layers", 1, 8),
        "window_past": trial.suggest_int(f"{prefix}window_past", 1, 20),
        "window_future": trial.suggest_int(f"{prefix}window_future", 0, 20),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.1, 0.5),
    }


@component("fuser", "graphsmile", config=GraphSmileFuserConfig, search_space=search_space, paper=PAPER)
class GraphSmileFuser(nn.Module):
    """mixed[m] (B, L, H), mask (B, L) → fused (B, L, H) and per-modality (B, L, H)."""

    def __init__(self, config: GraphSmileFuserConfig, *, modalities: tuple[str, ...], hidden_size: int) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.pairs = list(itertools.combinations(self.modalities, 2))  # (t, a), (t, v), (a, v) on all three
        self.graphs = nn.ModuleList(PairGraph(hidden_size, config) for _ in self.pairs)
        self.fusion = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.LeakyReLU())  # φ, shared

    def forward(
        self, *, mixed: dict[str, torch.Tensor], encoded: dict[str, torch.Tensor], mask: torch.Tensor
    ) -> FuserOutput:
        if not self.pairs:  # one modality: nothing to pair it with
            alone = self.fusion(mixed[self.modalities[0]])  # (B, L, H)
            return FuserOutput(fused=alone, per_modality={self.modalities[0]: alone})
        outputs: dict[str, list[torch.Tensor]] = {m: [] for m in self.modalities}
        for (a, b), graph in zip(self.pairs, self.graphs):
            z_a, z_b = graph(mixed[a], mixed[b], mask)  # (B, L, H) each
            outputs[a].append(self.fusion(z_a))
            outputs[b].append(self.fusion(z_b))
        per_modality = {m: torch.stack(parts).mean(dim=0) for m, parts in outputs.items()}  # (B, L, H) each
        # every modality sits in the same number (M − 1) of pairs, so the mean of the per-modality
        # means is the mean over all 2·pairs outputs, as in the authors' code
        fused = torch.stack(list(per_modality.values())).mean(dim=0)  # (B, L, H)
        return FuserOutput(fused=fused, per_modality=per_modality)
