"""``merc-bench data prepare csv``: a ``conversation-csv`` corpus with its text features computed once.

The ``conversation-csv`` dataset embeds its text column with a frozen encoder every time it is
loaded. ``data prepare csv --dataset-config corpus.toml --to DIR`` instead writes a feature-store
folder once, and with ``--finetune`` fine-tunes the encoder first (on train, the epoch selected on
dev, :mod:`merc_bench.text_finetune`), exactly as ``data prepare meld --finetune`` does. The
corpus is described by the same options as the dataset (``--dataset-config FILE`` and
``--set dataset.KEY=VALUE``; the core validates them with :class:`~merc_bench_datasets.
conversation_csv.ConversationCSVConfig`) and read by the same parser
(:meth:`ConversationCSVDataset.text_dialogues`): the same column mapping, dialogue keys, speaker
policy, classes and checks of hostile input. ``.npy`` features of other modalities (audio, visual)
are carried into the folder as they are, as are audio/visual features computed from a
``media_column`` (:mod:`merc_bench_datasets.csv_media`); ``.npy`` text features are refused (there would be
nothing to prepare). The folder is read by ``merc-bench run ... --dataset prepared --data-dir DIR``
(:mod:`merc_bench_datasets.prepared`).

``DIR/raw/`` holds byte copies of the CSVs (checked against the sha256 of the bytes parsed). The
embedding cache is keyed per split by a digest of the file's sha256, the split and every option
that shapes the dialogues (columns, dialogue key, order, speaker policy and separators, classes,
delimiter), so a changed mapping never reuses another mapping's vectors; the fine-tuning key adds
the encoder, its weights and the whole fine-tuning configuration (:func:`merc_bench.text_finetune.
finetune_key`). The manifest's provenance records the files (path, sha256, rows, encoding), the
``.npy`` files (path, sha256), the corpus configuration, the classes and their counts, and what the
core adds: the encoder and the fine-tuning report.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from merc_bench.data_sources import PrepareRequest, RawCorpus
from merc_bench.errors import UserError
from merc_bench.feature_store import sha256_file
from merc_bench_datasets.conversation_csv import ConversationCSVDataset

__all__ = ["check", "read", "DIALOGUE_OPTIONS"]

#: The options that decide what the dialogues are (their texts, speakers, labels), hence their vectors.
DIALOGUE_OPTIONS = ("split_column", "dialogue_column", "order_column", "speaker_column", "speaker_policy",
                    "speaker_separators", "label_column", "text_column", "classes", "delimiter")


def _described(config: Any) -> str:
    value = config.text_encoder
    return "false (embed no text)" if value is None else repr(value)


def check(request: PrepareRequest) -> None:
    """Refuse options that do not apply, a corpus not described, and a text encoder named twice differently."""
    if request.source is not None or request.url is not None:
        raise UserError("--from/--url do not apply to `data prepare csv`: it reads the CSV files its corpus config "
                        "names (--dataset-config corpus.toml, or --set dataset.train=...); leave them out.")
    config = request.dataset_config
    if config is None or not config.model_fields_set & {"train", "dev", "test", "file"}:
        raise UserError("`data prepare csv` needs the corpus described: --dataset-config corpus.toml (the "
                        "conversation-csv options: CSV files, column mapping, classes; `merc-bench list dataset "
                        "conversation-csv` lists them), or --set dataset.train=train.csv --set dataset.dev=dev.csv "
                        "--set dataset.test=test.csv and the column options.")
    if "text_encoder" in config.model_fields_set and config.text_encoder != request.text_encoder:
        raise UserError(f"the corpus config sets text_encoder = {_described(config)}, but `data prepare csv` embeds "
                        f"the text column with --text-encoder {request.text_encoder!r}; give the same encoder in "
                        "both, or remove text_encoder from the corpus config.")


def _source_key(sha256: str, split: str, config: Any) -> str:
    """What keys a split's cached vectors: the file's bytes, the split, and how its rows become dialogues."""
    identity = {"file_sha256": sha256, "split": split,
                "options": config.model_dump(mode="json", include=set(DIALOGUE_OPTIONS))}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _copy_raw(tables: dict[str, Any], raw: Path, file_option: bool) -> dict[str, str]:
    """Byte copies of the CSVs in ``raw`` (the one file, or ``<split>.csv``), checked against what was parsed."""
    copied: dict[str, str] = {}
    for split, table in tables.items():
        name = table.path.name if file_option else f"{split}.csv"
        if name not in copied.values():
            shutil.copyfile(table.path, raw / name)
            if sha256_file(raw / name) != table.sha256:
                raise UserError(f"{str(table.path)!r} changed while it was being read (its sha256 differs from the "
                                "bytes parsed); prepare again once nothing is writing to it.")
        copied[split] = name
    return copied


def _npy_files(config: Any) -> dict[str, dict[str, dict[str, str]]]:
    """modality -> key -> the .npy file's resolved path and sha256 (the parser has read and checked them)."""
    files: dict[str, dict[str, dict[str, str]]] = {}
    for modality, paths in config.features.items():
        for key, value in paths.items():
            path = Path(value).expanduser().resolve()
            files.setdefault(modality, {})[key] = {"path": str(path), "sha256": sha256_file(path)}
    return files


def read(request: PrepareRequest, raw: Path) -> RawCorpus:
    """Parse the corpus as the conversation-csv dataset does, copy its CSVs into ``raw``; the texts stay to embed."""
    config = request.dataset_config.model_copy(update={"text_encoder": request.text_encoder})
    parsed = ConversationCSVDataset(config).text_dialogues()
    copies = _copy_raw(parsed.tables, raw, config.file is not None)
    for split, dialogues in parsed.splits.items():
        request.console.print(f"{split}: {parsed.tables[split].path.name}: {len(dialogues)} dialogues, "
                              f"{sum(len(d) for d in dialogues)} utterances", markup=False, highlight=False)
    provenance = {
        **parsed.provenance,  # source, files (path, sha256, rows, encoding), columns, classes, class counts, ...
        "features": {**parsed.provenance["features"], "text": f"column {config.text_column!r}, embedded by "
                     "`merc-bench data prepare csv`"},
        "npy_files": _npy_files(config),
        "raw_files": copies,
        "corpus_config": config.model_dump(mode="json", exclude={"cache_dir"}),
    }
    return RawCorpus(
        name=config.name, family=config.family, classes=tuple(parsed.classes), num_speakers=parsed.num_speakers,
        description=f"{config.name}: conversations from CSV files (conversation-csv)", splits=parsed.splits,
        source_sha256={split: _source_key(table.sha256, split, config) for split, table in parsed.tables.items()},
        provenance=provenance, feature_dims=parsed.feature_dims,
        next_step="merc-bench run sdt --dataset prepared --data-dir {target}",
    )
