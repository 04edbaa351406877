"""The ``conversation-csv`` dataset: any conversational emotion corpus given as CSV files.

Most ERC corpora (MELD, EmoryNLP, DailyDialog, IEMOCAP transcripts, in-house call-centre data) can
be exported as one row per utterance with a dialogue id, an order within the dialogue, a speaker, an
emotion label and the text. This dataset reads such files with a configurable column mapping:

* **Splits**: one CSV per split (``train``, ``dev``, ``test``), or one CSV (``file``) with a split
  column (``split_column``) whose values are ``train``, ``dev``/``valid``/``validation``/``val``
  and ``test`` (case and surrounding spaces ignored). Relative paths given in a corpus config file
  (``--dataset-config corpus.toml``) are resolved against that file's folder (they are marked
  :data:`~merc_bench.data.PATH_OPTION`); others (``--set``) against ``--data-dir`` when given, else
  the working folder.
* **Dialogues and order**: rows are grouped by ``dialogue_column`` (rows of a dialogue need not be
  adjacent) and ordered by ``order_column`` (numeric; gaps allowed, repeats refused), or kept in
  file order when ``order_column`` is null. ``dialogue_column`` may be a list of columns that
  together identify a dialogue (Friends transcripts: ``["season", "episode", "scene"]``); the id is
  then their values (surrounding spaces ignored) joined with ``/`` — ``1/3/12`` — with a ``/`` or
  ``\\`` inside a value escaped by a ``\\``, so two different keys never give the same id. Dialogue
  ids are kept as written, unique within a split; when some id occurs in two splits (MELD's CSVs
  restart at 0 in each split) every id is prefixed with its split (``dev/0``), because merc-bench
  refuses one dialogue id in two splits. An empty key cell is an error naming file, line and column.
* **Speakers** are numbered by order of first appearance within each dialogue — the MELD
  convention (reference-models.md §1); ``num_speakers`` is the largest count over all dialogues.
  An utterance has one speaker index, so a cell that lists several speakers — one holding any of
  ``speaker_separators`` (default ``,`` ``;`` ``&``) — needs a decision, ``speaker_policy``:
  ``error`` (default) refuses the file, naming its first such lines and values; ``first`` keeps the
  first name (``"Ann, Bob"`` → ``Ann``); ``join`` keeps the whole cell as one speaker of that name
  (``"Ann, Bob"`` is a speaker of its own, as every cell was before these options). The count is
  recorded in the provenance. Real MELD has no cell holding ``,`` ``;`` or ``&``; its 14 cells
  such as ``"Joey and Chandler"`` load as one speaker each, unless ``" and "`` is added to
  ``speaker_separators`` (``"Phoebe/Waitress"``, one person in a role, is why ``/`` is not a
  default). Surrounding spaces are ignored; an empty speaker cell is an error.
* **Labels** are read from the data: the sorted distinct values of ``label_column`` over all
  splits, or the given ``classes`` list (which fixes the class order, e.g. MELD's
  ``neutral, surprise, fear, sadness, joy, disgust, anger``; a label outside it is an error naming
  file, line and value). The classes and the per-split class counts are recorded in the corpus'
  provenance.
* **Features**: ``features`` maps a modality (text, audio, visual) to one ``.npy`` file per split,
  float arrays (rows, D) aligned with that split's CSV rows *in file order* (with ``file``, use the
  key ``all`` for one array aligned with every row of the file, or per-split keys aligned with the
  rows of that split in file order). ``.npy`` files are read header first
  (:mod:`merc_bench.safe_arrays`): a 2-D array of real numbers with one row per CSV row and at least
  one column, its size checked against the memory left before it is allocated; pickled, object,
  complex and text arrays are refused. NaN/inf values are refused per dialogue and utterance unless
  ``--set dataset.nonfinite=zero`` (merc-bench's generic dataset option). When no
  ``text`` features are given and ``text_encoder`` is set (default ``minilm``), the text column is
  embedded with that registered text encoder; the vectors are cached under
  ``cache_dir`` (default ``embeddings/`` in ``$MERC_BENCH_CACHE``, else ``~/.cache/merc-bench``) keyed by
  the CSV's sha256, the text column and the encoder's name and version (see
  :mod:`merc_bench.prepare`).
* **Media**: ``media_column`` names each utterance's audio/video file (relative to ``media_root``,
  default the CSV's folder); audio and visual features then come from the clips through the
  registered ``audio_encoder`` / ``visual_encoder`` for each modality without ``.npy`` files. Path
  rules, bad files and ``media_policy``: :mod:`merc_bench_datasets.csv_media`.
* **Family** (``meld`` or ``iemocap``) selects a recipe's per-family defaults (learning rate,
  batch size, epochs, class weights, SDT's temperature and gates). ``meld`` is the default because
  its defaults assume nothing about the classes; ``iemocap``'s SDT defaults carry six class
  weights, so with another number of classes add ``--set training.class_weights=none``.

**Encoding and syntax.** Files are UTF-8 (a BOM is skipped); a file that is not valid UTF-8 is read
as cp1252, else Latin-1 (older exports; the encoding used is recorded in the provenance). A file
with NUL bytes (UTF-16/UTF-32 text, binary data) is refused. Quoting is parsed strictly: an
unclosed or stray quote is an error naming the line, as is a field longer than the ``csv``
module's limit (131,072 characters) — usually an unclosed quote swallowing the rest of the file.
A file too large to parse in the memory left is refused before it is read.

Every mistake — a missing column, an empty file, a label outside ``classes``, a feature file
whose row count differs from the CSV's — is a :class:`~merc_bench.errors.UserError` naming the
file, the column or dialogue and the value, and what was expected.

**Prepared once.** ``merc-bench data prepare csv --dataset-config corpus.toml --to DIR [--finetune]``
reads the corpus with the same options and this parser (:meth:`ConversationCSVDataset.text_dialogues`),
computes the text features once — frozen, or fine-tuned on train — and writes a feature-store folder
that ``--dataset prepared --data-dir DIR`` reads (:mod:`merc_bench_datasets.csv_prepare`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from merc_bench import component
from merc_bench.data import MODALITIES, PATH_OPTION, Corpus, DatasetInfo, Dialogue
from merc_bench.errors import UserError, preview
from merc_bench.safe_arrays import memory_budget, read_npy_file, read_npy_header
from merc_bench_datasets.meld_annotations import decode_csv_bytes

__all__ = ["ConversationCSVConfig", "ConversationCSVDataset", "DialogueTexts", "CorpusTexts"]

SPLITS = ("train", "dev", "test")
#: Parsed rows (a dict of strings per row) take about this many times the CSV's bytes.
_ROW_OVERHEAD = 16
_SPLIT_VALUES = {"train": "train", "training": "train", "dev": "dev", "valid": "dev", "validation": "dev",
                 "val": "dev", "test": "test", "testing": "test"}


#: A dialogue key of several columns: each value escaped (see _dialogue_id), then joined with this.
KEY_SEPARATOR = "/"
_Column = Annotated[str, Field(min_length=1, max_length=1000)]


class ConversationCSVConfig(BaseModel):
    """Where the CSV files are, which columns mean what, and where features come from."""

    model_config = ConfigDict(extra="forbid")

    train: Annotated[str | None, PATH_OPTION] = Field(None, description="CSV of the training split")
    dev: Annotated[str | None, PATH_OPTION] = Field(None, description="CSV of the validation split")
    test: Annotated[str | None, PATH_OPTION] = Field(None, description="CSV of the test split")
    file: Annotated[str | None, PATH_OPTION] = Field(
        None, description="one CSV holding every split, told apart by split_column")
    split_column: str = Field("split", description="with file: the column naming each row's split (train, "
                                                   "dev/valid/validation/val, test)")
    dialogue_column: _Column | Annotated[list[_Column], Field(min_length=1, max_length=16)] = Field(
        "dialogue_id", description="the column identifying a dialogue, or a list of columns forming its key "
        "(e.g. season, episode, scene): the id is their values joined with '/', a '/' or '\\' inside a value "
        "escaped with '\\'")
    order_column: str | None = Field("utterance_id", description="numeric order within a dialogue; null: file order")
    speaker_column: str = Field("speaker", description="the column naming each utterance's speaker")
    speaker_policy: Literal["error", "first", "join"] = Field(
        "error", description="a speaker cell listing several speakers (holding a speaker_separators string): error "
        "refuses it, first keeps its first name, join keeps the whole cell as one speaker's name")
    speaker_separators: list[Annotated[str, Field(min_length=1, max_length=20)]] = Field(
        default_factory=lambda: [",", ";", "&"], max_length=20,
        description="strings that separate names in a speaker cell ([]: a cell is always one name)")
    label_column: str = Field("label", description="the column holding each utterance's emotion label")
    text_column: str | None = Field("text", description="utterance text, embedded when no text features are given")
    classes: list[str] | None = Field(None, description="class names in index order; default: sorted labels found")
    features: Annotated[dict[str, dict[str, str]], PATH_OPTION] = Field(
        default_factory=dict, description="modality -> {split (or 'all' with file) -> .npy path}")
    text_encoder: str | None = Field("minilm", description="registered text encoder for the text column; null: none")
    family: Literal["meld", "iemocap"] = Field("meld", description="selects the recipes' per-family defaults")
    name: str = Field("conversation-csv", description="dataset name shown in outputs")
    delimiter: str = Field(",", min_length=1, max_length=1, description="the CSV's field delimiter")
    cache_dir: Annotated[str | None, PATH_OPTION] = Field(
        None, description="embedding cache folder (default embeddings/ in $MERC_BENCH_CACHE, else ~/.cache/merc-bench)")
    media_column: str | None = Field(None, description="column naming each utterance's audio/video file, relative "
                                                       "to media_root: audio and visual features from the clips")
    media_root: Annotated[str | None, PATH_OPTION] = Field(
        None, description="folder the media_column paths are relative to (default: each CSV's folder)")
    audio_encoder: str | None = Field("is10", description="with media_column: registered audio encoder; null: none")
    visual_encoder: str | None = Field("frame-stats", description="with media_column: registered visual encoder "
                                                                  "(frame-stats has no face information); null: none")
    media_policy: Literal["error", "skip"] = Field(
        "error", description="missing or undecodable media: error lists them all; skip gives those utterances zero "
        "features for that modality and lists them in the provenance")
    max_media_seconds: float = Field(600.0, ge=1.0, le=7200.0, description="longest clip decoded, in seconds; a "
                                                                         "longer one is a bad file")

    @field_validator("dialogue_column")
    @classmethod
    def _distinct_key_columns(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError("the key's columns must be distinct")
        return value


@dataclass
class _Table:
    """The rows of one CSV file (or of one split of it), as read."""

    path: Path
    sha256: str
    columns: list[str]
    rows: list[dict[str, str]]
    lines: list[int]  # the line each row ends on, for error messages
    positions: list[int]  # each row's index among the file's data rows (aligns .npy files)
    file_rows: int  # data rows in the whole file
    encoding: str = "utf-8"  # as decode_csv_bytes found it


@dataclass
class DialogueTexts:
    """One dialogue as ``data prepare csv`` reads it: the texts still to embed, in speaking order."""

    id: str
    texts: list[str]
    speaker_names: list[str]  # after speaker_policy: "speaker: utterance" inputs when fine-tuning
    speakers: np.ndarray  # (n,) int64
    labels: np.ndarray  # (n,) int64
    features: dict[str, np.ndarray]  # the .npy modalities (audio, visual), (n, D) float32

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class CorpusTexts:
    """What :meth:`ConversationCSVDataset.text_dialogues` read: the corpus before its text is embedded."""

    splits: dict[str, list[DialogueTexts]]
    classes: list[str]
    num_speakers: int
    feature_dims: dict[str, int]  # of the .npy modalities
    tables: dict[str, _Table]  # per split: the file read, its sha256 and encoding
    provenance: dict


@component("dataset", "conversation-csv", config=ConversationCSVConfig,
           description="any conversation corpus as CSV files (column mapping; features from .npy files or a text "
           "encoder)")
class ConversationCSVDataset:
    """Conversations from CSV files with a column mapping; features from .npy files or a text encoder."""

    def __init__(self, config: ConversationCSVConfig, *, data_dir: Path | None = None) -> None:
        self.paths = {"train": config.train, "dev": config.dev, "test": config.test}
        self.file = config.file
        self.split_column = config.split_column
        self.columns = {"dialogue_column": config.dialogue_column, "order_column": config.order_column,
                        "speaker_column": config.speaker_column, "label_column": config.label_column,
                        "text_column": config.text_column}
        self.speaker_policy = config.speaker_policy
        self.speaker_separators = list(config.speaker_separators)
        self.classes = list(config.classes) if config.classes is not None else None
        self.features = dict(config.features)
        self.text_encoder = config.text_encoder
        self.family = config.family
        self.name = config.name
        self.delimiter = config.delimiter
        self.cache_dir = config.cache_dir
        self.media = config.model_dump(include={"media_column", "media_root", "audio_encoder", "visual_encoder",
                                                "media_policy", "max_media_seconds"})
        self.data_dir = Path(data_dir) if data_dir is not None else None

    # -- reading -----------------------------------------------------------------------------
    def _resolve(self, value: str, what: str) -> Path:
        path = Path(value).expanduser()
        if not path.is_absolute() and self.data_dir is not None:
            path = self.data_dir / path
        if not path.is_file():
            raise UserError(f"conversation-csv: {what} {str(path)!r} does not exist or is not a file.")
        return path

    def _bytes(self, path: Path, where: str) -> bytes:
        """The file's bytes, refused before reading if parsing could not fit, or after if it is not text."""
        size = path.stat().st_size
        # Parsed rows take several times the file's bytes; refuse what cannot fit before reading it.
        limit = memory_budget() // _ROW_OVERHEAD
        if size > limit:
            raise UserError(f"{where} is {size:,} bytes; parsing it needs about {_ROW_OVERHEAD}× that in memory, more "
                            f"than is available (at most {limit:,} bytes here). Split it, or give fewer columns.")
        data = path.read_bytes()
        if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
            kind = "UTF-16 or UTF-32 text" if data.startswith((b"\xff\xfe", b"\xfe\xff")) or data.count(b"\x00") \
                > len(data) // 4 else "binary data"
            raise UserError(f"{where} holds NUL bytes: it looks like {kind}, not a CSV file. Save it as UTF-8 (with "
                            "or without a BOM); cp1252/Latin-1 files are also read.")
        return data

    def _header(self, reader: csv.DictReader, where: str) -> list[str]:
        """The header's column names (stripped), each needed column present exactly once."""
        columns = [column.strip() for column in (reader.fieldnames or [])]
        needed = self._needed_columns()
        if not columns:
            raise UserError(f"{where} is empty; expected a header row naming the columns "
                            f"{', '.join(c for c, _ in needed)} and one row per utterance.")
        reader.fieldnames = columns
        twice = [c for c, _ in needed if columns.count(c) > 1]
        if twice:
            raise UserError(f"{where} names the column {twice[0]!r} {columns.count(twice[0])} times; which one "
                            "holds the data is ambiguous. Rename or remove the copies.")
        missing = [(c, option) for c, option in needed if c not in columns]
        if missing:
            described = ", ".join(f"{c!r} (dataset.{option})" for c, option in missing)
            shown = ", ".join(preview(c, 40) for c in columns[:12]) + (", ..." if len(columns) > 12 else "")
            raise UserError(f"{where} has no column {described} in its header "
                            f"(line 1); its {len(columns)} columns are {shown}. Name the right column with --set "
                            f"dataset.<option>=<column> or in the corpus config file (delimiter {self.delimiter!r}).")
        return columns

    def _read(self, path: Path, what: str) -> _Table:
        where = f"conversation-csv: {what} {str(path)!r}"
        data = self._bytes(path, where)
        decoded = decode_csv_bytes(data)
        reader = csv.DictReader(io.StringIO(decoded.text, newline=""), delimiter=self.delimiter, strict=True)
        rows, lines = [], []
        try:
            columns = self._header(reader, where)
            for row in reader:
                if None in row or any(value is None for value in row.values()):
                    raise UserError(f"conversation-csv: {str(path)!r} line {reader.line_num}: the row does not have "
                                    f"the header's {len(columns)} fields; check its quoting and the delimiter "
                                    f"({self.delimiter!r}).")
                rows.append(row)
                lines.append(reader.line_num)
        except csv.Error as error:
            raise UserError(f"conversation-csv: {str(path)!r} near line {reader.line_num + 1}: not valid CSV "
                            f"({error}). An unclosed or stray quote makes the rest of the file one field: check the "
                            f"quoting near that line. Fields are limited to {csv.field_size_limit():,} characters.") \
                from None
        if not rows:
            raise UserError(f"{where} has a header but no rows.")
        # The digest of the bytes parsed above (keys the embedding cache and goes into the provenance).
        return _Table(path, hashlib.sha256(data).hexdigest(), columns, rows, lines, list(range(len(rows))), len(rows),
                      decoded.encoding)

    def _embeds_text(self) -> bool:
        return self.text_encoder is not None and self.columns["text_column"] is not None and "text" not in self.features

    def _needed_columns(self) -> list[tuple[str, str]]:
        """(column, the option naming it) for every column the files must have."""
        needed = []
        for option, value in self.columns.items():
            if value is None or (option == "text_column" and not self._embeds_text()):
                continue
            needed += [(column, option) for column in ([value] if isinstance(value, str) else value)]
        if self.media["media_column"] is not None and self._media_encoders():
            needed.append((self.media["media_column"], "media_column"))
        return needed + ([(self.split_column, "split_column")] if self.file is not None else [])

    def _media_encoders(self) -> dict[str, str]:
        """modality -> encoder name for the modalities the media column provides (those without .npy files)."""
        if self.media["media_column"] is None:
            return {}
        names = {"audio": self.media["audio_encoder"], "visual": self.media["visual_encoder"]}
        return {m: name for m, name in names.items() if name and m not in self.features}

    def _media_rows(self, tables: dict[str, _Table], structure: dict) -> tuple[dict, dict[str, int], dict | None]:
        """split -> modality -> rows from the media column's clips, each modality's size, the provenance entry."""
        encoders = self._media_encoders()
        if not encoders:
            return {split: {} for split in tables}, {}, None
        from merc_bench.prepare import default_cache_dir
        from merc_bench_datasets.csv_media import media_features

        root = self.media["media_root"]
        if root is not None:
            root_path = Path(root).expanduser()
            root_path = self.data_dir / root_path if not root_path.is_absolute() and self.data_dir else root_path
            if not root_path.is_dir():
                raise UserError(f"conversation-csv: dataset.media_root {str(root_path)!r} is not a folder.")
        cache = (Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()).parent
        return media_features(tables, structure, column=self.media["media_column"],
                              root=root_path if root is not None else None, encoder_names=encoders,
                              skip=self.media["media_policy"] == "skip", max_seconds=self.media["max_media_seconds"],
                              cache=cache)

    def _tables(self) -> dict[str, _Table]:
        if self.file is not None:
            if any(self.paths.values()):
                raise UserError("conversation-csv: give either dataset.file (one CSV with a split column) or "
                                "dataset.train/dev/test (one CSV per split), not both.")
            path = self._resolve(self.file, "file")
            table = self._read(path, "file")
            picked: dict[str, list[int]] = {split: [] for split in SPLITS}
            for index, row in enumerate(table.rows):
                value = row[self.split_column].strip().lower()
                if value not in _SPLIT_VALUES:
                    raise UserError(f"conversation-csv: {str(path)!r} line {table.lines[index]}: column "
                                    f"{self.split_column!r} holds {preview(row[self.split_column])}; expected "
                                    "train, dev "
                                    "(or valid/validation/val) or test.")
                picked[_SPLIT_VALUES[value]].append(index)
            tables = {}
            for split, indices in picked.items():
                if not indices:
                    raise UserError(f"conversation-csv: {str(path)!r} has no rows whose {self.split_column!r} is "
                                    f"{split}; every split needs at least one dialogue.")
                tables[split] = _Table(path, table.sha256, table.columns, [table.rows[i] for i in indices],
                                       [table.lines[i] for i in indices], indices, table.file_rows, table.encoding)
            return tables
        missing = [split for split in SPLITS if not self.paths[split]]
        if missing:
            raise UserError("conversation-csv needs a CSV per split: set " +
                            ", ".join(f"dataset.{split}" for split in missing) +
                            " (e.g. --set dataset.train=train.csv), or one CSV with a split column via dataset.file.")
        return {split: self._read(self._resolve(self.paths[split], f"{split} CSV"), f"{split} CSV")
                for split in SPLITS}

    # -- features ------------------------------------------------------------------------------
    def _feature_rows(self, modality: str, split: str, table: _Table) -> np.ndarray:
        """The .npy rows of ``modality`` for ``table``'s rows (in the table's row order)."""
        paths = self.features[modality]
        key = "all" if self.file is not None and "all" in paths else split
        if key not in paths:
            expected = "'all' or " + split if self.file is not None else split
            raise UserError(f"conversation-csv: features for {modality!r} name no file for {split}; set "
                            f"dataset.features.{modality}.{split}=<file.npy> (keys: {expected}).")
        path = self._resolve(paths[key], f"{modality} feature file")
        where = f"conversation-csv: {str(path)!r} ({modality}, {key})"
        rows_expected = table.file_rows if key == "all" else len(table.rows)
        # The header is checked before anything is allocated: a 2-D array of real numbers, one row per CSV row.
        shape = read_npy_header(path, source=where)[0]
        if len(shape) == 2 and shape[0] != rows_expected:
            scope = (f"{str(table.path)!r} has {rows_expected} rows" if key == "all" or self.file is None
                     else f"{str(table.path)!r} has {rows_expected} rows whose split is {split}")
            raise UserError(f"conversation-csv: {str(path)!r} ({modality}, {key}) has {shape[0]} rows but {scope}; "
                            "feature rows must align one-to-one with CSV rows in file order.")
        array = read_npy_file(path, spec=("fiu", None, (rows_expected, None)), source=where)
        if array.shape[1] == 0:
            raise UserError(f"{where} has 0 feature columns; a modality needs at least one feature.")
        # NaN/inf (and values beyond float32, which become inf here) are reported per dialogue and
        # utterance by merc_bench.data.validate_corpus, which also applies `dataset.nonfinite=zero`.
        with np.errstate(over="ignore"):
            array = array.astype(np.float32, copy=False)
        return array[table.positions] if key == "all" else array

    def _text_rows(self, split: str, table: _Table, encoder) -> tuple[np.ndarray, str]:
        from merc_bench.prepare import cache_file_name, cached_embeddings, default_cache_dir

        column = self.columns["text_column"]
        texts = [row[column] for row in table.rows]
        cache = Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()
        # The file's sha256 plus the split and column: one cache entry per embedded column of a file.
        tag = f"csv-{split}-{column}".replace("/", "_")
        name = cache_file_name(source_sha256=table.sha256, encoder=encoder, tag=tag)
        return cached_embeddings(encoder, texts, file_name=name, read_dirs=[cache], write_dir=cache,
                                 description=f"{encoder.name} {split} ({len(texts)} texts)")

    # -- the corpus ------------------------------------------------------------------------------
    def _check_feature_options(self) -> None:
        """Known modalities and split keys in dataset.features, and some source of features at all."""
        unknown = [m for m in self.features if m not in MODALITIES]
        if unknown:
            raise UserError(f"conversation-csv: features name the modality {unknown[0]!r}; modalities are "
                            f"{', '.join(MODALITIES)}.")
        allowed_keys = set(SPLITS) | ({"all"} if self.file is not None else set())
        for modality, paths in self.features.items():
            wrong = sorted(set(paths) - allowed_keys)
            if wrong:
                raise UserError(f"conversation-csv: dataset.features.{modality} has the key {wrong[0]!r}; keys are "
                                f"{', '.join(sorted(allowed_keys))}" + ("" if self.file is not None else
                                " ('all' only with dataset.file)") + ".")
        if not self.features and not self._embeds_text() and not self._media_encoders():
            raise UserError("conversation-csv has no features: give .npy files with dataset.features.<modality>.<split>"
                            ", a text column and a text encoder (dataset.text_column, dataset.text_encoder=minilm), "
                            "or a media column (dataset.media_column).")

    def _npy_features(self, tables: dict[str, _Table], modalities: list[str], encoder) -> tuple[dict, dict[str, int]]:
        """split -> modality -> rows from the .npy files (not the embedded text), and each modality's size."""
        features: dict[str, dict[str, np.ndarray]] = {split: {} for split in tables}
        dims: dict[str, int] = {}
        for modality in modalities:
            for split, table in tables.items():
                if modality == "text" and encoder is not None:
                    continue
                features[split][modality] = self._feature_rows(modality, split, table)
                width = features[split][modality].shape[1]
                if dims.setdefault(modality, width) != width:
                    raise UserError(f"conversation-csv: {modality} features have {width} columns for {split} but "
                                    f"{dims[modality]} for an earlier split; every split needs the same size.")
        return features, dims

    @staticmethod
    def _dialogues(tables: dict[str, _Table], structure: dict, features: dict) -> tuple[dict[str, list[Dialogue]], bool]:
        """The dialogues per split, and whether their ids had to be prefixed with the split."""
        # Ids that repeat across splits (MELD's CSVs restart at 0 in each) are told apart by their split;
        # merc_bench.data.validate_corpus refuses one id in two splits, which would otherwise mean a leak.
        keys = [key for split in tables for key, *_ in structure[split]]
        prefixed = len(set(keys)) != len(keys)
        splits: dict[str, list[Dialogue]] = {
            split: [Dialogue(id=f"{split}/{key}" if prefixed else key,
                             features={m: np.ascontiguousarray(x[members]) for m, x in features[split].items()},
                             speakers=speakers, labels=labels)
                    for key, members, speakers, labels in structure[split]]
            for split in tables
        }
        return splits, prefixed

    def _provenance(self, tables: dict[str, _Table], classes: list[str], counts: dict, max_speakers: int,
                    modalities: list[str], encoder, embedding_status: dict[str, str], prefixed: bool) -> dict:
        provenance = {
            "source": "conversation-csv",
            "files": {split: {"path": str(t.path.resolve()), "sha256": t.sha256, "rows": len(t.rows),
                              "encoding": t.encoding}
                      for split, t in tables.items()},
            "columns": {k: v for k, v in self.columns.items()},
            "classes": list(classes),
            "class_source": "dataset.classes" if self.classes is not None else "sorted distinct labels in the data",
            "class_counts": counts,
            "num_speakers": max_speakers,
            "features": {m: ("text encoder " + encoder.name if m == "text" and encoder is not None else "npy files")
                         for m in modalities},
        }
        key = self.columns["dialogue_column"]
        if not isinstance(key, str) and len(key) > 1:
            provenance["dialogue_key"] = (f"{', '.join(key)}: values joined with {KEY_SEPARATOR!r} (a "
                                          f"{KEY_SEPARATOR!r} or '\\' in a value escaped with '\\')")
        if prefixed:
            provenance["dialogue_ids"] = ("prefixed with their split (train/..., dev/..., test/...): ids repeat "
                                          "across splits")
        if encoder is not None:
            provenance["text_encoder"] = {"name": encoder.name, "version": str(encoder.version),
                                          "dimension": int(encoder.dimension)}
            provenance["embeddings"] = embedding_status
        return provenance

    def load(self) -> Corpus:
        self._check_feature_options()
        tables = self._tables()
        classes = self._classes(tables)
        index = {name: i for i, name in enumerate(classes)}

        encoder = None
        if self._embeds_text():
            from merc_bench.prepare import build_text_encoder

            encoder = build_text_encoder(self.text_encoder)
        media_modalities = self._media_encoders()
        modalities = [m for m in MODALITIES if m in self.features or (m == "text" and encoder is not None)
                      or m in media_modalities]
        # Everything that can be wrong with the files is checked before any text is embedded.
        structure, several = {}, {}
        for split, table in tables.items():
            structure[split], several[split] = self._structure(table, index)
        features, dims = self._npy_features(tables, [m for m in modalities if m not in media_modalities], encoder)
        media, media_dims, media_provenance = self._media_rows(tables, structure)
        for split in tables:
            features[split].update(media[split])
        dims.update(media_dims)
        embedding_status: dict[str, str] = {}
        if encoder is not None:
            for split, table in tables.items():
                features[split]["text"], embedding_status[split] = self._text_rows(split, table, encoder)
            dims["text"] = int(encoder.dimension)
        splits, prefixed = self._dialogues(tables, structure, features)
        max_speakers = max(int(d.speakers.max()) + 1 for dialogues in splits.values() for d in dialogues)
        counts = {split: np.bincount(np.concatenate([d.labels for d in dialogues]), minlength=len(classes)).tolist()
                  for split, dialogues in splits.items()}
        info = DatasetInfo(name=self.name, family=self.family, classes=tuple(classes),
                           feature_dims={m: dims[m] for m in modalities}, num_speakers=max_speakers,
                           description="conversations from CSV files (conversation-csv)")
        provenance = self._provenance(tables, classes, counts, max_speakers, modalities, encoder, embedding_status,
                                      prefixed)
        if media_provenance is not None:
            provenance["media"] = media_provenance
            provenance["features"].update({m: f"media column, {media_provenance[f'{m}_encoder']['name']}"
                                           for m in media_dims})
        if any(several.values()):  # how the policy read them, so a run's record says what a speaker was
            provenance["speaker_cells_listing_several"] = {
                "policy": self.speaker_policy, "separators": self.speaker_separators, "cells": several}
        return Corpus(info=info, train=splits["train"], dev=splits["dev"], test=splits["test"],
                      provenance=provenance)

    def text_dialogues(self) -> CorpusTexts:
        """The corpus for ``data prepare csv`` (:mod:`merc_bench_datasets.csv_prepare`): read and checked exactly as
        :meth:`load` reads it — the same files, columns, speaker policy, classes, dialogue keys and .npy
        features — but with each dialogue's texts instead of text features, which the prepare computes."""
        if not self._embeds_text():
            raise UserError("conversation-csv: `data prepare csv` embeds the text column, so it needs text_column set "
                            "and no .npy text features (dataset.features.text); the corpus config gives "
                            + ("text features as .npy files" if "text" in self.features else "no text column") + ".")
        self._check_feature_options()
        tables = self._tables()
        classes = self._classes(tables)
        index = {name: i for i, name in enumerate(classes)}
        structure, several = {}, {}
        for split, table in tables.items():
            structure[split], several[split] = self._structure(table, index)
        features, dims = self._npy_features(tables, [m for m in MODALITIES if m in self.features], None)
        media, media_dims, media_provenance = self._media_rows(tables, structure)  # the media column's clips
        for split in tables:
            features[split].update(media[split])
        dims = {m: {**dims, **media_dims}[m] for m in MODALITIES if m in dims or m in media_dims}
        modalities = list(dims)
        built, prefixed = self._dialogues(tables, structure, features)
        column, splits = self.columns["text_column"], {}
        for split, table in tables.items():
            names = self._speaker_names(table)[0]  # as _structure read them, the policy applied
            splits[split] = [DialogueTexts(id=d.id, texts=[table.rows[i][column] for i in members],
                                          speaker_names=[names[i] for i in members], speakers=d.speakers,
                                          labels=d.labels, features=d.features)
                             for d, (_, members, _, _) in zip(built[split], structure[split])]
        max_speakers = max(int(d.speakers.max()) + 1 for dialogues in built.values() for d in dialogues)
        counts = {split: np.bincount(np.concatenate([d.labels for d in dialogues]), minlength=len(classes)).tolist()
                  for split, dialogues in built.items()}
        provenance = self._provenance(tables, classes, counts, max_speakers, modalities, None, {}, prefixed)
        if media_provenance is not None:
            provenance["media"] = media_provenance
            provenance["features"].update({m: f"media column, {media_provenance[f'{m}_encoder']['name']}"
                                           for m in media_dims})
        if any(several.values()):
            provenance["speaker_cells_listing_several"] = {
                "policy": self.speaker_policy, "separators": self.speaker_separators, "cells": several}
        return CorpusTexts(splits=splits, classes=classes, num_speakers=max_speakers, feature_dims=dims,
                          tables=tables, provenance=provenance)

    def _classes(self, tables: dict[str, _Table]) -> list[str]:
        column = self.columns["label_column"]
        if self.classes is not None:
            if not self.classes or len(set(self.classes)) != len(self.classes):
                raise UserError(f"conversation-csv: dataset.classes {preview(self.classes)} must list distinct "
                                "class names.")
            allowed = set(self.classes)
            for table in tables.values():
                for row, line in zip(table.rows, table.lines):
                    if row[column].strip() not in allowed:
                        raise UserError(f"conversation-csv: {str(table.path)!r} line {line}: label "
                                        f"{preview(row[column])} in column {column!r} is not one of dataset.classes "
                                        f"({', '.join(self.classes)}).")
            return list(self.classes)
        found = sorted({row[column].strip() for table in tables.values() for row in table.rows})
        if "" in found:
            table, line = next((t, ln) for t in tables.values() for r, ln in zip(t.rows, t.lines)
                               if not r[column].strip())
            raise UserError(f"conversation-csv: {str(table.path)!r} line {line}: the label column {column!r} is empty; "
                            "every utterance needs a label.")
        if len(found) < 2:
            raise UserError(f"conversation-csv: column {column!r} holds only {preview(found)}; a classifier "
                            "needs at least two classes.")
        return found

    def _dialogue_keys(self, table: _Table) -> list[str]:
        """Each row's dialogue id: the dialogue column's value, or a key of several columns' values joined."""
        value = self.columns["dialogue_column"]
        columns = [value] if isinstance(value, str) else list(value)
        keys = []
        for row, line in zip(table.rows, table.lines):
            parts = [row[column].strip() for column in columns]
            if "" in parts:
                column = columns[parts.index("")]
                part_of = f" (part of the dialogue key {', '.join(columns)})" if len(columns) > 1 else ""
                raise UserError(f"conversation-csv: {str(table.path)!r} line {line}: the dialogue column {column!r}"
                                f"{part_of} is empty.")
            keys.append(parts[0] if len(parts) == 1 else _dialogue_id(parts))
        return keys

    def _speaker_names(self, table: _Table) -> tuple[list[str], int]:
        """Each row's speaker under ``speaker_policy``, and how many cells listed several speakers."""
        column = self.columns["speaker_column"]
        names = [row[column].strip() for row in table.rows]
        several = [i for i, name in enumerate(names) if any(sep in name for sep in self.speaker_separators)]
        if several and self.speaker_policy == "error":
            shown = "; ".join(f"line {table.lines[i]}: {preview(names[i], 40)}" for i in several[:3])
            more = f"; and {len(several) - 3} more" if len(several) > 3 else ""
            separators = " ".join(repr(sep) for sep in self.speaker_separators)
            cells = "1 speaker cell" if len(several) == 1 else f"{len(several)} speaker cells"
            raise UserError(f"conversation-csv: {str(table.path)!r}: {cells} in column {column!r} list"
                            f"{'s' if len(several) == 1 else ''} several speakers (separated by {separators}): "
                            f"{shown}{more}. An utterance has one speaker: set "
                            "dataset.speaker_policy=first to keep the first name, or join to keep the whole cell as "
                            "one speaker's name; dataset.speaker_separators chooses what separates names.")
        if several and self.speaker_policy == "first":
            # The longest separator first, so " and " is not cut at a shorter one inside it.
            pattern = re.compile("|".join(re.escape(sep) for sep in sorted(self.speaker_separators, key=len,
                                                                            reverse=True)))
            for i in several:  # "" when the cell holds only separators: refused as an empty speaker
                names[i] = next((part.strip() for part in pattern.split(names[i]) if part.strip()), "")
        return names, len(several)

    def _structure(self, table: _Table, index: dict[str, int]) -> tuple[list[tuple[str, list[int], np.ndarray,
                                                                              np.ndarray]], int]:
        """Per dialogue: (id, its rows in speaking order, speaker indices (n,), label ids (n,)); and the number
        of speaker cells that listed several speakers."""
        order_column = self.columns["order_column"]
        speaker_column, label_column = self.columns["speaker_column"], self.columns["label_column"]
        groups: dict[str, list[int]] = {}
        for i, key in enumerate(self._dialogue_keys(table)):
            groups.setdefault(key, []).append(i)
        speaker_names, several = self._speaker_names(table)
        dialogues = []
        for key, members in groups.items():
            if order_column is not None:
                members = self._ordered(table, key, members, order_column)
            names = [speaker_names[i] for i in members]
            if "" in names:
                line = table.lines[members[names.index("")]]
                raise UserError(f"conversation-csv: {str(table.path)!r} line {line}: the speaker column "
                                f"{speaker_column!r} is empty; every utterance needs a speaker.")
            seen: dict[str, int] = {}
            speakers = np.asarray([seen.setdefault(name, len(seen)) for name in names], dtype=np.int64)
            labels = np.asarray([index[table.rows[i][label_column].strip()] for i in members], dtype=np.int64)
            dialogues.append((key, members, speakers, labels))
        return dialogues, several

    @staticmethod
    def _ordered(table: _Table, key: str, members: list[int], order_column: str) -> list[int]:
        """One dialogue's rows sorted by their numeric order column; a non-number or a repeat is an error."""
        orders: dict[float, int] = {}
        for i in members:
            value = table.rows[i][order_column].strip()
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isnan(number):
                raise UserError(f"conversation-csv: {str(table.path)!r} line {table.lines[i]}: "
                                f"{order_column!r} holds {preview(value)}; expected a number giving the utterance's "
                                "position in its dialogue.")
            if number in orders:
                raise UserError(f"conversation-csv: {str(table.path)!r}: dialogue {preview(key)} has "
                                f"{order_column!r} = {value if len(value) <= 40 else value[:37] + '...'} "
                                f"twice (lines {table.lines[orders[number]]} and {table.lines[i]}).")
            orders[number] = i
        return [orders[number] for number in sorted(orders)]


def _dialogue_id(parts: list[str]) -> str:
    """A key of several columns as one id that no other key gives: each value's backslashes and
    separators escaped with a backslash, then the values joined with :data:`KEY_SEPARATOR`
    (``("S01/x", "2")`` → ``S01\\/x/2``, while ``("S01", "x/2")`` → ``S01/x\\/2``)."""
    return KEY_SEPARATOR.join(part.replace("\\", "\\\\").replace(KEY_SEPARATOR, "\\" + KEY_SEPARATOR)
                              for part in parts)
