"""The safe on-disk corpus format: one ``.npz`` per split plus ``manifest.json``. No pickle.

A folder written by :func:`write_corpus` holds

* ``train.npz``, ``dev.npz``, ``test.npz`` — arrays ``ids`` (unicode), ``lengths`` (int64, one per
  dialogue), ``speakers`` and ``labels`` (int64, concatenated over utterances) and
  ``features_<modality>`` (float32, (utterances, D_m)), loaded with ``allow_pickle=False``;
* ``manifest.json`` — the dataset facts (name, family, classes, feature sizes, speakers), per split
  the dialogue count, utterance count, dialogue ids, class counts and the file's sha256, and the
  provenance (source file, size, sha256, detected layout, creation time, merc-bench version, ...).

:func:`read_corpus` checks every file's sha256 against the manifest before trusting it. The whole
folder is written under a temporary name and renamed into place, so an interrupted write never
leaves a half-written dataset behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from merc_bench.data import Corpus, DatasetInfo, Dialogue
from merc_bench.errors import UserError

__all__ = ["FORMAT", "MANIFEST", "write_corpus", "read_corpus", "read_manifest", "is_feature_store", "sha256_file"]

FORMAT = "merc-bench-features"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("train", "dev", "test")


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def is_feature_store(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def _split_arrays(dialogues: list[Dialogue], modalities: tuple[str, ...], dims: dict[str, int]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {
        "ids": np.asarray([d.id for d in dialogues], dtype=str),
        "lengths": np.asarray([len(d) for d in dialogues], dtype=np.int64),
        "speakers": np.concatenate([d.speakers for d in dialogues]).astype(np.int64)
        if dialogues else np.zeros(0, np.int64),
        "labels": np.concatenate([d.labels for d in dialogues]).astype(np.int64)
        if dialogues else np.zeros(0, np.int64),
    }
    for modality in modalities:
        arrays[f"features_{modality}"] = (
            np.concatenate([d.features[modality] for d in dialogues]).astype(np.float32, copy=False)
            if dialogues else np.zeros((0, dims[modality]), np.float32)
        )
    return arrays


def write_corpus(corpus: Corpus, target: Path, *, provenance: dict[str, Any] | None = None,
                 overwrite: bool = False) -> Path:
    """Write ``corpus`` to the folder ``target`` (atomically); return the manifest's path."""
    from merc_bench import __version__

    target = Path(target)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise UserError(f"{str(target)!r} already exists and is not empty; choose a new folder or remove it first.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        info = corpus.info
        splits: dict[str, Any] = {}
        for split in SPLITS:
            dialogues = corpus.split(split)
            path = staging / f"{split}.npz"
            np.savez(path, **_split_arrays(dialogues, info.modalities, info.feature_dims))
            splits[split] = {
                "file": path.name,
                "sha256": sha256_file(path),
                "dialogues": len(dialogues),
                "utterances": int(sum(len(d) for d in dialogues)),
                "class_counts": corpus.class_counts(split).tolist(),
                "ids": [d.id for d in dialogues],
            }
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "dataset": {
                "name": info.name,
                "family": info.family,
                "classes": list(info.classes),
                "feature_dims": dict(info.feature_dims),
                "num_speakers": info.num_speakers,
                "description": info.description,
            },
            "splits": splits,
            "provenance": {**corpus.provenance, **(provenance or {})},
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "merc_bench_version": __version__,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target / MANIFEST


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read {str(path)!r}: {error}. Is this a folder written by `merc-bench data convert`?") \
            from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{str(path)!r} is not a {FORMAT} v{FORMAT_VERSION} manifest "
            f"(format {manifest.get('format')!r}, version {manifest.get('format_version')!r})."
        )
    return manifest


def read_corpus(folder: Path, *, verify: bool = True) -> Corpus:
    """Load a folder written by :func:`write_corpus`, checking each file's sha256 first."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    facts = manifest["dataset"]
    info = DatasetInfo(
        name=facts["name"],
        family=facts["family"],
        classes=tuple(facts["classes"]),
        feature_dims={m: int(d) for m, d in facts["feature_dims"].items()},
        num_speakers=int(facts["num_speakers"]),
        description=facts.get("description", ""),
    )
    splits = {}
    for split in SPLITS:
        entry = manifest["splits"][split]
        path = folder / entry["file"]
        if not path.is_file():
            raise UserError(f"{str(path)!r} is listed in the manifest but missing.")
        if verify and sha256_file(path) != entry["sha256"]:
            raise UserError(
                f"{str(path)!r} does not match its sha256 in {MANIFEST} (file changed or damaged); convert again."
            )
        with np.load(path, allow_pickle=False) as arrays:
            lengths = arrays["lengths"]
            bounds = np.concatenate([[0], np.cumsum(lengths)])
            features = {m: arrays[f"features_{m}"] for m in info.feature_dims}
            speakers, labels, ids = arrays["speakers"], arrays["labels"], arrays["ids"]
        splits[split] = [
            Dialogue(
                id=str(ids[i]),
                features={m: x[bounds[i] : bounds[i + 1]] for m, x in features.items()},
                speakers=speakers[bounds[i] : bounds[i + 1]],
                labels=labels[bounds[i] : bounds[i + 1]],
            )
            for i in range(len(lengths))
        ]
    provenance = dict(manifest.get("provenance", {}))
    provenance["feature_store"] = str(folder.resolve())
    return Corpus(info=info, train=splits["train"], dev=splits["dev"], test=splits["test"], provenance=provenance)
