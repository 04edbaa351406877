"""SDT's cross-modal fuser (Ma et al. 2023, §III-C to §III-D; reference-models.md §2, items 3–6).

For every ordered pair of distinct modalities (source → target) one SDT transformer block lets the
target's utterances attend over the source's (SDT's ``a→t, v→t, t→a, v→a, t→v, a→v``; both inputs
are the encoder outputs, as in SDT, where every transformer reads the projected features). Then:

1. a unimodal gate ``x · sigmoid(W x)`` on each intra (from the mixer) and cross output; SDT learns
   W on IEMOCAP and freezes it to the identity on MELD (``unimodal_gate``), where it is SiLU;
2. per target modality, ``Linear(M·H → H)`` over [intra, cross from each other modality] — M is
   the number of modalities in the run, so any non-empty subset works (M = 3 gives SDT's 3H → H);
3. multimodal gated fusion (:class:`merc_bench.layers.GatedFusion`): one shared bias-free
   ``Linear(H, H)`` scores every modality per feature, a softmax across modalities weighs them,
   fused = Σ_m weight_m ⊙ h_m.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from merc_bench import FuserOutput, component
from merc_bench.layers import GatedFusion
from merc_bench_sdt.recipe import PAPER
from merc_bench_sdt.transformer import SDTTransformerBlock, real_positions, scatter_rows


class CrossModalFuserConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    heads: int = Field(8, gt=0, le=1024, description="attention heads (must divide the hidden size)")
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    unimodal_gate: Literal["learned", "frozen_identity"] = Field(
        "learned", description="SDT: learned on IEMOCAP, identity and frozen on MELD"
    )


class UnimodalGate(nn.Module):
    """x (..., H) → x ⊙ sigmoid(W x)."""

    def __init__(self, hidden_size: int, frozen_identity: bool) -> None:
        super().__init__()
        self.frozen_identity = frozen_identity
        self.weight = nn.Linear(hidden_size, hidden_size, bias=False)
        if frozen_identity:
            with torch.no_grad():
                self.weight.weight.copy_(torch.eye(hidden_size))
            self.weight.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen_identity:
            # x·I is exactly x, so the gate is x·sigmoid(x): skip the H×H identity product.
            return F.silu(x)
        return x * torch.sigmoid(self.weight(x))


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this fuser's options."""
    return {
        "heads": trial.suggest_categorical(f"{prefix}heads", [4, 8]),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.1, 0.6),
    }


@component("fuser", "cross-modal-transformer", config=CrossModalFuserConfig, search_space=search_space,
           paper=PAPER)
class CrossModalFuser(nn.Module):
    """mixed[m], encoded[m] (B, L, H), mask (B, L) → fused (B, L, H) and per-modality (B, L, H)."""

    def __init__(self, config: CrossModalFuserConfig, *, modalities: tuple[str, ...], hidden_size: int) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        frozen = config.unimodal_gate == "frozen_identity"
        pairs = [(source, target) for target in self.modalities for source in self.modalities]
        self.cross = nn.ModuleDict(
            {
                f"{source}_to_{target}": SDTTransformerBlock(hidden_size=hidden_size, heads=config.heads, dropout=config.dropout)
                for source, target in pairs
                if source != target
            }
        )
        self.gates = nn.ModuleDict({f"{source}_to_{target}": UnimodalGate(hidden_size, frozen) for source, target in pairs})
        self.reduce = nn.ModuleDict({m: nn.Linear(len(self.modalities) * hidden_size, hidden_size) for m in self.modalities})
        self.fusion = GatedFusion(hidden_size, len(self.modalities))  # frozen score with one modality

    def forward(
        self, *, mixed: dict[str, torch.Tensor], encoded: dict[str, torch.Tensor], mask: torch.Tensor
    ) -> FuserOutput:
        batch, length, hidden = mask.shape[0], mask.shape[1], next(iter(mixed.values())).shape[-1]
        real = real_positions(mask)  # gates, reductions and fusion are per utterance: real rows only
        per_modality = {}
        for target in self.modalities:
            intra = mixed[target].reshape(-1, hidden).index_select(0, real)  # (N, H)
            parts = [self.gates[f"{target}_to_{target}"](intra)]  # intra first, as in SDT
            for source in self.modalities:
                if source != target:
                    key = f"{source}_to_{target}"
                    cross = self.cross[key].forward_tokens(encoded[target], encoded[source], mask, real)  # (N, H)
                    parts.append(self.gates[key](cross))
            per_modality[target] = self.reduce[target](torch.cat(parts, dim=-1))  # (N, M·H) → (N, H)
        fused = self.fusion([per_modality[m] for m in self.modalities])  # (N, H)

        def padded(rows: torch.Tensor) -> torch.Tensor:
            return scatter_rows(rows, real, batch * length).view(batch, length, hidden)

        return FuserOutput(fused=padded(fused), per_modality={m: padded(h) for m, h in per_modality.items()})
