"""The data contract: dialogues, corpora, dataset facts, and batching.

Every dataset plugin returns a :class:`Corpus`; every model consumes a :class:`Batch`.
Shapes use named dimensions: B dialogues in a batch, L utterances (padded), D_m feature size of
modality m. Batches are batch-first and the mask is True for real utterances.

:func:`validate_corpus` is the one check every corpus passes before training, whatever plugin
produced it: a label outside the classes or a NaN feature otherwise surfaces as an ``IndexError``
mid-training or a NaN loss, and an empty split as a meaningless score with exit code 0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from merc_bench.errors import UserError, preview

__all__ = ["MODALITIES", "NONFINITE_POLICIES", "Dialogue", "DatasetInfo", "Corpus", "Batch", "collate", "batches",
           "validate_corpus", "nonfinite_option", "PATH_OPTION", "standardize"]

#: Modality names, in the order tables and configs list them.
MODALITIES = ("text", "audio", "visual")


class _PathOption:
    """The type of :data:`PATH_OPTION` (a marker, nothing more)."""

    def __repr__(self) -> str:
        return "PATH_OPTION"


#: Marks a dataset option holding file paths — a string, or every string inside its lists and
#: tables — in the dataset's pydantic config: ``train: Annotated[str | None, PATH_OPTION] = None``.
#: A corpus config file (``--dataset-config``, :mod:`merc_bench.dataset_config`) resolves the
#: relative paths it gives such options against its own folder, so the file and its CSVs can move
#: together; the same options given with ``--set`` reach the dataset as written.
PATH_OPTION = _PathOption()


@dataclass(frozen=True)
class Dialogue:
    """One conversation: per-utterance features, speaker indices and labels.

    ``features[m]`` is a float32 array (n_utterances, D_m); ``speakers`` are per-dialogue speaker
    indices in ``[0, num_speakers)``; ``labels`` are class ids in ``[0, num_classes)``.
    """

    id: str
    features: dict[str, np.ndarray]
    speakers: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset before it sees a batch."""

    name: str
    family: str  # "meld" or "iemocap": selects a recipe's per-family defaults
    classes: tuple[str, ...]
    feature_dims: dict[str, int]  # modality -> D_m, in MODALITIES order
    num_speakers: int
    description: str = ""

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m in self.feature_dims) + tuple(
            m for m in self.feature_dims if m not in MODALITIES
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)


#: The ``holdout`` protocol's dev split: this fraction of the labelled (train + dev) dialogues.
HOLDOUT_FRACTION = 0.1


@dataclass
class Corpus:
    """A dataset's splits. ``dev`` is the validation split the clean protocol selects on."""

    info: DatasetInfo
    train: list[Dialogue]
    dev: list[Dialogue]
    test: list[Dialogue]
    provenance: dict[str, object] = field(default_factory=dict)

    def split(self, name: str) -> list[Dialogue]:
        return {"train": self.train, "dev": self.dev, "test": self.test}[name]

    def class_counts(self, split: str = "train") -> np.ndarray:
        counts = np.zeros(self.info.num_classes, dtype=np.int64)
        for dialogue in self.split(split):
            counts += np.bincount(dialogue.labels, minlength=self.info.num_classes)
        return counts

    def fingerprint(self) -> str:
        """A content hash of every split's ids, labels, speakers and features (sha256, 16 hex digits)."""
        digest = hashlib.sha256()
        for split in ("train", "dev", "test"):
            digest.update(split.encode())
            for dialogue in self.split(split):
                digest.update(dialogue.id.encode())
                digest.update(np.ascontiguousarray(dialogue.labels, dtype=np.int64).tobytes())
                digest.update(np.ascontiguousarray(dialogue.speakers, dtype=np.int64).tobytes())
                for modality in sorted(dialogue.features):
                    digest.update(modality.encode())
                    digest.update(np.ascontiguousarray(dialogue.features[modality]).tobytes())
        return digest.hexdigest()[:16]

    def with_holdout_dev(self, fraction: float = HOLDOUT_FRACTION) -> Corpus:
        """The ``holdout`` protocol's splits: dev = the first ``fraction`` of the labelled dialogues.

        The pool is train + dev (what a train-only feature file calls "train"); its size times
        ``fraction``, rounded down (at least 1), is taken from the start of train, in the dataset's
        train order, as the new dev; the rest of train and the dataset's own dev are trained on.
        This is the validation rule of COGMEN's and CORECT's preprocessing (10 % of the train
        dialogues, taken from the front). Test is unchanged.
        """
        size = max(1, int((len(self.train) + len(self.dev)) * fraction))
        if size >= len(self.train):
            raise UserError(f"the holdout protocol takes the first {size} train dialogues as its dev split, but "
                            f"dataset {self.info.name!r} has only {len(self.train)} train dialogues: nothing "
                            "would be left to train on; use --protocol clean.")
        return dataclasses.replace(self, train=self.train[size:] + self.dev, dev=self.train[:size])

    def standardization(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per modality, the *train* split's per-dimension mean and std (floored at 1e-6), float64."""
        scales = {}
        for modality in self.info.feature_dims:
            stacked = np.concatenate([d.features[modality] for d in self.train]).astype(np.float64)
            scales[modality] = (stacked.mean(axis=0), np.maximum(stacked.std(axis=0), 1e-6))
        return scales

    def standardized(self, scales: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Corpus:
        """A copy whose features are z-scored per dimension with the *train* split's mean and std.

        Unit-norm sentence embeddings (MiniLM: each value ≈ 0.05) are otherwise drowned by the
        speaker and position embeddings SDT-style encoders add. Statistics come from train only, so
        nothing is learned from dev or test. ``scales`` (:meth:`standardization` of the corpus a
        model trained on, as its checkpoint keeps them) standardise new dialogues the same way.
        """
        scales = self.standardization() if scales is None else scales
        return Corpus(self.info, standardize(self.train, scales), standardize(self.dev, scales),
                      standardize(self.test, scales),
                      dict(self.provenance, standardized="per dimension, train mean and std"))

    def summary(self) -> str:
        sizes = ", ".join(
            f"{split} {len(self.split(split))} dialogues / {sum(len(d) for d in self.split(split))} utterances"
            for split in ("train", "dev", "test")
        )
        return sizes


def standardize(dialogues: list[Dialogue], scales: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[Dialogue]:
    """``dialogues`` with every modality's features z-scored by ``scales`` (modality -> (mean, std))."""
    return [Dialogue(id=d.id, speakers=d.speakers, labels=d.labels,
                     features={m: ((x - scales[m][0]) / scales[m][1]).astype(np.float32) for m, x in d.features.items()})
            for d in dialogues]


@dataclass
class Batch:
    """Padded tensors for B dialogues of at most L utterances.

    features[m]: (B, L, D_m) float32; speakers: (B, L) long, padded with ``num_speakers``;
    labels: (B, L) long, padded with -1; mask: (B, L) bool, True for real utterances.
    """

    features: dict[str, torch.Tensor]
    speakers: torch.Tensor
    labels: torch.Tensor
    mask: torch.Tensor
    ids: list[str]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            features={m: x.to(device, non_blocking=True) for m, x in self.features.items()},
            speakers=self.speakers.to(device, non_blocking=True),
            labels=self.labels.to(device, non_blocking=True),
            mask=self.mask.to(device, non_blocking=True),
            ids=self.ids,
        )

    def real_labels(self) -> torch.Tensor:
        """Labels of the real utterances, flattened in (B, L) order: (N,)."""
        return self.labels[self.mask]


def collate(dialogues: Sequence[Dialogue], *, modalities: Sequence[str], num_speakers: int) -> Batch:
    """Pad ``dialogues`` into one :class:`Batch` (one numpy copy per field, then one tensor)."""
    size = len(dialogues)
    length = max(len(d) for d in dialogues)
    features = {}
    for modality in modalities:
        dim = dialogues[0].features[modality].shape[1]
        padded = np.zeros((size, length, dim), dtype=np.float32)
        for row, dialogue in enumerate(dialogues):
            padded[row, : len(dialogue)] = dialogue.features[modality]
        features[modality] = torch.from_numpy(padded)
    speakers = np.full((size, length), num_speakers, dtype=np.int64)
    labels = np.full((size, length), -1, dtype=np.int64)
    mask = np.zeros((size, length), dtype=bool)
    for row, dialogue in enumerate(dialogues):
        n = len(dialogue)
        speakers[row, :n] = dialogue.speakers
        labels[row, :n] = dialogue.labels
        mask[row, :n] = True
    return Batch(
        features=features,
        speakers=torch.from_numpy(speakers),
        labels=torch.from_numpy(labels),
        mask=torch.from_numpy(mask),
        ids=[d.id for d in dialogues],
    )


def batches(
    dialogues: Sequence[Dialogue],
    *,
    batch_size: int,
    modalities: Sequence[str],
    num_speakers: int,
    generator: np.random.Generator | None = None,
) -> list[Batch]:
    """Split ``dialogues`` into padded batches; shuffled when a generator is given."""
    order = np.arange(len(dialogues))
    if generator is not None:
        generator.shuffle(order)
    return [
        collate([dialogues[i] for i in order[start : start + batch_size]], modalities=modalities, num_speakers=num_speakers)
        for start in range(0, len(order), batch_size)
    ]


# -- validation ------------------------------------------------------------------------------------
#: What to do with NaN/inf feature values: refuse the corpus (default) or replace them with 0.
NONFINITE_POLICIES = ("refuse", "zero")
#: collate() casts every feature to float32; a finite float64 beyond this becomes inf there.
_FLOAT32_MAX = float(np.finfo(np.float32).max)

def nonfinite_option(options: Mapping[str, Any], declared: Sequence[str] | Mapping[str, Any]) -> tuple[dict, str]:
    """Split the generic dataset option ``nonfinite`` from a dataset's own options.

    ``--set dataset.nonfinite=zero`` works for every dataset without each plugin declaring it: the
    pipeline takes it out before the plugin's config validates the rest, and hands it to
    :func:`validate_corpus`. A dataset that replaces non-finite values while parsing (so it can
    count them per source file, as the ``meld``/``iemocap`` pickle readers do) declares a field
    ``nonfinite`` itself; then the option stays with it. Returns (the dataset's options, the policy).
    """
    options = dict(options)
    policy = options.get("nonfinite", "refuse") if "nonfinite" in declared else options.pop("nonfinite", "refuse")
    if not isinstance(policy, str) or policy not in NONFINITE_POLICIES:
        raise UserError(f"--set dataset.nonfinite={preview(policy)} is not a policy; use refuse (the default: "
                        "NaN/inf features are an error) or zero (replace them with 0 and record the count).")
    return options, policy


def _where(corpus: Corpus, source: str | None) -> str:
    if source:
        return source
    provenance = corpus.provenance if isinstance(corpus.provenance, Mapping) else {}
    origin = next((provenance[key] for key in ("feature_store", "source") if isinstance(provenance.get(key), str)),
                  None)
    name = getattr(getattr(corpus, "info", None), "name", "?")
    return f"dataset {preview(name)}" + (f" ({preview(origin, 200)})" if origin and origin != name else "")


def _check_info(info: Any, where: str) -> None:
    if not isinstance(info, DatasetInfo):
        raise UserError(f"{where}: the dataset returned {type(info).__name__} as its facts, not a DatasetInfo.")
    classes = info.classes
    if (not isinstance(classes, (tuple, list)) or len(classes) < 2
            or not all(isinstance(c, str) and c for c in classes) or len(set(classes)) != len(classes)):
        raise UserError(f"{where}: classes {preview(classes)} must be at least two distinct, non-empty names.")
    if not isinstance(info.num_speakers, (int, np.integer)) or isinstance(info.num_speakers, bool) \
            or info.num_speakers < 1:
        raise UserError(f"{where}: num_speakers {preview(info.num_speakers)} must be a whole number of at least 1.")
    dims = info.feature_dims
    if not isinstance(dims, Mapping) or not dims:
        raise UserError(f"{where}: feature_dims {preview(dims)} must name at least one modality and its size.")
    for modality, dim in dims.items():
        if not isinstance(modality, str) or not modality:
            raise UserError(f"{where}: feature_dims names the modality {preview(modality)}; expected a name.")
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
            raise UserError(f"{where}: modality {modality!r} has feature size {preview(dim)}; a modality needs at "
                            "least one feature (a zero-width modality carries nothing to learn from).")


def _check_dialogue(dialogue: Any, split: str, info: DatasetInfo, where: str) -> str:
    """Check one dialogue's types, shapes and ranges; return where it is, for later messages."""
    if not isinstance(dialogue, Dialogue):
        raise UserError(f"{where}: the {split} split holds a {type(dialogue).__name__}, not a Dialogue.")
    if not isinstance(dialogue.id, str):
        raise UserError(f"{where}: a {split} dialogue has the id {preview(dialogue.id)} of type "
                        f"{type(dialogue.id).__name__}; dialogue ids are strings.")
    here = f"{where}: dialogue {preview(dialogue.id)} ({split} split)"
    count = _check_labels_and_speakers(dialogue, info, here)
    _check_features(dialogue.features, count, info, here)
    return here


def _check_labels_and_speakers(dialogue: Dialogue, info: DatasetInfo, here: str) -> int:
    """Integer 1-D labels and speakers of one length within the declared ranges; that length."""
    labels, speakers = dialogue.labels, dialogue.speakers
    for name, array in (("labels", labels), ("speakers", speakers)):
        if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype.kind not in "iu":
            raise UserError(f"{here}: {name} must be a 1-D array of integers, got "
                            f"{getattr(array, 'dtype', type(array).__name__)} of shape {getattr(array, 'shape', '?')}.")
    count = labels.shape[0]
    if count == 0:
        raise UserError(f"{here} has no utterances; remove it or give it at least one labelled utterance.")
    if speakers.shape[0] != count:
        raise UserError(f"{here} has {count} labels but {speakers.shape[0]} speakers; every utterance needs one of "
                        "each.")
    for name, array, bound, what in (("label", labels, info.num_classes, f"the {info.num_classes} classes"),
                                     ("speaker", speakers, info.num_speakers, f"{info.num_speakers} speaker slots")):
        bad = np.flatnonzero((array < 0) | (array >= bound))
        if bad.size:
            raise UserError(f"{here}, utterance {int(bad[0])}: {name} {int(array[bad[0]])} is outside 0..{bound - 1} "
                            f"({what}); {bad.size} {name}(s) of this dialogue are out of range.")
    return count


def _check_features(features: Any, count: int, info: DatasetInfo, here: str) -> None:
    """Exactly the declared modalities, each a real-valued (count, D_m) matrix."""
    if not isinstance(features, Mapping):
        raise UserError(f"{here}: features must map modality to array, got {type(features).__name__}.")
    missing = [m for m in info.feature_dims if m not in features]
    extra = [m for m in features if m not in info.feature_dims]
    if missing or extra:
        raise UserError(f"{here}: features hold {preview(sorted(map(str, features)))} but the dataset declares "
                        f"{', '.join(info.feature_dims)}; every dialogue needs exactly the declared modalities.")
    for modality, dim in info.feature_dims.items():
        matrix = features[modality]
        if not isinstance(matrix, np.ndarray) or matrix.dtype.kind not in "fiu" or matrix.dtype.itemsize > 8:
            kind = getattr(matrix, "dtype", type(matrix).__name__)
            raise UserError(f"{here}: {modality} features are {kind}; expected real numbers (float or integer), not "
                            "complex, boolean, text or objects.")
        if matrix.shape != (count, dim):
            raise UserError(f"{here}: {modality} features have shape {matrix.shape}; expected ({count}, {dim}) "
                            f"({count} utterances × the declared {modality} size {dim}).")


def _finite(matrix: np.ndarray) -> np.ndarray | None:
    """A mask of the entries that survive collate's float32 cast as finite numbers (None: all do)."""
    if matrix.dtype.kind != "f":
        return None
    # NaN compares False, so one comparison catches NaN, inf and finite values too large for float32.
    ok = np.isfinite(matrix) if matrix.dtype.itemsize <= 4 else np.abs(matrix) <= _FLOAT32_MAX
    return None if ok.all() else ok


def validate_corpus(corpus: Corpus, *, nonfinite: str = "refuse", source: str | None = None) -> Corpus:
    """Check ``corpus`` before anything trains on it; return it (or, under ``nonfinite="zero"``, a repaired copy).

    Refused, each with a one-paragraph :class:`~merc_bench.errors.UserError` naming the split,
    dialogue and utterance: an empty train, dev or test split; fewer than two classes; a zero-width
    or undeclared modality; a dialogue id that is not a string or that occurs twice (in one split or
    in two: a dialogue in train and test leaks the answer); labels, speakers and features of
    different lengths; labels or speaker indices outside the declared classes and speaker slots;
    non-integer labels or speakers; complex, boolean or non-numeric features; features whose width
    differs from ``info.feature_dims``; and NaN/inf features (or finite values that overflow
    float32) unless ``nonfinite="zero"``, which replaces them with 0 and records how many in the
    provenance (``non_finite_replaced``) and its warnings.
    """
    if not isinstance(corpus, Corpus):
        raise UserError(f"{source or 'the dataset'} returned a {type(corpus).__name__}, not a Corpus.")
    where = _where(corpus, source)
    if nonfinite not in NONFINITE_POLICIES:
        raise UserError(f"nonfinite policy {preview(nonfinite)} is not known; use refuse or zero.")
    _check_info(corpus.info, where)
    bad = _check_splits(corpus, where)
    if not bad:
        return corpus
    counts = {m: sum(entry[4] for entry in entries) for m, entries in bad.items()}
    summary = ", ".join(f"{m} {counts[m]} values in {len(entries)} dialogue(s)" for m, entries in bad.items())
    if nonfinite == "refuse":
        modality, entries = next(iter(bad.items()))
        split, dialogue_id, row, col, _ = entries[0]
        value = next(d for d in corpus.split(split) if d.id == dialogue_id).features[modality][row, col]
        raise UserError(f"{where}: dialogue {preview(dialogue_id)} ({split} split), utterance {row}: {modality} "
                        f"feature {col} is {float(value):g}, not a finite float32 number; in all, non-finite values: "
                        f"{summary}. Repair the features, or replace them with 0 and record the count with "
                        "`--set dataset.nonfinite=zero`.")
    return _zero_nonfinite(corpus, bad, counts, summary)


#: modality -> (split, dialogue id, first bad utterance, its first bad feature, how many bad values)
_NonFinite = dict[str, list[tuple[str, str, int, int, int]]]


def _check_splits(corpus: Corpus, where: str) -> _NonFinite:
    """Every split non-empty, every dialogue valid and its id unique across splits; the non-finite values."""
    owner: dict[str, str] = {}
    bad: _NonFinite = {}
    for split in ("train", "dev", "test"):
        dialogues = corpus.split(split)
        if not isinstance(dialogues, (list, tuple)) or not dialogues:
            raise UserError(f"{where}: the {split} split has no dialogues; train, dev and test each need at least one "
                            "(dev selects the epoch, test is reported), so there is nothing honest to train or report.")
        for dialogue in dialogues:
            here = _check_dialogue(dialogue, split, corpus.info, where)
            if dialogue.id in owner:
                place = "twice in the" if owner[dialogue.id] == split else f"in the {owner[dialogue.id]} and the"
                raise UserError(f"{here} occurs {place} {split} split; dialogue ids must be unique across splits "
                                "(the same dialogue in train and test would leak its labels).")
            owner[dialogue.id] = split
            for modality in corpus.info.feature_dims:
                ok = _finite(dialogue.features[modality])
                if ok is not None:
                    rows, cols = np.nonzero(~ok)
                    bad.setdefault(modality, []).append((split, dialogue.id, int(rows[0]), int(cols[0]), rows.size))
    return bad


def _zero_nonfinite(corpus: Corpus, bad: _NonFinite, counts: dict[str, int], summary: str) -> Corpus:
    """A copy of ``corpus`` with non-finite values replaced by 0, the count in its provenance."""
    touched = {(split, dialogue_id) for entries in bad.values() for split, dialogue_id, *_ in entries}

    def zeroed(matrix: np.ndarray) -> np.ndarray:
        ok = _finite(matrix)
        return matrix if ok is None else np.where(ok, matrix, 0).astype(matrix.dtype, copy=False)

    def repaired(split: str) -> list[Dialogue]:
        return [Dialogue(id=d.id, features={m: zeroed(x) for m, x in d.features.items()}, speakers=d.speakers,
                         labels=d.labels) if (split, d.id) in touched else d
                for d in corpus.split(split)]

    provenance = dict(corpus.provenance)
    replaced = dict(provenance.get("non_finite_replaced") or {})
    for modality, count in counts.items():
        replaced[modality] = int(replaced.get(modality, 0)) + count
    provenance["non_finite_replaced"] = replaced
    provenance["warnings"] = [*list(provenance.get("warnings") or []),
                              f"replaced non-finite feature values with 0 (dataset.nonfinite=zero): {summary}"]
    return Corpus(corpus.info, repaired("train"), repaired("dev"), repaired("test"), provenance)
