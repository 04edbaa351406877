"""MELD's raw annotation CSVs (``train_sent_emo.csv``, ``dev_sent_emo.csv``, ``test_sent_emo.csv``).

Source: the declare-lab/MELD repository (Poria et al., "MELD: A Multimodal Multi-Party Dataset for
Emotion Recognition in Conversations", ACL 2019), folder ``data/MELD/``, commit
``2d2011b409d3ca2d7e94460cd007d434b1d0a102``. Columns: ``Sr No., Utterance, Speaker, Emotion,
Sentiment, Dialogue_ID, Utterance_ID, Season, Episode, StartTime, EndTime``; only the first seven
are read here.

How the known quirks of these files are handled (facts from shared/data/README.md and
reference-models.md §1):

* **Dialogue ids** restart at 0 in every split and train ``Dialogue_ID`` 60 does not exist, so
  train has 1,038 dialogues (the published "1,039" counts the id range). Dialogues get the ids the
  community's feature files use (SDT, MMGCN, DialogueRNN): train ``Dialogue_ID``, dev
  ``1039 + Dialogue_ID``, test ``1153 + Dialogue_ID`` — so a prepared corpus lines up with the
  pickles users already have. The gap at 60 is kept, never renumbered.
* **Utterance order**: rows are sorted by ``Utterance_ID`` within a dialogue. The ids have gaps
  (utterances without subtitle timing were dropped by the authors), so they are only an order,
  never an index; a repeated ``Utterance_ID`` within a dialogue is an error.
* **Encoding**: the files are UTF-8 with CRLF line endings (the ``csv`` module handles CRLF and
  quoted fields with embedded commas, quotes and newlines). A file that is not valid UTF-8 (older
  MELD copies were cp1252) is decoded as cp1252, and if even that fails as Latin-1, so any byte
  sequence loads. Older copies also carry *mojibake*: cp1252 punctuation stored as the C1 control
  characters U+0080–U+009F (``"\\x92"`` for ’). Those characters never occur in real text, so they
  are mapped back to the cp1252 character they stand for (``\\x92`` → ’, ``\\x85`` → …, ``\\x97``
  → —); the number of replacements is reported. Everything else is kept as written: typographic
  quotes, double spaces and accents stay, because the text encoder's tokenizer copes with them and
  the vectors then describe the utterance the annotators saw.
* **Speakers** are free-text names; each dialogue's speakers are numbered by order of first
  appearance (the 9-dimensional one-hot of the MELD feature files). More than
  :data:`MAX_SPEAKERS` in one dialogue is an error naming the dialogue.
* **Labels** use MELD's class order ``neutral, surprise, fear, sadness, joy, disgust, anger``
  (the MELD README, and every feature file); the comparison ignores case and surrounding spaces.

:func:`check_counts` compares a parse with the published sizes and class counts and returns one
warning per difference, so a modified or partial copy is noticed without refusing it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from merc_bench.errors import UserError
import contextlib

__all__ = [
    "MELD_CLASSES", "MELD_SENTIMENTS", "SPLIT_FILES", "ID_OFFSETS", "MAX_SPEAKERS", "REQUIRED_COLUMNS",
    "EXPECTED_DIALOGUES", "EXPECTED_UTTERANCES", "EXPECTED_CLASS_COUNTS", "DecodedText", "MeldDialogue",
    "decode_csv_bytes", "read_split", "check_counts",
]

MELD_CLASSES = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
MELD_SENTIMENTS = ("neutral", "positive", "negative")
SPLIT_FILES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
#: Dialogue-id offsets of the community feature files (SDT / MMGCN / DialogueRNN).
ID_OFFSETS = {"train": 0, "dev": 1039, "test": 1153}
MAX_SPEAKERS = 9
REQUIRED_COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")

# Published sizes (shared/data/README.md; reference-models.md §1). Class counts in MELD_CLASSES order.
EXPECTED_DIALOGUES = {"train": 1038, "dev": 114, "test": 280}
EXPECTED_UTTERANCES = {"train": 9989, "dev": 1109, "test": 2610}
EXPECTED_CLASS_COUNTS = {
    "train": (4710, 1205, 268, 683, 1743, 271, 1109),
    "dev": (470, 150, 40, 111, 163, 22, 153),
    "test": (1256, 281, 50, 208, 402, 68, 345),
}

# C1 control characters that are cp1252 bytes decoded as Latin-1 (0x81, 0x8D, 0x8F, 0x90 and 0x9D
# are undefined in cp1252 and stay as they are).
_C1_MOJIBAKE = {}
for _code in range(0x80, 0xA0):
    with contextlib.suppress(UnicodeDecodeError):
        _C1_MOJIBAKE[_code] = bytes([_code]).decode("cp1252")


@dataclass(frozen=True)
class DecodedText:
    """A CSV file's text and how it was decoded."""

    text: str
    encoding: str  # "utf-8", "cp1252" or "latin-1"
    mojibake_fixed: int  # C1 characters mapped back to their cp1252 punctuation


def decode_csv_bytes(data: bytes) -> DecodedText:
    """Decode a CSV file's bytes: UTF-8 (BOM allowed), else cp1252, else Latin-1; then undo C1 mojibake."""
    # The BOM goes first, so a file that starts with one but is not UTF-8 after it does not keep it as "ï»¿".
    data = data.removeprefix(b"\xef\xbb\xbf")
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    fixed = sum(text.count(chr(code)) for code in _C1_MOJIBAKE)
    if fixed:
        text = text.translate(_C1_MOJIBAKE)
    return DecodedText(text=text, encoding="utf-8" if encoding == "utf-8-sig" else encoding, mojibake_fixed=fixed)


@dataclass
class MeldDialogue:
    """One MELD dialogue, utterances in speaking order."""

    id: str  # community id: Dialogue_ID plus the split's offset
    split: str
    dialogue_id: int  # the CSV's Dialogue_ID
    utterance_ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    speaker_names: list[str] = field(default_factory=list)  # per utterance
    emotions: list[str] = field(default_factory=list)
    sentiments: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def speakers(self) -> np.ndarray:
        """Per-utterance speaker index by order of first appearance in the dialogue: (n,) int64."""
        order: dict[str, int] = {}
        return np.asarray([order.setdefault(name, len(order)) for name in self.speaker_names], dtype=np.int64)

    @property
    def labels(self) -> np.ndarray:
        """Per-utterance class id in :data:`MELD_CLASSES` order: (n,) int64."""
        return np.asarray([MELD_CLASSES.index(e) for e in self.emotions], dtype=np.int64)


def _integer(value: str, *, path: Path, line: int, column: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise UserError(
            f"{str(path)!r} line {line}: column {column!r} holds {value!r}, expected a whole number."
        ) from None


def _header(path: Path, decoded: DecodedText) -> csv.DictReader:
    """A reader over the decoded text whose header has every required column (names stripped)."""
    reader = csv.DictReader(io.StringIO(decoded.text, newline=""))
    columns = [name.strip() for name in (reader.fieldnames or [])]
    if not columns:
        raise UserError(f"{str(path)!r} is empty: expected a MELD CSV with the columns {', '.join(REQUIRED_COLUMNS)}.")
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise UserError(
            f"{str(path)!r} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}; "
            f"a MELD annotation CSV has {', '.join(REQUIRED_COLUMNS)} (found {', '.join(repr(c) for c in columns)})."
        )
    reader.fieldnames = columns  # header names without stray spaces
    return reader


def _rows_by_dialogue(reader: csv.DictReader, path: Path) -> dict[int, list[tuple[int, int, dict[str, str]]]]:
    """Dialogue_ID -> (Utterance_ID, line, row) of each row, emotions checked and lower-cased."""
    known = {name.lower(): name for name in MELD_CLASSES}
    rows: dict[int, list[tuple[int, int, dict[str, str]]]] = {}
    for row in reader:
        line = reader.line_num
        if None in row or any(row.get(name) is None for name in REQUIRED_COLUMNS):
            raise UserError(
                f"{str(path)!r} line {line}: the row does not have the header's {len(reader.fieldnames)} fields; "
                "check the quoting of the 'Utterance' field on that line."
            )
        dialogue_id = _integer(row["Dialogue_ID"], path=path, line=line, column="Dialogue_ID")
        utterance_id = _integer(row["Utterance_ID"], path=path, line=line, column="Utterance_ID")
        emotion = row["Emotion"].strip().lower()
        if emotion not in known:
            raise UserError(
                f"{str(path)!r} line {line} (dialogue {dialogue_id}, utterance {utterance_id}): emotion "
                f"{row['Emotion']!r} is not a MELD class; expected one of {', '.join(MELD_CLASSES)}."
            )
        row["Emotion"] = emotion
        rows.setdefault(dialogue_id, []).append((utterance_id, line, row))
    if not rows:
        raise UserError(f"{str(path)!r} has a header but no utterances.")
    return rows


def _dialogue(path: Path, split: str, dialogue_id: int, rows: list[tuple[int, int, dict[str, str]]]) -> MeldDialogue:
    """One dialogue's rows in ``Utterance_ID`` order; a repeated id or too many speakers is an error."""
    dialogue = MeldDialogue(id=str(ID_OFFSETS[split] + dialogue_id), split=split, dialogue_id=dialogue_id)
    seen: dict[int, int] = {}
    for utterance_id, line, row in sorted(rows, key=lambda item: item[0]):
        if utterance_id in seen:
            raise UserError(
                f"{str(path)!r}: dialogue {dialogue_id} has Utterance_ID {utterance_id} twice (lines "
                f"{seen[utterance_id]} and {line}); each utterance of a dialogue needs its own id."
            )
        seen[utterance_id] = line
        dialogue.utterance_ids.append(utterance_id)
        dialogue.texts.append(row["Utterance"])
        dialogue.speaker_names.append(row["Speaker"].strip())
        dialogue.emotions.append(row["Emotion"])
        dialogue.sentiments.append(row["Sentiment"].strip().lower())
    distinct = list(dict.fromkeys(dialogue.speaker_names))
    if len(distinct) > MAX_SPEAKERS:
        raise UserError(
            f"{str(path)!r}: dialogue {dialogue_id} has {len(distinct)} distinct speakers "
            f"({', '.join(distinct)}); MELD's speaker encoding allows at most {MAX_SPEAKERS} per dialogue."
        )
    return dialogue


def read_split(path: Path, split: str, *, data: bytes | None = None) -> tuple[list[MeldDialogue], DecodedText]:
    """Parse one MELD CSV into dialogues ordered by ``Dialogue_ID``; raise :class:`UserError` on bad input.

    ``data`` may hold the file's bytes already read (to parse exactly what was checksummed).
    """
    path = Path(path)
    if split not in ID_OFFSETS:
        raise ValueError(f"unknown MELD split {split!r}")
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise UserError(f"cannot read {str(path)!r}: {error.strerror or error}.") from None
    decoded = decode_csv_bytes(data)
    rows = _rows_by_dialogue(_header(path, decoded), path)
    return [_dialogue(path, split, dialogue_id, rows[dialogue_id]) for dialogue_id in sorted(rows)], decoded


def check_counts(splits: dict[str, Iterable[MeldDialogue]]) -> list[str]:
    """One warning per split whose dialogue, utterance or class counts differ from the published ones."""
    warnings = []
    for split, dialogues in splits.items():
        dialogues = list(dialogues)
        found_dialogues = len(dialogues)
        found_utterances = sum(len(d) for d in dialogues)
        counts = np.zeros(len(MELD_CLASSES), dtype=np.int64)
        for dialogue in dialogues:
            counts += np.bincount(dialogue.labels, minlength=len(MELD_CLASSES))
        problems = []
        if found_dialogues != EXPECTED_DIALOGUES[split]:
            problems.append(f"{found_dialogues} dialogues (published {EXPECTED_DIALOGUES[split]})")
        if found_utterances != EXPECTED_UTTERANCES[split]:
            problems.append(f"{found_utterances} utterances (published {EXPECTED_UTTERANCES[split]})")
        if tuple(int(c) for c in counts) != EXPECTED_CLASS_COUNTS[split]:
            differing = [
                f"{name} {int(found)} vs {expected}"
                for name, found, expected in zip(MELD_CLASSES, counts, EXPECTED_CLASS_COUNTS[split])
                if int(found) != expected
            ]
            problems.append("class counts differ: " + ", ".join(differing))
        if problems:
            warnings.append(f"MELD {split} ({SPLIT_FILES[split]}) has " + "; ".join(problems) + ".")
    return warnings
