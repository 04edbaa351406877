"""``merc-bench predict``: a trained model's emotions for dialogues it has not seen.

The model comes from a self-describing checkpoint (:mod:`merc_bench.checkpoint`): a run folder
(its first seed with a checkpoint, or ``seed``) or the file itself. The dialogues come as

* a **feature folder** (``manifest.json`` + ``train/dev/test.npz``, as ``data prepare`` and
  ``data convert`` write): every utterance of the chosen splits (default: all non-empty ones);
* a **CSV of dialogues**, for a model that reads text only: one row per utterance, with columns
  ``dialogue``, ``speaker``, ``text`` and optionally ``order`` (numeric order within the dialogue;
  default: file order) and ``label`` (a class name, for comparing; empty: unknown). ``columns``
  maps these roles to other column names. A CSV without those columns, when no mapping is given
  and the training features were prepared by a data source that reads files of its own layout
  (``data prepare meld`` declares ``read_file``: MELD's annotation CSVs), is read by that source,
  so its text is decoded exactly as the training text was. The texts are embedded by the text
  encoder the training features name in their provenance (same name and version, else refused);
  features fine-tuned by ``data prepare --finetune`` by the fine-tuned weights that folder keeps
  (``encoder/finetuned.pt``, checked against its sha256), with the same context turns.

Speakers become per-dialogue slots by order of first appearance (the rule of ``data prepare``);
the features are standardised with the training statistics the checkpoint holds. The result is
one row per utterance: ``split``, ``dialogue``, ``utterance`` (0-based position), ``speaker``,
``label`` (when known), ``prediction``, one ``p_<class>`` column per class, and with ``hidden``
the fused representation ``h_0 … h_{H-1}``. Anything that does not fit the checkpoint — other
classes, modalities or feature sizes, more speakers than it has slots, another text encoder —
is refused with one paragraph naming the input and what was expected.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from merc_bench.checkpoint import Checkpoint, find_checkpoint, load_checkpoint
from merc_bench.data import Dialogue, batches, standardize
from merc_bench.errors import UserError, preview
from merc_bench.registry import Registry

__all__ = ["predict", "ROLES"]

#: The columns of a CSV of dialogues, by role; ``order`` and ``label`` are optional.
ROLES = ("dialogue", "order", "speaker", "text", "label")
_REQUIRED = ("dialogue", "speaker", "text")
_MAX_CSV_BYTES = 512 << 20
_BATCH = 16


@dataclass
class _Input:
    """Dialogues ready for the model, with what the output rows show about them."""

    splits: dict[str, list[Dialogue]]
    known: dict[str, list[np.ndarray]]  # per split, per dialogue: which labels are known
    texts: dict[str, list[Sequence[str]]] = field(default_factory=dict)


def predict(source: Path | str, input: Path | str, *, split: str | None = None, seed: int | None = None,
            columns: dict[str, str] | None = None, hidden: bool = False, device: str = "cpu",
            registry: Registry | None = None) -> Any:
    """Predict every utterance of ``input`` with the checkpoint ``source`` names: a pandas DataFrame.

    ``source``: a run folder or a checkpoint file; ``input``: a feature folder or a CSV of dialogues
    (module docstring); ``split``: one split of a feature folder; ``columns``: role -> column name
    for a CSV; ``hidden``: add the fused representation.
    """
    if registry is None:
        from merc_bench.plugins import get_registry

        registry = get_registry()
    checkpoint = load_checkpoint(find_checkpoint(Path(source), seed), registry)
    path = Path(input)
    if path.is_dir():
        data = _feature_folder(path, checkpoint, split)
    elif path.is_file():
        if split is not None:
            raise UserError("--split chooses a split of a feature folder; a CSV of dialogues is predicted whole.")
        data = _csv_dialogues(path, checkpoint, columns or {}, registry)
    else:
        raise UserError(f"--input {str(path)!r} does not exist; give a feature folder or a CSV of dialogues.")
    return _rows(checkpoint, data, hidden=hidden, device=torch.device(device))


# -- a feature folder ------------------------------------------------------------------------------
def _feature_folder(folder: Path, checkpoint: Checkpoint, split: str | None) -> _Input:
    from merc_bench.feature_store import read_corpus

    corpus = read_corpus(folder)
    where = f"feature folder {str(folder)!r}"
    if tuple(corpus.info.classes) != checkpoint.info.classes:
        raise UserError(f"{where} has the classes {', '.join(corpus.info.classes)}; the model predicts "
                        f"{', '.join(checkpoint.info.classes)} (in this order). Use a model trained on these classes.")
    for modality in checkpoint.modalities:
        have, want = corpus.info.feature_dims.get(modality), checkpoint.info.feature_dims[modality]
        if have != want:
            raise UserError(f"{where}: the model reads {modality} features of size {want}; the folder has "
                            + (f"size {have}." if have else "none.") + " Prepare the features as the training data was.")
    names = ("train", "dev", "test") if split is None else (split,)
    if split is not None and split not in ("train", "dev", "test"):
        raise UserError(f"--split {preview(split)} is not a split; use train, dev or test.")
    splits = {name: corpus.split(name) for name in names if corpus.split(name)}
    if not splits:
        raise UserError(f"{where} has no dialogues in {'split ' + split if split else 'any split'}.")
    for name, dialogues in splits.items():
        _check_speakers(dialogues, checkpoint, f"{where}, split {name}")
    return _Input(splits=splits, known={name: [np.ones(len(d), bool) for d in ds] for name, ds in splits.items()})


def _check_speakers(dialogues: list[Dialogue], checkpoint: Checkpoint, where: str) -> None:
    slots = checkpoint.info.num_speakers
    for dialogue in dialogues:
        if len(dialogue) and int(dialogue.speakers.max()) >= slots:
            raise UserError(f"{where}: dialogue {dialogue.id!r} has {int(dialogue.speakers.max()) + 1} speakers; the "
                            f"model has {slots} speaker slots.")


# -- a CSV of dialogues ----------------------------------------------------------------------------
def _csv_dialogues(path: Path, checkpoint: Checkpoint, columns: dict[str, str], registry: Registry) -> _Input:
    where = f"CSV of dialogues {str(path)!r}"
    if checkpoint.modalities != ("text",):
        raise UserError(f"{where}: the model reads {', '.join(checkpoint.modalities)}; from a CSV only text can be "
                        "embedded. Give a feature folder with every modality instead.")
    embed = _text_embedder(checkpoint, where)
    raw = _read_csv(path, columns, checkpoint, where)
    vectors = embed(raw)
    dialogues, known, offset = [], [], 0
    for item in raw:
        n = len(item.texts)
        labels = np.asarray(item.labels, dtype=np.int64)
        dialogues.append(Dialogue(id=str(item.id), features={"text": vectors[offset : offset + n]},
                                  speakers=np.asarray(item.speakers, dtype=np.int64), labels=np.maximum(labels, 0)))
        known.append(labels >= 0)
        offset += n
    _check_speakers(dialogues, checkpoint, where)
    return _Input(splits={"input": dialogues}, known={"input": known},
                  texts={"input": [item.texts for item in raw]})


def _text_embedder(checkpoint: Checkpoint, where: str) -> Any:
    """dialogues -> (N, D) text features, made as the training features were (frozen or fine-tuned encoder)."""
    from merc_bench.prepare import build_text_encoder, encode_texts

    described = checkpoint.features.get("text_encoder")
    if not isinstance(described, dict) or not isinstance(described.get("name"), str):
        raise UserError(f"{where}: the model's text features do not name the text encoder that made them (they "
                        "were not prepared by `merc-bench data prepare`), so new text cannot be embedded the same "
                        "way. Give a feature folder made like the training features instead.")
    encoder = build_text_encoder(described["name"])
    if str(encoder.version) != str(described.get("version")) or encoder.dimension != checkpoint.info.feature_dims["text"]:
        raise UserError(f"{where}: the model's text features come from {described['name']!r} version "
                        f"{described.get('version')!r}; the installed one is version {encoder.version!r} "
                        f"({encoder.dimension}-d). Install the version that made the training features.")
    report = checkpoint.features.get("finetune")
    if not report:
        return lambda dialogues: encode_texts(encoder, [t for d in dialogues for t in d.texts],
                                              description="embedding the utterances")
    from merc_bench.text_finetune import finetuned_text_features

    weights = _finetuned_weights(checkpoint, report, where)
    return lambda dialogues: finetuned_text_features(encoder, dialogues, report=report, weights=weights,
                                                     num_classes=checkpoint.info.num_classes)


def _finetuned_weights(checkpoint: Checkpoint, report: Any, where: str) -> Path:
    """The fine-tuned encoder's weights in the training feature folder, checked against their sha256."""
    from merc_bench.feature_store import sha256_file

    kept = report.get("weights") if isinstance(report, dict) else None
    folder = checkpoint.features.get("feature_store")
    if not isinstance(kept, dict) or not isinstance(folder, str):
        raise UserError(f"{where}: the model's text features were fine-tuned by a `data prepare --finetune` that did "
                        "not keep the fine-tuned weights (merc-bench < 0.2); prepare the corpus again to predict "
                        "from text, or give a feature folder.")
    path = Path(folder) / str(kept.get("file", ""))
    if not path.resolve().is_relative_to(Path(folder).resolve()) or not path.is_file():
        raise UserError(f"{where}: the fine-tuned text encoder is read from the training feature folder, but "
                        f"{str(path)!r} is missing (folder moved or deleted?); predict where that folder is.")
    if sha256_file(path) != kept.get("sha256"):
        raise UserError(f"{where}: {str(path)!r} does not match the sha256 the features were made with; prepare "
                        "the corpus again.")
    return path


def _source_reader(checkpoint: Checkpoint) -> Any:
    """The ``read_file`` of the data source that prepared the training features, if it declares one."""
    from merc_bench.data_sources import data_sources

    prepared_by = str(checkpoint.features.get("prepared_by", ""))
    for name, preparable in data_sources().preparable.items():
        if prepared_by.endswith(f" {name}") and preparable.read_file is not None:
            return preparable.read_file
    return None


@dataclass
class _CSVDialogue:
    id: str
    texts: list[str]
    speakers: np.ndarray
    labels: np.ndarray
    speaker_names: list[str]  # for a fine-tuned encoder's "speaker: utterance" inputs


def _read_csv(path: Path, columns: dict[str, str], checkpoint: Checkpoint, where: str) -> list[Any]:
    unknown = sorted(set(columns) - set(ROLES))
    if unknown:
        raise UserError(f"--column {unknown[0]}=…: {unknown[0]!r} is not a role; the roles are {', '.join(ROLES)}.")
    names = {role: columns.get(role, role) for role in ROLES}
    reader = _csv_reader(path, where)
    header = reader.fieldnames or []
    missing = [f"{names[role]} ({role})" for role in _REQUIRED if names[role] not in header]
    source_reader = _source_reader(checkpoint)
    if missing and not columns and source_reader is not None:
        # Not the generic layout: the layout of the source that prepared the training text, read as it was.
        return list(source_reader(path))
    if missing:
        also = (f", or a CSV in the layout of {checkpoint.features.get('prepared_by')}" if source_reader else "")
        raise UserError(f"{where} lacks the column(s) {', '.join(missing)}; its columns are "
                        f"{preview(header, 200)}. Map the roles with --column ROLE=NAME{also}.")
    classes = {name.lower(): index for index, name in enumerate(checkpoint.info.classes)}
    groups: dict[str, list[tuple[float, int, str, str, int]]] = {}
    for line, row in enumerate(reader, start=2):
        key = (row.get(names["dialogue"]) or "").strip()
        if not key:
            raise UserError(f"{where}, line {line}: the {names['dialogue']} cell is empty; every row needs a dialogue.")
        groups.setdefault(key, []).append((_order(row, names["order"], header, line, where), line,
                                           (row.get(names["speaker"]) or "").strip(), row.get(names["text"]) or "",
                                           _label(row, names["label"], classes, line, where, checkpoint)))
    if not groups:
        raise UserError(f"{where} has no rows.")
    return [_dialogue(key, rows) for key, rows in groups.items()]


def _csv_reader(path: Path, where: str) -> csv.DictReader:
    if path.stat().st_size > _MAX_CSV_BYTES:
        raise UserError(f"{where} is larger than {_MAX_CSV_BYTES >> 20} MiB; split it into several files.")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(f"{where} is not UTF-8 text (byte {error.start}); save it as UTF-8.") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
    return reader


def _label(row: dict[str, str], column: str, classes: dict[str, int], line: int, where: str,
           checkpoint: Checkpoint) -> int:
    """The class id of the row's label (case-insensitive), -1 when the column is absent or the cell empty."""
    text = (row.get(column) or "").strip()
    if not text:
        return -1
    if text.lower() not in classes:
        raise UserError(f"{where}, line {line}: label {preview(text)} is not one of the model's classes "
                        f"({', '.join(checkpoint.info.classes)}); leave the cell empty when unknown.")
    return classes[text.lower()]


def _order(row: dict[str, str], column: str, header: list[str], line: int, where: str) -> float:
    if column not in header:
        return float(line)
    value = (row.get(column) or "").strip()
    try:
        return float(value)
    except ValueError:
        raise UserError(f"{where}, line {line}: {column} {preview(value)} is not a number.") from None


def _dialogue(key: str, rows: list[tuple[float, int, str, str, int]]) -> _CSVDialogue:
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    slots: dict[str, int] = {}
    speakers = [slots.setdefault(speaker, len(slots)) for _, _, speaker, _, _ in rows]
    return _CSVDialogue(id=key, texts=[r[3] for r in rows], speakers=np.asarray(speakers, dtype=np.int64),
                        speaker_names=[r[2] for r in rows],
                        labels=np.asarray([r[4] for r in rows], dtype=np.int64))


# -- the model -------------------------------------------------------------------------------------
def _rows(checkpoint: Checkpoint, data: _Input, *, hidden: bool, device: torch.device) -> Any:
    import pandas as pd

    model = checkpoint.model.to(device)
    classes = checkpoint.info.classes
    frames = []
    for name, dialogues in data.splits.items():
        if checkpoint.scales:
            dialogues = standardize(dialogues, checkpoint.scales)
        probabilities, representations = [], []
        with torch.inference_mode():
            for batch in batches(dialogues, batch_size=_BATCH, modalities=checkpoint.modalities,
                                 num_speakers=checkpoint.info.num_speakers):
                batch = batch.to(device)
                output = model(batch)
                probabilities.append(torch.softmax(output.logits[batch.mask].float(), dim=-1).cpu().numpy())  # (N, C)
                if hidden:
                    representations.append(output.hidden[batch.mask].float().cpu().numpy())  # (N, H)
        p = np.concatenate(probabilities)
        known = np.concatenate(data.known[name])
        labels = np.concatenate([d.labels for d in dialogues])
        frame = pd.DataFrame({
            "split": name,
            "dialogue": np.repeat([d.id for d in dialogues], [len(d) for d in dialogues]),
            "utterance": np.concatenate([np.arange(len(d)) for d in dialogues]),
            "speaker": np.concatenate([d.speakers for d in dialogues]),
        })
        if name in data.texts:
            frame["text"] = [t for texts in data.texts[name] for t in texts]
        frame["label"] = np.where(known, np.asarray(classes, dtype=object)[labels], "")
        frame["prediction"] = np.asarray(classes, dtype=object)[p.argmax(axis=1)]
        frame = frame.join(pd.DataFrame(p, columns=[f"p_{c}" for c in classes]))
        if hidden:
            h = np.concatenate(representations)
            frame = frame.join(pd.DataFrame(h, columns=[f"h_{i}" for i in range(h.shape[1])]))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
