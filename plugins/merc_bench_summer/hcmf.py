"""Hierarchical Cross-Modal Fusion fuser (SUMMER, §III-E, eqs. 4–6).

One branch per modality m ("HCMF_t", "HCMF_a", "HCMF_v"); each branch is a stack of L layers, and
every layer runs three post-norm residual stages on the branch's stream X (B, L, H):

1. the branch queries its second modality S (eq. 5, H_{ta} for the text branch):
   X ← LN(X + DynAttn(Q=X, K=V=S))
2. the stage-1 output queries the third modality R (eq. 6, H_{tav}):
   X ← LN(X + DynAttn(Q=X, K=V=R))
3. a feed-forward network: X ← LN(X + W2 · GELU(W1 · X)).

How this reads the paper. §IV-C's settings (Adam lr 1e-4, weight decay 1e-5, 6 layers, 4 heads,
"hidden size 1024", loss weights 0.4/0.3/0.3, MELD batch 100) are MultiEMO's public training
defaults value for value (Shi and Huang, ACL 2023), and HCMF's three branches of three stages are
MultiEMO's MultiAttn, where 1024 is the feed-forward size of a 256-wide model. So "bidirectional
multi-head cross-attention" (stage 1) is read as in MultiAttn: the text branch queries audio while
the audio branch queries text, each branch querying the others; no branch adds the reverse
direction itself. The defaults below follow that lineage reading for the branches (the stages, φ
per head, no backward term); the branches are combined by SDT's gated fusion, since SUMMER extends
SDT, with MultiEMO's concatenation as an option. Whether the defaults also train best is a separate
question, checked on dev of paper-shaped synthetic profiles and recorded in benchmarks/RESULTS.md
(issue 14 block).

DynAttn (eq. 4) is multi-head attention with a learnable factor φ "to adjust the weights of the
multi-head attention": DynAttn(Q, K, V) = φ · softmax(QKᵀ / √d_k) V with Q, K, V linear
projections; padded keys are masked. ``phi`` says where φ lives:

* ``per-head`` (default): one φ_h per head, initialised to 1, scaling head h's softmax(QKᵀ/√d_k) V
  before the heads are concatenated and projected: eq. 4 applied per head, as written;
* ``scalar``: one φ per attention module multiplying the module's output after the output
  projection (the earlier reading; kept so that ``summer-wide`` reproduces the earlier model);
* ``none``: plain multi-head attention.

Honestly stated: any linear rescaling is absorbable by the adjacent projections (φ_h into the
columns of the output projection that read head h; a scalar φ into the whole projection and its
bias), so no choice here changes what the layer can express. φ changes the parametrisation, and so
the optimisation: a per-head gate that gradient descent (and weight decay) treat apart from the
projection, with a learning dynamic of its own.

Options (``backward_term``, ``feed_forward_multiplier``, ``combine``) and choices where the paper is
silent:

* the second and third modalities of a branch are the other two in the order text, audio, visual
  (text branch: audio then visual; audio branch: text then visual; visual branch: text then audio);
* the other modalities' inputs are the mixer (SDMoE) outputs, the same for every layer; only the
  branch's own stream is updated layer by layer (as in MultiAttn);
* ``backward_term = True`` adds to stage 1 a second attention, the partner querying the branch's
  own stream (DynAttn(Q=S, K=V=X)), summed with the first; positions align because every modality
  has one vector per utterance. This is the earlier reading of "bidirectional", in neither the
  paper's equations nor MultiEMO; off by default, it costs 4H² + 4H parameters per layer and branch;
* with two modalities stage 2 is skipped; with one, stage 1 attends the modality to itself;
* the feed-forward size is ``feed_forward_multiplier`` × H: 4 × 256 = 1024 is MultiEMO's (and, in
  the lineage reading, the paper's "hidden size 1024"); 4 × 1024 = 4096 is the 1024-wide reading;
* the branches are combined into one representation by SDT's multimodal gated fusion (``combine =
  "gated"``, the default, since SUMMER extends SDT), by their mean, or as MultiEMO does
  (``"concat"``): concatenation → Linear(M·H → H) → a two-layer MLP Linear(H → 2H) → ReLU →
  Dropout → Linear(2H → H). MultiEMO's MLP ends in the classes (2H is its MELD width); here it
  returns to H and the model's linear head maps to the classes, the two final linear maps composing
  into MultiEMO's one.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import FuserOutput, component
from merc_bench.layers import MaskedMultiHeadAttention, gated_fusion, masked_attention
from merc_bench_summer.recipe import PAPER

Phi = Literal["per-head", "scalar", "none"]


class HCMFConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    heads: int = Field(4, gt=0, le=1024, description="attention heads (must divide the hidden size)")
    layers: int = Field(6, gt=0, le=64, description="L stacked layers per branch")
    feed_forward_multiplier: int = Field(
        4, gt=0, le=64, description="feed-forward size = multiplier × H (4 × 256 = MultiEMO's 1024)"
    )
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    combine: Literal["gated", "mean", "concat"] = Field(
        "gated", description="how the branches become one representation (the paper does not say)"
    )
    phi: Phi = Field("per-head", description="DynAttn's φ (eq. 4): one per head, one per module, or none")
    backward_term: bool = Field(
        False, description="stage 1 also lets the partner query the branch (the earlier 'bidirectional')"
    )


class DynamicAttention(MaskedMultiHeadAttention):
    """DynAttn (eq. 4): φ · softmax(QKᵀ/√d_k) V. query (B, L, H), source (B, L, H) → (B, L, H).

    A subclass rather than a wrapper so that the parameters keep their names (``query``,
    ``key_value``, ``output``, ``phi``) and creation order: state dicts and seeded runs are unchanged.
    """

    def __init__(self, hidden_size: int, heads: int, dropout: float, phi: Phi) -> None:
        super().__init__(hidden_size, heads, dropout)
        self.phi_mode = phi
        if phi == "per-head":
            self.phi = nn.Parameter(torch.ones(heads))  # φ_h, one per head
        elif phi == "scalar":
            self.phi = nn.Parameter(torch.ones(()))  # one φ for the module's output
        else:
            self.phi = None

    def forward(self, query: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attended = masked_attention(self.query(query), self.key_value(source), mask, self.heads,
                                    self.dropout if self.training else 0.0)  # (B, L, H), heads side by side
        if self.phi_mode == "per-head":
            batch, length, hidden = attended.shape
            per_head = attended.view(batch, length, self.heads, hidden // self.heads)  # (B, L, heads, H/heads)
            attended = (per_head * self.phi[:, None]).view(batch, length, hidden)  # head h scaled by φ_h
        projected = self.output(attended)
        return self.phi * projected if self.phi_mode == "scalar" else projected


class HCMFLayer(nn.Module):
    """One layer of one branch: stage 1 (second modality), stage 2 (third), feed-forward (eqs. 5–6)."""

    def __init__(self, hidden_size: int, config: HCMFConfig, stages: int) -> None:
        super().__init__()
        heads, dropout, phi = config.heads, config.dropout, config.phi
        # Created in the order of the earlier layer (forward, backward, norm, third, ...), so that with
        # backward_term and a scalar φ a seeded model initialises exactly as before.
        self.forward_attention = DynamicAttention(hidden_size, heads, dropout, phi)  # branch queries second
        self.backward_attention = (
            DynamicAttention(hidden_size, heads, dropout, phi) if config.backward_term else None
        )  # second queries branch (option)
        self.norm_first = nn.LayerNorm(hidden_size)
        self.third_attention = DynamicAttention(hidden_size, heads, dropout, phi) if stages == 2 else None
        self.norm_second = nn.LayerNorm(hidden_size) if stages == 2 else None
        feed_forward = config.feed_forward_multiplier * hidden_size
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden_size, feed_forward), nn.GELU(), nn.Dropout(dropout), nn.Linear(feed_forward, hidden_size)
        )
        self.norm_third = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, stream: torch.Tensor, second: torch.Tensor, third: torch.Tensor | None, mask: torch.Tensor
    ) -> torch.Tensor:
        attended = self.forward_attention(stream, second, mask)  # (B, L, H)
        if self.backward_attention is not None:
            attended = attended + self.backward_attention(second, stream, mask)
        stream = self.norm_first(stream + self.dropout(attended))  # H_{ta}
        if self.third_attention is not None:
            stream = self.norm_second(stream + self.dropout(self.third_attention(stream, third, mask)))  # H_{tav}
        return self.norm_third(stream + self.dropout(self.feed_forward(stream)))


def search_space(trial, prefix: str) -> dict:
    return {
        "layers": trial.suggest_int(f"{prefix}layers", 1, 6),
        "heads": trial.suggest_categorical(f"{prefix}heads", [2, 4, 8]),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.0, 0.5),
        "combine": trial.suggest_categorical(f"{prefix}combine", ["gated", "mean", "concat"]),
    }


@component("fuser", "hcmf", config=HCMFConfig, search_space=search_space, paper=PAPER)
class HCMFFuser(nn.Module):
    """mixed[m] (B, L, H), mask (B, L) → fused (B, L, H) and one branch output per modality."""

    def __init__(self, config: HCMFConfig, *, modalities: tuple[str, ...], hidden_size: int) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.partners = {
            m: ([o for o in self.modalities if o != m] or [m]) for m in self.modalities
        }  # second (and third) modality of each branch; a lone modality partners itself
        stages = 2 if len(self.modalities) >= 3 else 1
        self.branches = nn.ModuleDict(
            {m: nn.ModuleList(HCMFLayer(hidden_size, config, stages) for _ in range(config.layers))
             for m in self.modalities}
        )
        self.combine = config.combine
        if self.combine == "gated":
            # SDT's multimodal gated fusion (merc_bench.layers.gated_fusion); the layer keeps its own name
            # here, not GatedFusion's `score`, so that state dicts stay as they were.
            self.fusion_score = nn.Linear(hidden_size, hidden_size, bias=False)
            if len(self.modalities) == 1:
                # A softmax over one modality is 1 whatever the score: the layer cannot learn, so it is
                # frozen (kept, so that the weights initialised after it stay as they were).
                self.fusion_score.weight.requires_grad_(False)
        elif self.combine == "concat":
            # MultiEMO's fusion: concatenation → Linear(M·H → H) → two-layer MLP (back to H; the model's
            # head then maps to the classes).
            self.fusion_project = nn.Linear(len(self.modalities) * hidden_size, hidden_size)
            self.fusion_mlp = nn.Sequential(
                nn.Linear(hidden_size, 2 * hidden_size), nn.ReLU(), nn.Dropout(config.dropout),
                nn.Linear(2 * hidden_size, hidden_size),
            )

    def forward(
        self, *, mixed: dict[str, torch.Tensor], encoded: dict[str, torch.Tensor], mask: torch.Tensor
    ) -> FuserOutput:
        branches = {}
        for modality, layers in self.branches.items():
            partners = self.partners[modality]
            second = mixed[partners[0]]
            third = mixed[partners[1]] if len(partners) > 1 else None
            stream = mixed[modality]
            for layer in layers:
                stream = layer(stream, second, third, mask)
            branches[modality] = stream  # (B, L, H)
        states = [branches[m] for m in self.modalities]
        if self.combine == "gated":
            fused = gated_fusion(states, self.fusion_score)  # M × (B, L, H) → (B, L, H)
        elif self.combine == "mean":
            fused = torch.stack(states, dim=0).mean(dim=0)
        else:
            fused = self.fusion_mlp(self.fusion_project(torch.cat(states, dim=-1)))  # (B, L, M·H) → (B, L, H)
        return FuserOutput(fused=fused, per_modality=branches)
