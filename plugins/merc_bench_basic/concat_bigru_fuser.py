"""Early-fusion fuser: concatenate the modalities of each utterance, then one BiGRU over the dialogue.

Early (feature-level) fusion (Baltrušaitis, Ahuja and Morency, "Multimodal Machine Learning: A
Survey and Taxonomy", IEEE TPAMI 2019, section "Fusion") is the simplest multimodal baseline in
conversational emotion recognition: each utterance's text, audio and visual vectors are joined
into one vector *before* any context is modelled, and one recurrent network reads the dialogue of
joined vectors. MMGCN (Hu et al., ACL 2021, abstract) describes earlier multimodal models such as
DialogueRNN (Majumder et al., AAAI 2019) as "leveraging multimodal information through feature
concatenation"; the bidirectional GRU is DialogueGCN's sequential context encoder (Ghosal et al.,
EMNLP 2019, §3.2). SUMMER (Li et al., 2025, Tables II–III) compares against those models. This
file is our reference point for "fusion first, context second", the opposite order of
``bigru-concat`` (context per modality first, then concatenation).

Per utterance t of a dialogue (real utterances only):

1. x_t = [e_t^text ; e_t^audio ; e_t^visual] — the encoder outputs, in the run's modality order
   (any non-empty subset of modalities works: M·H inputs for M modalities);
2. z_t = W x_t + b, a linear map from M·H back to H (keeps the GRU's size independent of M);
3. h_t = [GRU→(z_1..z_t) ; GRU←(z_t..z_n)], H/2 per direction, concatenated back to H;
4. fused_t = dropout(h_t).

Choices the papers leave open, or that we made for a shared benchmark:

* The input is the *encoder* output (``encoded``), not the mixer output, so the recipe's mixer
  should be ``identity``; ``inputs = "mixed"`` concatenates the mixer outputs instead (context per
  modality, then a joint BiGRU).
* No activation between the linear map and the GRU: the GRU's gates are the non-linearity, and
  the map only reduces the width (our choice; DialogueRNN's GRUs read the raw concatenation).
* Sequences are packed, so padded utterances never reach the recurrence and real outputs do not
  depend on the padding (as in :mod:`merc_bench_basic.bigru_mixer`).
* The per-modality outputs are the mixer outputs, unchanged: this fuser has no per-modality path.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from merc_bench import FuserOutput, component


class ConcatBiGRUFuserConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layers: int = Field(1, gt=0, le=4, description="stacked BiGRU layers over the joined utterances")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout on the BiGRU output")
    inputs: Literal["encoded", "mixed"] = Field(
        "encoded",
        description="concatenate the encoder outputs (early fusion, the default) or the mixer outputs",
    )


def search_space(trial, prefix: str) -> dict:
    """Optuna search space for this fuser's options (the input choice stays the recipe's)."""
    return {
        "layers": trial.suggest_int(f"{prefix}layers", 1, 2),
        "dropout": trial.suggest_float(f"{prefix}dropout", 0.0, 0.5),
    }


@component("fuser", "concat-bigru", config=ConcatBiGRUFuserConfig, search_space=search_space)
class ConcatBiGRUFuser(nn.Module):
    """encoded[m] (B, L, H) for every modality, mask (B, L) → fused (B, L, H); per-modality = mixed."""

    def __init__(self, config: ConcatBiGRUFuserConfig, *, modalities: tuple[str, ...], hidden_size: int) -> None:
        super().__init__()
        if hidden_size % 2:
            raise ValueError(f"the concat-bigru fuser needs an even hidden size, got {hidden_size}")
        self.modalities = tuple(modalities)
        self.inputs = config.inputs
        self.reduce = nn.Linear(len(self.modalities) * hidden_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size // 2, num_layers=config.layers, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, *, mixed: dict[str, torch.Tensor], encoded: dict[str, torch.Tensor], mask: torch.Tensor
    ) -> FuserOutput:
        source = encoded if self.inputs == "encoded" else mixed
        joined = torch.cat([source[m] for m in self.modalities], dim=-1)  # (B, L, M·H)
        reduced = self.reduce(joined)  # (B, L, H)
        lengths = mask.sum(dim=1).cpu()  # (B,) real utterances per dialogue
        packed = pack_padded_sequence(reduced, lengths, batch_first=True, enforce_sorted=False)
        context, _ = self.gru(packed)
        context, _ = pad_packed_sequence(context, batch_first=True, total_length=mask.shape[1])  # (B, L, H)
        return FuserOutput(fused=self.dropout(context), per_modality=dict(mixed))
