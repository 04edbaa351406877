"""MMGCN fuser (Hu, Liu, Zhao, Jin, "MMGCN: Multimodal Fusion via Deep Graph Convolution Network for
Emotion Recognition in Conversation", ACL 2021, §3; equations cited by what they compute, the
paper's numbering was not at hand).

1. Speaker embedding: x_i^m = h_i^m + W_s s_i, a learned embedding of utterance i's speaker
   added to its node features. ``speaker_embedding`` chooses which modalities receive it: ``all``
   (default) or ``text`` (the authors' code adds it to the text nodes only) or ``none``.
2. The graph of :mod:`merc_bench_mmgcn.graph`: (utterance, modality) nodes, intra-modal edges
   within the dialogue, inter-modal edges within the utterance, angular-similarity weights computed
   from x, normalised to P̃ = D^-1/2 A D^-1/2.
3. Deep spectral graph convolution with initial residual and identity mapping (GCNII, Chen et al.,
   ICML 2020, Eq. 5, which MMGCN adopts), for layers l = 1..K with H⁽⁰⁾ = ReLU(W_in x):
       S = (1 − α) P̃ H⁽ˡ⁻¹⁾ + α H⁽⁰⁾,   β_l = log(λ / l + 1),
       H⁽ˡ⁾ = ReLU((1 − β_l) S + β_l S W⁽ˡ⁾)                       (``layer_weight = "mixed"``)
   The authors' code (GCNII's "variant") applies W⁽ˡ⁾ (2H × H) to the concatenation [P̃ H⁽ˡ⁻¹⁾; H⁽⁰⁾]
   instead of to S: ``layer_weight = "concatenated"``. Defaults as in the authors' code: K = 4,
   α = 0.1, λ = 0.5; dropout before the input map, before every layer and on the output.
4. Per modality, the graph output of that modality's nodes (B, L, H) is the per-modality output.
   The fused representation is a linear map of the concatenation over modalities of [x^m; H⁽ᴷ⁾^m]
   (the authors' "residue", ``input_residual``) or of H⁽ᴷ⁾^m alone, to H. MMGCN classifies that
   concatenation directly; here one linear layer (no activation) reduces it to H first, so the
   model's head on top composes with it into one linear classifier, as in the paper.

Choices where the paper is silent: the node features x are the mixer outputs (the paper's
modality encoders: a BiLSTM for text, linear layers for audio and visual; here whatever mixer the
recipe names, applied to every modality); the graph hidden size is the model's H; speaker indices
are the dataset's (padded positions, which hold an out-of-range index, use slot 0 and never reach
a real node). The edge weights are differentiable functions of x, as in the authors' code.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import FuserOutput, component
from merc_bench_mmgcn.graph import multimodal_adjacency
from merc_bench_mmgcn.recipe import PAPER


class MMGCNConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layers: int = Field(4, ge=1, le=64, description="K deep graph-convolution layers")
    alpha: float = Field(0.1, ge=0.0, le=1.0, description="α: weight of the initial residual H⁽⁰⁾")
    lamda: float = Field(
        0.5, gt=0.0, le=1000, description="λ of the identity-mapping strength β_l = log(λ/l + 1) (GCNII's spelling)"
    )
    layer_weight: Literal["mixed", "concatenated"] = Field(
        "mixed", description="W⁽ˡ⁾ applied to (1−α)P̃H + αH⁽⁰⁾ (paper) or to [P̃H; H⁽⁰⁾] (authors' code)"
    )
    speaker_embedding: Literal["all", "text", "none"] = Field(
        "all", description="modalities whose nodes get the speaker embedding added"
    )
    input_residual: bool = Field(True, description="fuse [x; graph output] per modality (True) or the graph output")
    dropout: float = Field(0.4, ge=0.0, lt=1.0)


class DeepGraphConvLayer(nn.Module):
    """One GCNII layer: H (B, N, H), P̃ (B, N, N), H⁽⁰⁾ (B, N, H), α, β_l → (B, N, H), before the ReLU."""

    def __init__(self, hidden_size: int, concatenated: bool) -> None:
        super().__init__()
        self.concatenated = concatenated
        size_in = 2 * hidden_size if concatenated else hidden_size
        bound = 1.0 / math.sqrt(hidden_size)  # GCNII's initialisation range
        self.weight = nn.Parameter(torch.empty(size_in, hidden_size).uniform_(-bound, bound))

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor, initial: torch.Tensor, alpha: float,
                beta: float) -> torch.Tensor:
        propagated = adjacency @ h  # (B, N, H): P̃ H
        support = (1 - alpha) * propagated + alpha * initial  # initial residual
        transformed = (torch.cat([propagated, initial], dim=-1) if self.concatenated else support) @ self.weight
        return (1 - beta) * support + beta * transformed  # identity mapping


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this fuser's options."""
    return {
        "layers": trial.suggest_int(f"{prefix}layers", 2, 16, log=True),
        "alpha": trial.suggest_float(f"{prefix}alpha", 0.05, 0.5),
        "lamda": trial.suggest_float(f"{prefix}lamda", 0.1, 1.5),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.1, 0.6),
    }


@component("fuser", "mmgcn", config=MMGCNConfig, search_space=search_space, paper=PAPER)
class MMGCNFuser(nn.Module):
    """mixed[m] (B, L, H), speakers and mask (B, L) → fused (B, L, H) and per-modality graph outputs."""

    def __init__(
        self, config: MMGCNConfig, *, modalities: tuple[str, ...], hidden_size: int, num_speakers: int
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.alpha = config.alpha
        self.betas = [math.log(config.lamda / layer + 1) for layer in range(1, config.layers + 1)]
        with_speaker = {"all": self.modalities, "text": ("text",), "none": ()}[config.speaker_embedding]
        self.speaker_modalities = tuple(m for m in self.modalities if m in with_speaker)
        self.speakers = nn.Embedding(num_speakers, hidden_size) if self.speaker_modalities else None
        self.input = nn.Linear(hidden_size, hidden_size)  # W_in: H⁽⁰⁾ = ReLU(W_in x)
        self.layers = nn.ModuleList(
            DeepGraphConvLayer(hidden_size, config.layer_weight == "concatenated") for _ in range(config.layers)
        )
        self.input_residual = config.input_residual
        per_node = 2 * hidden_size if config.input_residual else hidden_size
        self.output = nn.Linear(len(self.modalities) * per_node, hidden_size)
        self.dropout = nn.Dropout(config.dropout)

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
        if self.speakers is not None:
            speaker = self.speakers(torch.where(mask, speakers, torch.zeros_like(speakers)))  # (B, L, H)
            nodes = [mixed[m] + speaker if m in self.speaker_modalities else mixed[m] for m in self.modalities]
        else:
            nodes = [mixed[m] for m in self.modalities]
        x = torch.stack(nodes, dim=1)  # (B, M, L, H)
        adjacency = multimodal_adjacency(x, mask)  # (B, N, N), N = M·L
        x = self.dropout(x.reshape(batch, modalities * length, -1))  # (B, N, H)
        initial = torch.relu(self.input(x))  # (B, N, H): H⁽⁰⁾
        h = initial
        for layer, beta in zip(self.layers, self.betas):
            h = torch.relu(layer(self.dropout(h), adjacency, initial, self.alpha, beta))
        h = self.dropout(h)
        graph = h.view(batch, modalities, length, -1)  # (B, M, L, H)
        per_modality = {m: graph[:, k] for k, m in enumerate(self.modalities)}
        parts = torch.cat([x.view(batch, modalities, length, -1), graph], dim=-1) if self.input_residual else graph
        fused = self.output(parts.permute(0, 2, 1, 3).reshape(batch, length, -1))  # (B, L, M·2H) → (B, L, H)
        return FuserOutput(fused=fused, per_modality=per_modality)
