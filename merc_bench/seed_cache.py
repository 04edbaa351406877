"""Finished seeds, kept by fingerprint so a comparison that was interrupted resumes where it stopped.

A seed's result is fully determined (on one device type) by the resolved run configuration, the
dataset's content, the seed and the code that trains it. :class:`SeedCache` stores what a finished
seed produced — metrics, history, selected epoch, teacher facts, the test labels and predictions
(for paired significance tests) and optionally the fused test representations (for t-SNE) — under
the hash of those four things, in ``<cache>/seeds/``, with the seed's self-describing checkpoint
(:mod:`merc_bench.checkpoint`; hard-linked from the run folder where the file system allows, so it
costs no second copy) that a reusing run writes into its own folder. Labels that do not change the result (the
recipe's display name, the number of seeds, checkpoint saving) are left out of the hash, so
``--seeds 5`` after ``--seeds 2`` trains only seeds 2–4.

The code is :func:`merc_bench.code_fingerprint.code_parts` of the run (and of its teacher): the
core's training modules, and for every participating component package its distribution, version
and source digest. Editing a component or upgrading a plugin therefore retrains. So that the
output can say *why* a seed was retrained, each entry is also indexed by its identity — the same
hash without the code — in ``<cache>/seeds/by-identity/``: a miss whose identity is there names the
parts that changed (:meth:`SeedCache.why_not_reused`). ``--no-reuse`` on ``compare`` and ``run``
retrains regardless.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from merc_bench.code_fingerprint import changed_parts
from merc_bench.config import RunConfig
from merc_bench.data import Corpus
from merc_bench.report import atomic_write
from merc_bench.paths import cache_dir
from merc_bench.trainer import SeedResult

__all__ = ["SeedCache", "SeedKey", "seed_key"]


@dataclass(frozen=True)
class SeedKey:
    """Where one seed is cached (``key``), what it is regardless of code (``identity``) and the code."""

    key: str
    identity: str
    code: dict[str, Any]


def seed_key(config: RunConfig, corpus: Corpus, seed: int, device_type: str, code: dict[str, Any]) -> SeedKey:
    """The fingerprint of one seed of one configuration on one dataset, trained by ``code``."""
    described = config.cache_description()
    described["device"] = device_type  # "auto" means different hardware on different machines
    identity = {"config": described, "dataset": corpus.fingerprint(), "seed": seed}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
    key = hashlib.sha256(json.dumps({**identity, "code": code}, sort_keys=True).encode()).hexdigest()[:24]
    return SeedKey(key=key, identity=digest, code=code)


class SeedCache:
    """Finished seeds on disk: ``<root>/<key>.json`` (metrics), ``<root>/<key>.npz`` (arrays) and
    ``<root>/<key>.pt`` (the checkpoint, when the run wrote one)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "seeds"

    def load(self, seed_key: SeedKey) -> tuple[SeedResult, np.ndarray | None] | None:
        """The cached seed and its test embeddings (or None), or None when absent or unreadable."""
        key = seed_key.key
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
        checkpoint = self.root / f"{key}.pt"
        result = SeedResult(
            seed=meta["seed"],
            selected_epoch=meta["selected_epoch"],
            dev=meta["dev"],
            test=meta["test"],
            history=meta["history"],
            seconds=meta["seconds"],
            checkpoint=checkpoint if checkpoint.is_file() else None,  # the pipeline copies it into the run
            test_labels=labels,
            test_predictions=predictions,
            teacher=meta.get("teacher"),
        )
        return result, embeddings

    def why_not_reused(self, seed_key: SeedKey) -> str | None:
        """Why an absent entry is absent: the code parts that changed since the same seed was cached."""
        try:
            before = json.loads((self.root / "by-identity" / f"{seed_key.identity}.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None  # never cached (or an unreadable index: then nothing to explain)
        if not isinstance(before, dict) or before.get("key") == seed_key.key:
            return None
        changes = changed_parts(before.get("code") or {}, seed_key.code)
        return "code changed since it was cached: " + "; ".join(changes) if changes else None

    def save(self, seed_key: SeedKey, result: SeedResult, embeddings: np.ndarray | None = None) -> None:
        """Store a finished seed; the arrays are written first, so a present .json means a whole entry."""
        key = seed_key.key
        self.root.mkdir(parents=True, exist_ok=True)
        arrays = {"test_labels": result.test_labels, "test_predictions": result.test_predictions}
        if embeddings is not None:
            arrays["test_embeddings"] = embeddings.astype(np.float16)
        atomic_write(self.root / f"{key}.npz", lambda stream: np.savez_compressed(stream, **arrays))
        if result.checkpoint is not None:
            _link_or_copy(result.checkpoint, self.root / f"{key}.pt")
        meta = {
            "seed": result.seed,
            "selected_epoch": result.selected_epoch,
            "dev": result.dev,
            "test": result.test,
            "history": result.history,
            "seconds": result.seconds,
            "teacher": result.teacher,
            "code": seed_key.code,
        }
        text = json.dumps(meta, default=_json_default).encode()
        atomic_write(self.root / f"{key}.json", lambda stream: stream.write(text))
        index = json.dumps({"key": key, "code": seed_key.code}).encode()
        (self.root / "by-identity").mkdir(exist_ok=True)
        atomic_write(self.root / "by-identity" / f"{seed_key.identity}.json", lambda stream: stream.write(index))


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` becomes ``source``'s content: a hard link (no second copy) or, across devices, a copy."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    try:
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the seed cache")

