"""Documented facts about IEMOCAP and MELD, and the per-field checks every feature file passes.

Facts (``shared/docs/reference-models.md`` §1, from the reference loaders of SDT, DialogueRNN,
MMGCN and COSMIC): class orders, speaker conventions, split sizes, class counts and the clean
validation splits — COSMIC's 12 IEMOCAP validation dialogues, MELD's official dev set, which the
SDT/MMGCN/DialogueRNN files number ``1039 + dev Dialogue_ID`` inside their training list.

The converters below turn one dialogue's field (a list of per-utterance values, as the pickles store
them) into a typed array, or raise a :class:`~merc_bench.errors.UserError` naming the file, the
dialogue, the field and the value. Differences from the documented sizes and class counts are
*warnings* (a re-extracted or filtered file is still usable), collected as text for the corpus'
provenance and emitted as :class:`DatasetWarning`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from merc_bench.errors import UserError, preview

__all__ = [
    "DatasetWarning", "Family", "FAMILIES", "IEMOCAP_VALIDATION_IDS", "MELD_DEV_IDS",
    "feature_matrix", "label_array", "speaker_indices", "documented_differences",
]


class DatasetWarning(UserWarning):
    """A loaded dataset differs from its documented sizes or needed repairs; it still loads."""


#: COSMIC's IEMOCAP validation split: 12 of the 120 training dialogues (reference-models.md §1).
IEMOCAP_VALIDATION_IDS = (
    "Ses01M_impro01", "Ses01M_script03_1", "Ses02F_impro02", "Ses02F_impro07", "Ses02M_script01_2",
    "Ses03F_impro01", "Ses03M_impro02", "Ses03M_impro08a", "Ses03M_script02_2", "Ses03M_script03_2",
    "Ses04F_impro07", "Ses04F_script02_1",
)
#: MELD's official dev dialogues as the SDT/MMGCN/DialogueRNN files number them: 1039 + Dialogue_ID.
MELD_DEV_IDS = range(1039, 1039 + 114)


@dataclass(frozen=True)
class Family:
    """What is documented about one benchmark."""

    name: str
    classes: tuple[str, ...]
    num_speakers: int
    # split name ("train+dev" when only the union is documented) -> (dialogues, utterances)
    sizes: dict[str, tuple[int, int]]
    # split name ("all" when only the total is documented) -> per-class utterance counts
    class_counts: dict[str, tuple[int, ...]]


FAMILIES = {
    "iemocap": Family(
        name="iemocap",
        classes=("hap", "sad", "neu", "ang", "exc", "fru"),
        num_speakers=2,  # 'M' -> 0, 'F' -> 1, as SDT's loader one-hot encodes them
        sizes={"train+dev": (120, 5810), "test": (31, 1623)},
        class_counts={"all": (648, 1084, 1708, 1103, 1041, 1849)},
    ),
    "meld": Family(
        name="meld",
        classes=("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"),
        num_speakers=9,  # 9-dim one-hot, index = order of first appearance within the dialogue
        sizes={"train": (1038, 9989), "dev": (114, 1109), "test": (280, 2610)},
        class_counts={
            "train": (4710, 1205, 268, 683, 1743, 271, 1109),
            "dev": (470, 150, 40, 111, 163, 22, 153),
            "test": (1256, 281, 50, 208, 402, 68, 345),
        },
    ),
}

# SDT's speaker convention for IEMOCAP (reference-models.md §1): one-hot [1,0] for M, [0,1] for F.
_IEMOCAP_SPEAKERS = {"M": 0, "F": 1}


def _where(source: str, dialogue: Any, field: str) -> str:
    return f"{source}: dialogue {dialogue!r}, field {field}"


def feature_matrix(value: Any, *, source: str, dialogue: Any, field: str) -> np.ndarray:
    """One dialogue's features (a list of per-utterance vectors or a 2-D array) as float32 (n, D)."""
    if isinstance(value, np.ndarray) and value.ndim == 2 and value.dtype == np.float32:
        matrix = value
    else:
        try:
            matrix = np.asarray(value, dtype=np.float32)
        except (ValueError, TypeError) as error:
            raise UserError(
                f"{_where(source, dialogue, field)}: the per-utterance feature vectors cannot be stacked into one "
                f"matrix ({error}); every utterance needs a vector of numbers of the same length."
            ) from None
    if matrix.ndim != 2:
        raise UserError(
            f"{_where(source, dialogue, field)}: expected one feature vector per utterance (a 2-D array), "
            f"got an array of shape {matrix.shape}."
        )
    return np.ascontiguousarray(matrix)


def label_array(value: Any, *, source: str, dialogue: Any, field: str, classes: Sequence[str]) -> np.ndarray:
    """One dialogue's labels as int64 class ids in ``[0, len(classes))``."""
    try:
        raw = np.asarray(value)
    except (ValueError, TypeError):
        raw = np.asarray([], dtype=object)
    if raw.ndim != 1 or raw.dtype.kind not in "iubf":
        raise UserError(
            f"{_where(source, dialogue, field)}: expected one integer class id per utterance, got "
            f"{preview(value)}."
        )
    labels = raw.astype(np.int64)
    if raw.dtype.kind == "f" and not np.array_equal(labels, raw):
        position = int(np.flatnonzero(labels != raw)[0])
        raise UserError(f"{_where(source, dialogue, field)}: label {float(raw[position]):g} at utterance {position} "
                        "is not a whole number.")
    bad = np.flatnonzero((labels < 0) | (labels >= len(classes)))
    if bad.size:
        position = int(bad[0])
        raise UserError(
            f"{_where(source, dialogue, field)}: label {int(labels[position])} at utterance {position} is outside "
            f"0..{len(classes) - 1} ({', '.join(f'{i} {c}' for i, c in enumerate(classes))}); "
            f"{bad.size} label(s) of this dialogue are out of range."
        )
    return labels


def speaker_indices(value: Any, *, source: str, dialogue: Any, field: str, num_speakers: int,
                    letters: bool) -> tuple[np.ndarray, int]:
    """One dialogue's speakers as int64 indices; also the number of rows that were not exactly one-hot.

    Accepts one-hot vectors (MELD's 9-dim ones, index = argmax), integer indices and, where
    ``letters`` (IEMOCAP), ``'M'``/``'F'`` strings (M → 0, F → 1).
    """
    items = list(value) if not isinstance(value, np.ndarray) else value
    if len(items) and all(isinstance(item, (str, bytes)) for item in items):
        texts = [item.decode("latin1") if isinstance(item, bytes) else item for item in items]
        if not letters:
            raise UserError(
                f"{_where(source, dialogue, field)}: speakers are given as letters ({texts[0]!r}), IEMOCAP's "
                "convention, but this layout is a MELD one, whose speakers are one-hot vectors. Is it an IEMOCAP "
                "file with an extra field?"
            )
        unknown = sorted({t for t in texts if t not in _IEMOCAP_SPEAKERS})
        if unknown:
            raise UserError(
                f"{_where(source, dialogue, field)}: speaker {unknown[0]!r} is not 'M' or 'F' (the IEMOCAP "
                "convention the feature files use)."
            )
        speakers = np.asarray([_IEMOCAP_SPEAKERS[t] for t in texts], dtype=np.int64)
        not_one_hot = 0
    else:
        try:
            raw = np.asarray(items, dtype=np.float64)
        except (ValueError, TypeError):
            raise UserError(
                f"{_where(source, dialogue, field)}: expected 'M'/'F' strings, one-hot vectors or integer indices, "
                f"got {preview(value)}."
            ) from None
        if raw.ndim == 2:
            speakers = raw.argmax(axis=1).astype(np.int64) if raw.shape[1] else np.zeros(len(raw), np.int64)
            not_one_hot = int(np.count_nonzero(((raw != 0).sum(axis=1) != 1) | (raw.max(axis=1) != 1))) \
                if raw.size else len(raw)
        elif raw.ndim == 1 and np.array_equal(raw, np.round(raw)):
            speakers, not_one_hot = raw.astype(np.int64), 0
        else:
            raise UserError(
                f"{_where(source, dialogue, field)}: expected one speaker per utterance ('M'/'F', a one-hot vector "
                f"or an index), got an array of shape {raw.shape}."
            )
    bad = np.flatnonzero((speakers < 0) | (speakers >= num_speakers))
    if bad.size:
        position = int(bad[0])
        raise UserError(
            f"{_where(source, dialogue, field)}: speaker index {int(speakers[position])} at utterance {position} is "
            f"outside 0..{num_speakers - 1} (this dataset has {num_speakers} speaker slots)."
        )
    return speakers, not_one_hot


def documented_differences(family: Family, labels: dict[str, list[np.ndarray]]) -> list[str]:
    """Each way the splits' sizes and class counts differ from the documented ones, as a sentence.

    ``labels`` maps ``train``/``dev``/``test`` to the per-dialogue label arrays.
    """
    groups = {
        "train": ["train"], "dev": ["dev"], "test": ["test"], "train+dev": ["train", "dev"],
        "all": ["train", "dev", "test"],
    }

    def gather(name: str) -> list[np.ndarray]:
        return [array for split in groups[name] for array in labels.get(split, [])]

    differences = []
    for name, (dialogues, utterances) in family.sizes.items():
        arrays = gather(name)
        found = (len(arrays), int(sum(len(a) for a in arrays)))
        if found != (dialogues, utterances):
            differences.append(
                f"{name} has {found[0]} dialogues / {found[1]} utterances; documented {dialogues} / {utterances}"
            )
    for name, expected in family.class_counts.items():
        arrays = gather(name)
        counts = np.bincount(np.concatenate(arrays), minlength=len(family.classes)) if arrays \
            else np.zeros(len(family.classes), np.int64)
        if tuple(int(c) for c in counts) != tuple(expected):
            differences.append(f"{name} class counts {counts.tolist()} differ from the documented {list(expected)} "
                               f"({', '.join(family.classes)})")
    return differences
