"""The safe on-disk corpus format: one ``.npz`` per split plus ``manifest.json``. No pickle.

A folder written by :func:`write_corpus` holds

* ``train.npz``, ``dev.npz``, ``test.npz`` — arrays ``ids`` (unicode), ``lengths`` (int64, one per
  dialogue), ``speakers`` and ``labels`` (int64, concatenated over utterances) and
  ``features_<modality>`` (float32, (utterances, D_m));
* ``manifest.json`` — the dataset facts (name, family, classes, feature sizes, speakers), per split
  the dialogue count, utterance count, dialogue ids, class counts and the file's sha256, and the
  provenance (source file, size, sha256, detected layout, creation time, merc-bench version, ...).

A folder is verified, not trusted — it may come from a stranger. :func:`read_corpus`

* validates the manifest against a schema (:class:`Manifest`: every field, type and range; unknown
  fields refused; the free-form provenance bounded in depth and its printed fields typed);
* confines the split files to the folder: plain ``name.npz`` names, no ``..``, no absolute path, no
  symlink resolving outside it;
* checks each file's sha256 against the manifest (this catches accidental corruption — a
  truncated copy, a flipped bit — but not a deliberate edit, which can rewrite the manifest too);
* reads each ``.npz`` through :mod:`merc_bench.safe_arrays`: exactly the expected arrays, each
  dtype and shape checked against the manifest from the ``.npy`` header *before* anything is
  inflated or allocated, the total bounded by the memory left;
* checks the arrays against the manifest (ids, lengths, counts, class counts, label and speaker
  ranges), then passes the corpus through :func:`merc_bench.data.validate_corpus`.

:func:`write_corpus` runs the same corpus check and schema before writing, so it never writes a
folder that would be refused; the folder is written under a temporary name and renamed into place,
so an interrupted write never leaves a half-written dataset behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from merc_bench.data import Corpus, DatasetInfo, Dialogue, validate_corpus
from merc_bench.errors import UserError, preview
from merc_bench.safe_arrays import ArraySpec, memory_budget, read_npz

__all__ = ["FORMAT", "MANIFEST", "Manifest", "write_corpus", "read_corpus", "read_manifest", "is_feature_store",
           "sha256_file"]

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
    """Write ``corpus`` to the folder ``target`` (atomically); return the manifest's path.

    The corpus passes :func:`~merc_bench.data.validate_corpus` and the manifest the schema first: a
    folder this writes is one :func:`read_corpus` accepts.
    """
    from merc_bench import __version__

    corpus = validate_corpus(corpus)
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
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "merc_bench_version": __version__,
        }
        _validated(manifest, f"the manifest for {str(target)!r}")
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target / MANIFEST


# -- the manifest's schema -------------------------------------------------------------------------
#: A manifest larger than this is refused before it is parsed (a MELD manifest is about 30 KB).
MAX_MANIFEST_BYTES = 16 << 20
MAX_CLASSES = 1000
MAX_FEATURE_DIM = 1 << 20
MAX_SPEAKERS = 100_000
MAX_DIALOGUES = 10_000_000
MAX_UTTERANCES = 1_000_000_000
MAX_ID_CHARS = 1000
MAX_PROVENANCE_DEPTH = 16

_Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
_Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
_Short = Annotated[str, StringConstraints(max_length=200)]
#: A plain file name in the folder: no separator, no leading dot (so no "..").
_FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.npz$")]
_Count = Annotated[int, Field(ge=0, le=MAX_UTTERANCES)]
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
# Provenance fields that merc-bench prints or reads back, and the type each must have.
_PROVENANCE_TEXT = ("layout", "layout_description", "prepared_by", "generator", "splits", "source", "text_feature",
                    "feature_store", "nan_policy", "converted_by")


class DatasetFacts(BaseModel):
    """What :class:`~merc_bench.data.DatasetInfo` holds."""

    model_config = _STRICT

    name: _Name
    family: _Name
    classes: list[_Name] = Field(min_length=2, max_length=MAX_CLASSES)
    feature_dims: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)],
                       Annotated[int, Field(ge=1, le=MAX_FEATURE_DIM)]] = Field(min_length=1, max_length=16)
    num_speakers: int = Field(ge=1, le=MAX_SPEAKERS)
    description: Annotated[str, StringConstraints(max_length=10_000)] = ""

    @field_validator("classes")
    @classmethod
    def _distinct(cls, classes: list[str]) -> list[str]:
        if len(set(classes)) != len(classes):
            raise ValueError("class names must be distinct")
        return classes


class SplitEntry(BaseModel):
    """One split's file and the facts its arrays must match."""

    model_config = _STRICT

    file: _FileName
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    dialogues: int = Field(ge=1, le=MAX_DIALOGUES)
    utterances: int = Field(ge=1, le=MAX_UTTERANCES)
    class_counts: list[_Count] = Field(max_length=MAX_CLASSES)
    ids: list[_Id] = Field(max_length=MAX_DIALOGUES)

    @model_validator(mode="after")
    def _consistent(self) -> SplitEntry:
        if len(self.ids) != self.dialogues:
            raise ValueError(f"lists {len(self.ids)} ids for {self.dialogues} dialogues")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("lists a dialogue id twice")
        if self.utterances < self.dialogues:
            raise ValueError(f"{self.utterances} utterances cannot fill {self.dialogues} non-empty dialogues")
        if sum(self.class_counts) != self.utterances:
            raise ValueError(f"class counts sum to {sum(self.class_counts)}, not {self.utterances} utterances")
        return self


class Splits(BaseModel):
    model_config = _STRICT

    train: SplitEntry
    dev: SplitEntry
    test: SplitEntry


def _check_provenance(value: Any, depth: int = 0) -> None:
    if depth > MAX_PROVENANCE_DEPTH:
        raise ValueError(f"nests deeper than {MAX_PROVENANCE_DEPTH} levels")
    if isinstance(value, dict):
        for item in value.values():
            _check_provenance(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_provenance(item, depth + 1)


class Manifest(BaseModel):
    """``manifest.json``: every field typed and bounded; ``provenance`` free-form but bounded."""

    model_config = _STRICT

    format: Literal["merc-bench-features"]
    format_version: Literal[1]
    dataset: DatasetFacts
    splits: Splits
    provenance: dict[str, Any] = Field(default_factory=dict)
    created: _Short = ""
    merc_bench_version: _Short = ""

    @field_validator("provenance")
    @classmethod
    def _bounded(cls, provenance: dict[str, Any]) -> dict[str, Any]:
        _check_provenance(provenance)
        for key in _PROVENANCE_TEXT:
            if key in provenance and not isinstance(provenance[key], str):
                raise ValueError(f"provenance.{key} must be text")
        warnings = provenance.get("warnings", [])
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise ValueError("provenance.warnings must be a list of text")
        files = provenance.get("source_files", [])
        if not isinstance(files, list) or not all(
                isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("sha256"), str)
                and isinstance(f.get("bytes"), int) and not isinstance(f.get("bytes"), bool) for f in files):
            raise ValueError("provenance.source_files must list {name, bytes, sha256} entries")
        replaced = provenance.get("non_finite_replaced", {})
        if not isinstance(replaced, dict) or not all(isinstance(n, int) and not isinstance(n, bool)
                                                     for n in replaced.values()):
            raise ValueError("provenance.non_finite_replaced must map modality to a count")
        return provenance

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        classes = len(self.dataset.classes)
        files: dict[str, str] = {}
        owner: dict[str, str] = {}
        for split in SPLITS:
            entry = getattr(self.splits, split)
            if len(entry.class_counts) != classes:
                raise ValueError(f"splits.{split}.class_counts has {len(entry.class_counts)} entries for {classes} "
                                 "classes")
            if entry.file in files:
                raise ValueError(f"splits.{split}.file {entry.file!r} is also the {files[entry.file]} file")
            files[entry.file] = split
            for dialogue in entry.ids:
                if dialogue in owner:
                    raise ValueError(f"dialogue {preview(dialogue)} is listed in {owner[dialogue]} and {split}")
                owner[dialogue] = split
        return self


def _validated(manifest: Any, where: str) -> Manifest:
    """``manifest`` (parsed JSON) as a :class:`Manifest`, or one paragraph naming every bad field."""
    try:
        return Manifest.model_validate(manifest)
    except pydantic.ValidationError as error:
        problems = []
        for item in error.errors()[:6]:
            location = ".".join(str(part) for part in item["loc"]) or "(top level)"
            if item["type"] == "extra_forbidden":
                problems.append(f"{location} is not a manifest field")
            elif item["type"] == "missing":
                problems.append(f"{location} is missing")
            elif item["type"] == "value_error":  # our own checks: the message names the values
                problems.append(f"{location}: {item['msg'].removeprefix('Value error, ')}")
            else:
                problems.append(f"{location} = {preview(item.get('input'), 60)}: {item['msg']}")
        more = f" (and {error.error_count() - 6} more)" if error.error_count() > 6 else ""
        raise UserError(f"{where} is not a valid {FORMAT} v{FORMAT_VERSION} manifest: " + "; ".join(problems) + more
                        + ". Convert the data again with `merc-bench data convert`.") from None


def _inside(folder: Path, name: str, what: str) -> Path:
    """``folder/name`` as a regular file inside ``folder`` (a symlink may point elsewhere in it, not out)."""
    path = folder / name
    if not path.exists() and not path.is_symlink():
        raise UserError(f"{what} {str(path)!r} is missing.")
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop (RuntimeError before Python 3.13)
        raise UserError(f"{what} {str(path)!r} cannot be resolved: {preview(str(error), 120)}.") from None
    if not resolved.is_relative_to(folder.resolve()):
        raise UserError(f"{what} {str(path)!r} is a symlink to {str(resolved)!r}, outside the folder; a converted "
                        "folder's files must be inside it.")
    if not resolved.is_file():
        raise UserError(f"{what} {str(path)!r} is not a regular file.")
    return resolved


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's manifest, validated against :class:`Manifest` (as a dict)."""
    return _load_manifest(Path(folder)).model_dump()


def _load_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    where = repr(str(path))
    hint = "Is this a folder written by `merc-bench data convert`?"
    try:
        resolved = _inside(folder, MANIFEST, "the manifest")
        size = resolved.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise UserError(f"{where} is {size:,} bytes; a manifest is at most {MAX_MANIFEST_BYTES:,}. {hint}")
        with open(resolved, "rb") as stream:
            text = stream.read(MAX_MANIFEST_BYTES + 1).decode("utf-8")

        def no_constant(name: str) -> None:
            raise ValueError(f"{name} is not valid JSON")

        manifest = json.loads(text, parse_constant=no_constant)
    except OSError as error:
        raise UserError(f"cannot read {where}: {error.strerror or error}. {hint}") from None
    except UnicodeDecodeError:
        raise UserError(f"{where} is not UTF-8 text. {hint}") from None
    except RecursionError:
        raise UserError(f"{where} nests its JSON too deeply. {hint}") from None
    except ValueError as error:  # JSONDecodeError, NaN/Infinity, integers of more than 4300 digits
        raise UserError(f"{where} is not valid JSON ({preview(str(error), 120)}). {hint}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or manifest.get("format_version") != FORMAT_VERSION:
        found = (preview(manifest.get("format"), 40), preview(manifest.get("format_version"), 20)) \
            if isinstance(manifest, dict) else (f"a JSON {type(manifest).__name__}", "none")
        raise UserError(f"{where} is not a {FORMAT} v{FORMAT_VERSION} manifest (format {found[0]}, version "
                        f"{found[1]}). {hint}")
    return _validated(manifest, where)


# -- reading ---------------------------------------------------------------------------------------
def _specs(entry: SplitEntry, dims: dict[str, int]) -> dict[str, ArraySpec]:
    """Each array a split file must hold: dtype kinds, itemsize, shape (from the manifest)."""
    dialogues, utterances = entry.dialogues, entry.utterances
    specs: dict[str, ArraySpec] = {
        "ids": ("U", None, (dialogues,)),
        "lengths": ("iu", None, (dialogues,)),
        "speakers": ("iu", None, (utterances,)),
        "labels": ("iu", None, (utterances,)),
    }
    specs |= {f"features_{m}": ("f", 4, (utterances, d)) for m, d in dims.items()}
    return specs


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _dialogues(arrays: dict[str, np.ndarray], entry: SplitEntry, info: DatasetInfo, where: str) -> list[Dialogue]:
    """Check the arrays of one split against its manifest entry, then cut them into dialogues."""
    ids = arrays["ids"]
    if ids.dtype.itemsize // 4 > MAX_ID_CHARS or ids.tolist() != entry.ids:
        raise UserError(f"{where}: the ids array differs from the manifest's ids (first ids "
                        f"{preview(ids[:3].tolist())}, manifest {preview(entry.ids[:3])}).")
    lengths = arrays["lengths"].astype(np.int64)
    if (lengths < 1).any():
        position = _first(lengths < 1)
        raise UserError(f"{where}: dialogue {preview(entry.ids[position])} has length {int(lengths[position])}; "
                        "every dialogue needs at least one utterance.")
    if (lengths > entry.utterances).any() or int(lengths.sum()) != entry.utterances:
        raise UserError(f"{where}: the dialogue lengths add up to {int(lengths.sum(dtype=np.float64)):.0f} "
                        f"utterances; the manifest says {entry.utterances}.")
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    columns = {}
    for name, bound, what in (("labels", info.num_classes, f"the {info.num_classes} classes"),
                              ("speakers", info.num_speakers, f"the {info.num_speakers} speaker slots")):
        values = arrays[name]
        outside = (values < 0) | (values >= bound)  # before the int64 cast, which would wrap huge uint64 values
        if outside.any():
            position = _first(outside)
            dialogue = int(np.searchsorted(bounds, position, side="right")) - 1
            raise UserError(f"{where}: dialogue {preview(entry.ids[dialogue])}, utterance "
                            f"{position - int(bounds[dialogue])}: {name[:-1]} {int(values[position])} is outside "
                            f"0..{bound - 1} ({what}); {int(outside.sum())} such value(s) in this file.")
        columns[name] = values.astype(np.int64)
    counts = np.bincount(columns["labels"], minlength=info.num_classes).tolist()
    if counts != entry.class_counts:
        raise UserError(f"{where}: the labels count {counts} per class; the manifest says {entry.class_counts}.")
    features = {m: arrays[f"features_{m}"] for m in info.feature_dims}
    return [
        Dialogue(id=entry.ids[i], features={m: x[bounds[i]:bounds[i + 1]] for m, x in features.items()},
                 speakers=columns["speakers"][bounds[i]:bounds[i + 1]],
                 labels=columns["labels"][bounds[i]:bounds[i + 1]])
        for i in range(entry.dialogues)
    ]


def read_corpus(folder: Path, *, verify: bool = True, nonfinite: str = "refuse") -> Corpus:
    """Load a folder written by :func:`write_corpus`, verifying it first (see the module docstring).

    ``verify=False`` skips only the sha256 of each file (for benchmarks); every other check stays.
    ``nonfinite`` is :func:`~merc_bench.data.validate_corpus`'s policy for NaN/inf features.
    """
    folder = Path(folder)
    manifest = _load_manifest(folder)
    facts = manifest.dataset
    info = DatasetInfo(name=facts.name, family=facts.family, classes=tuple(facts.classes),
                       feature_dims=dict(facts.feature_dims), num_speakers=facts.num_speakers,
                       description=facts.description)
    budget = memory_budget()
    splits = {}
    for split in SPLITS:
        entry = getattr(manifest.splits, split)
        path = _inside(folder, entry.file, f"the {split} file (listed in the manifest)")
        where = repr(str(folder / entry.file))
        if verify and sha256_file(path) != entry.sha256:
            raise UserError(f"{where} does not match its sha256 in {MANIFEST} (file changed or damaged); convert "
                            "again.")
        arrays = read_npz(path, specs=_specs(entry, info.feature_dims), budget=budget, source=where)
        budget -= sum(array.nbytes for array in arrays.values())
        splits[split] = _dialogues(arrays, entry, info, where)
    provenance = dict(manifest.provenance)
    provenance["feature_store"] = str(folder.resolve())
    corpus = Corpus(info=info, train=splits["train"], dev=splits["dev"], test=splits["test"], provenance=provenance)
    return validate_corpus(corpus, nonfinite=nonfinite, source=f"the converted folder {str(folder)!r}")
