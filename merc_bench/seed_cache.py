"""Finished seeds, kept by fingerprint so a comparison that was interrupted resumes where it stopped.

A seed's result is fully determined (on one device type) by the resolved run configuration, the
dataset's content, the seed and the merc-bench version. :class:`SeedCache` stores what a finished
seed produced — metrics, history, selected epoch, teacher facts, the test labels and predictions
(for paired significance tests) and optionally the fused test representations (for t-SNE) — under
the hash of those four things, in ``<cache>/seeds/``. Labels that do not change the result (the
recipe's display name, the number of seeds, checkpoint saving) are left out of the hash, so
``--seeds 5`` after ``--seeds 2`` trains only seeds 2–4.

The version is part of the key, not the git commit: editing a component's code without bumping
the version can make a reused seed stale. ``--no-reuse`` on ``compare`` and ``run`` retrains.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from merc_bench import __version__
from merc_bench.config import RunConfig
from merc_bench.data import Corpus
from merc_bench.report import atomic_write
from merc_bench.trainer import SeedResult, cache_dir

__all__ = ["SeedCache", "seed_key"]

def seed_key(config: RunConfig, corpus: Corpus, seed: int, device_type: str) -> str:
    """The fingerprint of one seed of one configuration on one dataset."""
    described = config.cache_description()
    described["device"] = device_type  # "auto" means different hardware on different machines
    payload = {"config": described, "dataset": corpus.fingerprint(), "seed": seed, "version": __version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


class SeedCache:
    """Finished seeds on disk: ``<root>/<key>.json`` (metrics) and ``<root>/<key>.npz`` (arrays)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "seeds"

    def load(self, key: str) -> tuple[SeedResult, np.ndarray | None] | None:
        """The cached seed and its test embeddings (or None), or None when absent or unreadable."""
        meta_path, arrays_path = self.root / f"{key}.json", self.root / f"{key}.npz"
        if not (meta_path.is_file() and arrays_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            with np.load(arrays_path, allow_pickle=False) as arrays:
                labels, predictions = arrays["test_labels"], arrays["test_predictions"]
                embeddings = arrays["test_embeddings"] if "test_embeddings" in arrays.files else None
        except (OSError, ValueError, KeyError):
            return None  # a half-written or foreign file: train again rather than trust it
        result = SeedResult(
            seed=meta["seed"],
            selected_epoch=meta["selected_epoch"],
            dev=meta["dev"],
            test=meta["test"],
            history=meta["history"],
            seconds=meta["seconds"],
            checkpoint=Path(meta["checkpoint"]) if meta.get("checkpoint") else None,
            test_labels=labels,
            test_predictions=predictions,
            teacher=meta.get("teacher"),
        )
        return result, embeddings

    def save(self, key: str, result: SeedResult, embeddings: np.ndarray | None = None) -> None:
        """Store a finished seed; the arrays are written first, so a present .json means a whole entry."""
        self.root.mkdir(parents=True, exist_ok=True)
        arrays = {"test_labels": result.test_labels, "test_predictions": result.test_predictions}
        if embeddings is not None:
            arrays["test_embeddings"] = embeddings.astype(np.float16)
        atomic_write(self.root / f"{key}.npz", lambda stream: np.savez_compressed(stream, **arrays))
        meta = {
            "seed": result.seed,
            "selected_epoch": result.selected_epoch,
            "dev": result.dev,
            "test": result.test,
            "history": result.history,
            "seconds": result.seconds,
            "checkpoint": str(result.checkpoint) if result.checkpoint else None,
            "teacher": result.teacher,
            "version": __version__,
        }
        text = json.dumps(meta, default=_json_default).encode()
        atomic_write(self.root / f"{key}.json", lambda stream: stream.write(text))


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the seed cache")

