"""``merc-bench data prepare``: a dataset from its raw annotations plus text features.

Which datasets can be prepared, and how their raw files are fetched, verified and parsed, is what
plugins declare through the ``merc_bench_data_sources`` hook (:class:`merc_bench.data_sources.
PreparableDataset`; the built-in datasets plugin declares MELD, Poria et al., ACL 2019, in
:mod:`merc_bench_datasets.meld_prepare`, and any ``conversation-csv`` corpus, ``data prepare csv``,
in :mod:`merc_bench_datasets.csv_prepare`). This module does the rest, the same for every dataset:
every utterance is embedded with a registered text encoder (default ``minilm``). A source that
declares ``options_of`` receives that registered dataset's options, read as ``run`` reads them
(``--dataset-config FILE``, then ``--set dataset.*``, validated by the dataset's config); features
of other modalities its dialogues carry (a CSV corpus's ``.npy`` audio/visual) go into the folder
as they are, the generic ``nonfinite`` option applied.

The prepared folder ``DIR`` is a feature store (:mod:`merc_bench.feature_store`: ``manifest.json``
and ``train/dev/test.npz``) that ``merc-bench run ... --dataset NAME --data-dir DIR`` reads, plus

* ``DIR/raw/`` — the raw files the dataset's source fetched and verified, byte for byte;
* ``DIR/cache/`` — the embeddings, one ``.npz`` per split, named by the raw file's sha256, the
  encoder's name and a digest of its version. Preparing into the same ``DIR`` again (a folder
  written by this command is replaced, anything else is refused) reuses them instead of encoding
  again, and says "reused" or "computed" per split. The embeddings are also kept in
  ``$MERC_BENCH_CACHE/embeddings`` (the one cache folder of merc-bench, default
  ``~/.cache/merc-bench``), shared by every prepared dataset and the ``conversation-csv`` dataset.
  A cache file also stores a digest of the exact texts it embeds, so a file whose texts no longer
  match is recomputed, never trusted.

With ``finetune`` (``--finetune``) the encoder is first fine-tuned for emotion classification on
the train split, the epoch selected on dev (:mod:`merc_bench.text_finetune`; the encoder must have
a ``trainable(...)`` model, as ``minilm`` has). Its vectors are cached under the encoder's name plus
``-ft`` and a digest of the encoder version, weights hash, raw files and the whole configuration,
with the run's report beside them, so frozen and fine-tuned vectors, or two configurations', are
never mixed; ``provenance.finetune`` holds that report. The selected weights are kept in
``DIR/encoder/finetuned.pt`` (sha256 in ``provenance.finetune.weights``; cached with the vectors), so
``merc-bench predict`` embeds new text exactly as the corpus was. The per-epoch checkpoints live in
``.DIR.finetune-<digest>/`` beside ``DIR`` until the folder is published, so a killed run resumes.

With ``--media-dir PATH`` (a dataset whose source declares a media layout, as MELD does for
MELD.Raw) every utterance's clip is decoded with ffmpeg and gets audio features from a registered
``audio_encoder`` (default ``is10``, 1582-d; ``egemaps``, 88-d) and visual features from a
``visual_encoder`` (default ``frame-stats``, a placeholder without faces), cached per file content and
encoder (:mod:`merc_bench.media_features`). Bad files are listed in one error, or with
``--skip-missing`` get zero features and are listed in ``provenance.media.skipped``.

The manifest's provenance records what the source reports (where the files came from, their sha256
and size, how the text was decoded, ...), the text encoder's name, version and dimension, which
splits were computed or reused, the source's count warnings and the creation time. The whole folder
is assembled under a temporary name beside ``DIR`` and renamed into place, so an interrupted prepare
leaves nothing half-written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from merc_bench.data import Corpus, DatasetInfo, Dialogue, validate_corpus
from merc_bench.data_sources import DataSources, PreparableDataset, PrepareRequest, RawCorpus, data_sources
from merc_bench.errors import UserError, unknown_name_message
from merc_bench.feature_store import MANIFEST, sha256_file, write_corpus

__all__ = [
    "prepare_command", "build_text_encoder", "cached_embeddings", "encode_texts", "texts_digest",
    "default_cache_dir",
]

PREPARED_BY = "merc-bench data prepare"
#: Where a ``--finetune`` folder keeps the fine-tuned encoder's weights (a ``state_dict``, for ``predict``).
FINETUNED_WEIGHTS = "encoder/finetuned.pt"
# Texts per encoder call: small enough for a smooth progress bar, large enough to batch well.
_ENCODE_CHUNK = 256


# -- text encoders and the embedding cache ---------------------------------------------------------

def build_text_encoder(name: str, options: dict[str, Any] | None = None, *, registry: Any = None) -> Any:
    """Instantiate the registered text encoder ``name`` (a :class:`UserError` if unknown or unusable)."""
    if registry is None:
        from merc_bench.plugins import get_registry

        registry = get_registry()
    entry = registry.get("text_encoder", name)
    encoder = entry.build(entry.make_config(options or {}, where="text encoder"), {})
    for attribute in ("name", "version", "dimension"):
        if getattr(encoder, attribute, None) in (None, ""):
            raise RuntimeError(f"text encoder {name!r} ({entry.plugin}) lacks the attribute {attribute!r}")
    return encoder


def texts_digest(texts: Sequence[str]) -> str:
    """sha256 of the exact texts, in order (a record separator between them, so boundaries count)."""
    digest = hashlib.sha256(str(len(texts)).encode())
    for text in texts:
        digest.update(b"\x1e")
        digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """``embeddings/`` in merc-bench's one cache folder (``$MERC_BENCH_CACHE``, default ``~/.cache/merc-bench``)."""
    from merc_bench.paths import cache_dir

    return cache_dir() / "embeddings"


def cache_file_name(*, source_sha256: str, encoder: Any, tag: str) -> str:
    """``<tag>-<source sha256>-<encoder name>-<digest of its version>.npz``."""
    version = hashlib.sha256(str(encoder.version).encode()).hexdigest()[:12]
    return f"{tag}-{source_sha256}-{encoder.name}-{version}.npz"


def encode_texts(encoder: Any, texts: Sequence[str], *, console: Any = None,
                 description: str = "encoding") -> np.ndarray:
    """Embed ``texts`` in chunks with a progress bar; check the encoder's output: (n, D) float32."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    texts = list(texts)
    # Chunks of similar length: a transformer pads each batch to its longest text, so length-sorted
    # chunks waste less work on padding; rows are put back in the caller's order afterwards.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    parts = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console or Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=len(texts))
        for start in range(0, len(texts), _ENCODE_CHUNK):
            chunk = [texts[i] for i in order[start : start + _ENCODE_CHUNK]]
            parts.append(np.asarray(encoder.encode(chunk)))
            progress.advance(task, len(chunk))
    sorted_vectors = np.concatenate(parts) if parts else np.zeros((0, encoder.dimension), dtype=np.float32)
    if sorted_vectors.shape != (len(texts), encoder.dimension):
        raise RuntimeError(f"text encoder {encoder.name!r} returned shape {sorted_vectors.shape} for {len(texts)} "
                           f"texts; expected ({len(texts)}, {encoder.dimension})")
    vectors = np.empty_like(sorted_vectors)
    vectors[order] = sorted_vectors
    if not np.isfinite(vectors).all():
        raise RuntimeError(f"text encoder {encoder.name!r} returned NaN or infinite values")
    return vectors.astype(np.float32, copy=False)


def _read_cache(path: Path, *, encoder: Any, digest: str, count: int) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            if (str(stored["encoder_name"]) != encoder.name or str(stored["encoder_version"]) != str(encoder.version)
                    or str(stored["texts_sha256"]) != digest):
                return None
            vectors = stored["embeddings"]
    except (OSError, KeyError, ValueError):
        return None  # missing, damaged or from another format: recompute rather than fail
    if vectors.shape != (count, encoder.dimension) or vectors.dtype != np.float32:
        return None
    return vectors


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_cache(path: Path, vectors: np.ndarray, *, encoder: Any, digest: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, embeddings=vectors, texts_sha256=np.asarray(digest),
                     encoder_name=np.asarray(encoder.name), encoder_version=np.asarray(str(encoder.version)))
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it owner-only; a cache may be shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def cached_embeddings(
    encoder: Any,
    texts: Sequence[str],
    *,
    file_name: str,
    read_dirs: Sequence[Path],
    write_dir: Path,
    console: Any = None,
    description: str = "encoding",
) -> tuple[np.ndarray, str]:
    """Embeddings of ``texts`` from the first valid cache file in ``read_dirs``, else computed.

    Returns ``(vectors (n, D) float32, "reused" | "computed")``; the vectors always end up in
    ``write_dir / file_name`` (copied there when found elsewhere), written atomically.
    """
    digest = texts_digest(texts)
    target = Path(write_dir) / file_name
    for folder in read_dirs:
        candidate = Path(folder) / file_name
        vectors = _read_cache(candidate, encoder=encoder, digest=digest, count=len(texts))
        if vectors is not None:
            if candidate.resolve() != target.resolve():
                _write_cache(target, vectors, encoder=encoder, digest=digest)
            return vectors, "reused"
    vectors = encode_texts(encoder, texts, console=console, description=description)
    _write_cache(target, vectors, encoder=encoder, digest=digest)
    return vectors, "computed"


# -- the target folder ------------------------------------------------------------------------------

def _check_target(target: Path) -> bool:
    """Refuse a target that is a file or holds something else; True if it holds an earlier prepare."""
    if target.exists() and not target.is_dir():
        raise UserError(f"--to {str(target)!r} is a file; choose a folder for the prepared dataset.")
    if not target.exists() or not any(target.iterdir()):
        return False
    try:
        provenance = json.loads((target / MANIFEST).read_text()).get("provenance", {})
    except (OSError, ValueError, AttributeError):
        provenance = {}
    if str(provenance.get("prepared_by", "")).startswith(PREPARED_BY):
        return True
    raise UserError(f"--to {str(target)!r} already exists and is not empty (and was not written by "
                    f"`{PREPARED_BY}`); choose a new folder or remove it first.")


def _publish(store: Path, staging: Path, target: Path) -> None:
    """Move the finished ``store`` to ``target``; an earlier folder there is kept until the new one is in."""
    os.chmod(store, 0o777 & ~_umask())  # temporary folders are created owner-only
    os.replace(staging / "raw", store / "raw")
    if (staging / "cache").exists():
        os.replace(staging / "cache", store / "cache")
    if not target.exists():
        os.replace(store, target)
        return
    previous = staging / "previous"
    os.replace(target, previous)
    try:
        os.replace(store, target)
    except BaseException:
        os.replace(previous, target)
        raise


# -- the command ------------------------------------------------------------------------------------

def _preparable(dataset: str, sources: DataSources) -> PreparableDataset:
    found = sources.preparable_dataset(dataset)
    if found is None:
        raise UserError(f"`data prepare` cannot prepare {dataset!r}: " +
                        unknown_name_message("preparable dataset", dataset, list(sources.preparable)) +
                        " Other corpora: convert their feature files with `merc-bench data convert`, or describe "
                        "their CSV files with the conversation-csv dataset.")
    return found


def _dataset_options(preparable: PreparableDataset, dataset_config: Path | None,
                     overrides: Sequence[str]) -> tuple[Any, str]:
    """The source's dataset options — its ``options_of`` dataset's config object, from the corpus config file
    then ``--set dataset.*``, as ``run`` reads them — and the generic ``nonfinite`` policy."""
    overrides = list(overrides)
    other = [o for o in overrides if o.split("=", 1)[0].split(".")[0].strip() != "dataset"]
    if other:
        raise UserError(f"--set {other[0]!r}: `data prepare` takes only dataset options (--set dataset.KEY=VALUE); "
                        "training settings belong to `merc-bench run`.")
    if preparable.options_of is None:
        if dataset_config is not None or overrides:
            given = "--dataset-config" if dataset_config is not None else f"--set {overrides[0]!r}"
            raise UserError(f"{given}: `data prepare {preparable.name}` takes no dataset options (its raw files define "
                            "the corpus); leave it out.")
        return None, "refuse"
    from merc_bench.config import apply_overrides
    from merc_bench.data import nonfinite_option
    from merc_bench.dataset_config import read_dataset_config
    from merc_bench.plugins import get_registry

    registry = get_registry()
    base = (read_dataset_config(dataset_config, registry, preparable.options_of,
                                command=f"data prepare {preparable.name}") if dataset_config is not None
            else {"name": preparable.options_of, "config": {}})
    choice = apply_overrides({"dataset": base}, overrides)["dataset"]
    if choice["name"] != preparable.options_of:
        raise UserError(f"--set dataset={choice['name']}: `data prepare {preparable.name}` reads a "
                        f"{preparable.options_of} corpus; set its options (--set dataset.KEY=VALUE), not another dataset.")
    entry = registry.get("dataset", preparable.options_of)
    options, nonfinite = nonfinite_option(choice.get("config", {}), entry.config.model_fields)
    return entry.make_config(options, where="dataset"), nonfinite


def _read_raw(preparable: PreparableDataset, request: PrepareRequest, raw: Path,
              limit_dialogues: int | None) -> RawCorpus:
    """The source's parse of its raw files (in ``raw``), its warnings printed, cut to the first N dialogues."""
    raw.mkdir()
    parsed = preparable.read(request, raw)
    for warning in parsed.warnings:
        request.console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)
    if limit_dialogues is not None:  # after the source's checks on the full files
        parsed.splits = {split: dialogues[:limit_dialogues] for split, dialogues in parsed.splits.items()}
    return parsed


def _embed(parsed: RawCorpus, encoder: Any, *, read_dirs: list[Path], write_dir: Path, console: Any,
           limit_dialogues: int | None) -> tuple[dict[str, list[Dialogue]], dict[str, str]]:
    """Per split: the dialogues with their text features, and whether those were "reused" or "computed"."""
    splits: dict[str, list[Dialogue]] = {}
    embedding_status = {}
    for split, dialogues in parsed.splits.items():
        texts = [text for dialogue in dialogues for text in dialogue.texts]
        tag = split if limit_dialogues is None else f"{split}-first{limit_dialogues}"
        started = time.perf_counter()
        vectors, status = cached_embeddings(
            encoder, texts,
            file_name=cache_file_name(source_sha256=parsed.source_sha256[split], encoder=encoder, tag=tag),
            read_dirs=read_dirs, write_dir=write_dir, console=console,
            description=f"{encoder.name} {split} ({len(texts)} utterances)",
        )
        seconds = time.perf_counter() - started
        embedding_status[split] = status
        console.print(f"text features {split}: {status} ({len(texts)} × {vectors.shape[1]}, {seconds:.1f} s)",
                      markup=False, highlight=False)
        bounds = np.cumsum([0] + [len(d) for d in dialogues])
        splits[split] = [
            Dialogue(id=d.id, features=_with_carried(d, vectors[bounds[i] : bounds[i + 1]]), speakers=d.speakers,
                     labels=d.labels)
            for i, d in enumerate(dialogues)
        ]
    return splits, embedding_status


def _with_carried(dialogue: Any, text: np.ndarray) -> dict[str, np.ndarray]:
    """A dialogue's features: its text vectors plus the other modalities its source already had (CSV ``.npy``)."""
    return {"text": text, **getattr(dialogue, "features", {})}


class _FinetunedVectors:
    """What the embedding cache checks for fine-tuned vectors: the encoder's name plus ``-ft``, a version that
    is the digest of the whole fine-tuning identity, and the width of all kept layers side by side."""

    def __init__(self, encoder: Any, key: str, layers: int) -> None:
        self.name = f"{encoder.name}-ft"
        self.version = key
        self.dimension = int(encoder.dimension) * layers


def _finetune_cache(parsed: RawCorpus, described: _FinetunedVectors, config: Any, key: str, read_dirs: list[Path],
                    limit_dialogues: int | None) -> tuple[dict, dict, dict, dict | None, Path | None]:
    """Per split the cache file name, the inputs' digest and the cached vectors found; the cached report
    and the fine-tuned weights (each None when absent). The weights travel with the vectors:
    ``merc-bench predict`` embeds new text with them."""
    from merc_bench.text_finetune import dialogue_inputs

    names, digests, found = {}, {}, {}
    for split, dialogues in parsed.splits.items():
        inputs = [" \x1f ".join(pair) for d in dialogues for pair in dialogue_inputs(d, config.context_turns)]
        tag = split if limit_dialogues is None else f"{split}-first{limit_dialogues}"
        names[split] = cache_file_name(source_sha256=parsed.source_sha256[split], encoder=described, tag=tag)
        digests[split] = texts_digest(inputs)
        for folder in read_dirs:
            vectors = _read_cache(Path(folder) / names[split], encoder=described, digest=digests[split],
                                  count=len(inputs))
            if vectors is not None:
                found[split] = vectors
                break
    report = None
    for folder in read_dirs:
        try:
            report = json.loads((Path(folder) / f"finetune-{key}.json").read_text())
            break
        except (OSError, ValueError):
            continue
    weights = next((Path(folder) / f"finetune-{key}.weights.pt" for folder in read_dirs
                    if (Path(folder) / f"finetune-{key}.weights.pt").is_file()), None)
    return names, digests, found, report, weights


def _finetuned(parsed: RawCorpus, encoder: Any, config: Any, *, read_dirs: list[Path], write_dir: Path,
               work_dir: Path, console: Any, limit_dialogues: int | None
               ) -> tuple[dict[str, list[Dialogue]], dict[str, str], dict[str, Any], dict[str, np.ndarray]]:
    """Fine-tuned text features (:mod:`merc_bench.text_finetune`), from the cache when the same run made them.

    Returns the dialogues with ``text`` = pooled last layer, the per-split cache status, the fine-tuning
    report (for the manifest; ``weights`` names the fine-tuned weights' file in the prepared folder and
    its sha256) and per split the (N, layers, D) pooled vectors. The weights are cached with the vectors;
    cached vectors without them are computed again.
    """
    from merc_bench.text_finetune import finetune_and_extract, finetune_key

    key = finetune_key(encoder=encoder, config=config, source_sha256=parsed.source_sha256,
                       num_classes=len(parsed.classes), limit_dialogues=limit_dialogues)
    described = _FinetunedVectors(encoder, key, config.layers)
    names, digests, found, report, weights = _finetune_cache(parsed, described, config, key, read_dirs, limit_dialogues)
    weights_name = f"finetune-{key}.weights.pt"
    if report is not None and weights is not None and len(found) == len(parsed.splits):
        status = dict.fromkeys(parsed.splits, "reused")
        flat = found
    else:  # a fine-tuned run never mixes its vectors with another run's: all splits come from this one
        result = finetune_and_extract(encoder, parsed.splits, config=config, num_classes=len(parsed.classes),
                                      work_dir=work_dir, console=console)
        report, status = result.report, dict.fromkeys(parsed.splits, "computed")
        flat = {split: vectors.reshape(len(vectors), -1) for split, vectors in result.vectors.items()}
        weights = work_dir / "best.pt"
    write_dir.mkdir(parents=True, exist_ok=True)
    for split, vectors in flat.items():
        _write_cache(write_dir / names[split], vectors, encoder=described, digest=digests[split])
    _write_text(write_dir / f"finetune-{key}.json", json.dumps(report, indent=2))
    if weights != write_dir / weights_name:
        shutil.copyfile(weights, write_dir / weights_name)
    report = {**report, "weights": {"file": FINETUNED_WEIGHTS, "sha256": sha256_file(write_dir / weights_name)}}
    splits, layered = {}, {}
    dimension = int(encoder.dimension)
    for split, dialogues in parsed.splits.items():
        layered[split] = flat[split].reshape(len(flat[split]), config.layers, dimension)
        console.print(f"text features {split}: {status[split]} (fine-tuned, {len(flat[split])} × {dimension}"
                      f"{f', {config.layers} layers' if config.layers > 1 else ''})", markup=False, highlight=False)
        bounds = np.cumsum([0] + [len(d) for d in dialogues])
        splits[split] = [
            Dialogue(id=d.id, features=_with_carried(d, np.ascontiguousarray(layered[split][bounds[i] : bounds[i + 1], 0])),
                     speakers=d.speakers, labels=d.labels)
            for i, d in enumerate(dialogues)
        ]
    return splits, status, report, layered


def _write_text(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _provenance(name: str, parsed: RawCorpus, encoder: Any, embedding_status: dict[str, str],
                limit_dialogues: int | None) -> dict[str, Any]:
    """What the manifest records: ``prepared_by``, the source's own facts, then the text features'."""
    provenance = {
        "prepared_by": f"{PREPARED_BY} {name}",
        **parsed.provenance,
        "text_encoder": {"name": encoder.name, "version": str(encoder.version), "dimension": int(encoder.dimension)},
        "embeddings": embedding_status,
        "embedding_cache": "cache/",
        "count_warnings": parsed.warnings,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if limit_dialogues is not None:
        provenance["limit_dialogues"] = limit_dialogues
    return provenance


def _media_setup(preparable: PreparableDataset, media: Any) -> tuple[dict[str, Any], Any]:
    """Check ``--media-dir`` and its options and build the encoders and the decoder, before anything is fetched."""
    from merc_bench.media import find_decoder
    from merc_bench.media_features import MAX_SECONDS_LIMIT, MEDIA_KINDS, build_media_encoder

    if preparable.media is None:
        raise UserError(f"--media-dir: the dataset {preparable.name!r} declares no media layout, so only its text "
                        "features can be prepared; leave out --media-dir.")
    if not Path(media.media_dir).is_dir():
        raise UserError(f"--media-dir {str(media.media_dir)!r} is not a folder; give the folder of the dataset's "
                        f"clips ({preparable.media_layouts or 'see the dataset documentation'}).")
    if not media.encoder_names():
        raise UserError("--media-dir with --audio-encoder none and --visual-encoder none extracts nothing; name at "
                        "least one encoder (`merc-bench list audio_encoder`, `merc-bench list visual_encoder`).")
    if not 1 <= media.max_seconds <= MAX_SECONDS_LIMIT:
        raise UserError(f"--max-media-seconds {media.max_seconds:g} is outside 1..{MAX_SECONDS_LIMIT:g}.")
    encoders = {modality: build_media_encoder(MEDIA_KINDS[modality], name)
                for modality, name in media.encoder_names().items()}
    return encoders, find_decoder()


def _add_media(parsed: RawCorpus, splits: dict[str, list[Dialogue]], preparable: PreparableDataset, media: Any,
               setup: tuple[dict[str, Any], Any], *, staging: Path, target: Path, console: Any
               ) -> tuple[dict[str, list[Dialogue]], dict[str, int], dict[str, Any]]:
    """The dialogues with audio/visual features added, their dimensions, and the manifest's ``media`` entry."""
    from merc_bench.media_features import MediaItem, extract_media_features
    from merc_bench.paths import cache_dir

    encoders, decoder = setup
    media_dir = Path(media.media_dir)
    found = preparable.media(media_dir, parsed)
    items = {}
    for split, dialogues in parsed.splits.items():
        places = [(d.id, u) for d in dialogues for u in range(len(d.texts))]
        paths = found.files[split]
        if len(paths) != len(places):
            raise RuntimeError(f"{preparable.name}: media layout gave {len(paths)} files for {len(places)} {split} "
                               "utterances")
        items[split] = [MediaItem(split, dialogue, utterance, path, _shown(path, media_dir))
                        for (dialogue, utterance), path in zip(places, paths)]
    result = extract_media_features(items, encoders, decoder=decoder, read_dirs=[target / "cache", cache_dir()],
                                    write_dirs=[staging / "cache", cache_dir()], skip_missing=media.skip_missing,
                                    max_seconds=media.max_seconds, console=console)
    with_media = {}
    for split, dialogues in splits.items():
        bounds = np.cumsum([0] + [len(d) for d in dialogues])
        with_media[split] = [
            Dialogue(id=d.id, features={**d.features, **{m: result.features[m][split][bounds[i] : bounds[i + 1]]
                                                         for m in encoders}},
                     speakers=d.speakers, labels=d.labels)
            for i, d in enumerate(dialogues)]
    for modality, counts in result.status.items():
        console.print(f"{modality} features: {counts['computed']} computed, {counts['reused']} reused, "
                      f"{counts['skipped']} skipped ({encoders[modality].name}, {encoders[modality].dimension}-d)",
                      markup=False, highlight=False)
    if result.skipped:
        utterances = len({(entry["split"], entry["dialogue"], entry["utterance"]) for entry in result.skipped})
        console.print(f"warning: --skip-missing gave {utterances} utterances zero features for a modality "
                      "(their file was missing or unusable); each is listed in the manifest's provenance.media.skipped",
                      style="yellow", markup=False, highlight=False)
    provenance = {
        "media_dir": str(media_dir.resolve()), "layout": found.layout, "decoder": decoder.describe(),
        "max_seconds": media.max_seconds, "skip_missing": media.skip_missing,
        **{f"{m}_encoder": {"name": e.name, "version": str(e.version), "dimension": int(e.dimension),
                            "options": getattr(e, "options", {})} for m, e in encoders.items()},
        "features": result.status, "skipped_policy": "zero features for that modality (utterance kept)",
        "skipped": result.skipped,
    }
    return with_media, {m: int(e.dimension) for m, e in encoders.items()}, provenance


def _shown(path: Path, media_dir: Path) -> str:
    """``path`` relative to the media folder when inside it (how errors and the manifest name files)."""
    try:
        return str(path.relative_to(media_dir))
    except ValueError:
        return str(path)


def _check_training_splits(parsed: RawCorpus) -> None:
    """Fine-tuning needs dialogues in train (to learn) and dev (to select the epoch); test never stands in."""
    from merc_bench.text_finetune import TRAINING_SPLITS

    empty = [split for split in TRAINING_SPLITS if not parsed.splits.get(split)]
    if empty:
        raise UserError(f"--finetune: {parsed.name} has no {' and no '.join(empty)} dialogues; fine-tuning trains on "
                        "the train split and selects its epoch on the dev split (the test split is never used for "
                        "either). Give the corpus a non-empty dev split, or leave out --finetune.")


def finetune_work_dir(target: Path, key: str) -> Path:
    """Where a fine-tuning run keeps its per-epoch checkpoints: beside ``target``, named by the run's digest."""
    return target.parent / f".{target.name}.finetune-{key}"


def _build_into(staging: Path, *, name: str, preparable: PreparableDataset, request: PrepareRequest,
                encoder: Any, limit_dialogues: int | None, finetune: Any = None, media: Any = None,
                media_setup: Any = None, nonfinite: str = "refuse") -> tuple[Corpus, RawCorpus]:
    """Fetch, parse and embed into ``staging``; publish the finished folder at ``request.target``."""
    parsed = _read_raw(preparable, request, staging / "raw", limit_dialogues)
    # Embeddings: read from an earlier prepare's DIR/cache or the shared cache ($MERC_BENCH_CACHE/
    # embeddings, where conversation-csv corpora keep theirs); written into the new folder's own
    # cache, so a prepared folder is complete without the shared one.
    read_dirs = [request.target / "cache", default_cache_dir()]
    layered: dict[str, np.ndarray] = {}
    if finetune is None:
        splits, embedding_status = _embed(parsed, encoder, read_dirs=read_dirs, write_dir=staging / "cache",
                                          console=request.console, limit_dialogues=limit_dialogues)
    else:
        from merc_bench.text_finetune import finetune_key

        _check_training_splits(parsed)
        key = finetune_key(encoder=encoder, config=finetune, source_sha256=parsed.source_sha256,
                           num_classes=len(parsed.classes), limit_dialogues=limit_dialogues)
        work_dir = finetune_work_dir(request.target, key)
        splits, embedding_status, report, layered = _finetuned(
            parsed, encoder, finetune, read_dirs=read_dirs, write_dir=staging / "cache", work_dir=work_dir,
            console=request.console, limit_dialogues=limit_dialogues)
    # text, then the modalities the source carries (a CSV corpus's .npy audio/visual), then those from media
    dims: dict[str, int] = {"text": int(encoder.dimension), **parsed.feature_dims}
    media_provenance, described = None, f"text features: {encoder.name}"
    if media is not None:
        splits, media_dims, media_provenance = _add_media(parsed, splits, preparable, media, media_setup,
                                                          staging=staging, target=request.target,
                                                          console=request.console)
        dims.update(media_dims)
        described += "".join(f", {m} features: {media_provenance[f'{m}_encoder']['name']}" for m in media_dims)
    info = DatasetInfo(
        name=parsed.name, family=parsed.family, classes=tuple(parsed.classes),
        feature_dims=dims, num_speakers=parsed.num_speakers, description=f"{parsed.description}; {described}",
    )
    # The generic `nonfinite` option (zero: NaN/inf in carried .npy features replaced, counted in the provenance).
    corpus = validate_corpus(Corpus(info=info, train=splits["train"], dev=splits["dev"], test=splits["test"]),
                             nonfinite=nonfinite)
    store = staging / "dataset"
    provenance = _provenance(name, parsed, encoder, embedding_status, limit_dialogues)
    if media_provenance is not None:
        provenance["media"] = media_provenance
    if finetune is not None:
        provenance["text_encoder"].update(weights_sha256=encoder.weights_sha256, finetuned=True)
        provenance["finetune"] = {**report, "cache_key": key}
        if finetune.layers > 1:
            provenance["text_layers"] = {"files": "text_layers/<split>.npz", "array": "layers", **{
                split: list(vectors.shape) for split, vectors in layered.items()}}
    write_corpus(corpus, store, provenance=provenance)
    if finetune is not None:
        _write_finetuned_extras(store, staging / "cache" / f"finetune-{key}.weights.pt", layered)
    _publish(store, staging, request.target)
    if finetune is not None:
        shutil.rmtree(finetune_work_dir(request.target, key), ignore_errors=True)  # done: checkpoints not needed
    return corpus, parsed


def _write_finetuned_extras(store: Path, weights: Path, layered: dict[str, np.ndarray]) -> None:
    """Beside the feature store (which holds the modalities recipes read): the fine-tuned encoder, so new
    text is embedded as this corpus was, and with more than one layer the last K layers' pooled vectors,
    (N, K, D) per split in the manifest's utterance order, index 0 the last layer."""
    (store / FINETUNED_WEIGHTS).parent.mkdir()
    shutil.copyfile(weights, store / FINETUNED_WEIGHTS)
    if next(iter(layered.values())).shape[1] > 1:
        (store / "text_layers").mkdir()
        for split, vectors in layered.items():
            np.savez(store / "text_layers" / f"{split}.npz", layers=vectors.astype(np.float32))


def _text_encoder(name: str, finetune: dict[str, Any] | None) -> tuple[Any, Any]:
    """The text encoder (built now, before any download, so a missing extra fails first) and the validated
    fine-tuning configuration (None without ``--finetune``)."""
    finetune_config = None
    if finetune is not None:
        from merc_bench.text_finetune import finetune_config as validated

        finetune_config = validated(finetune)
    encoder = build_text_encoder(name)
    if finetune_config is not None and not callable(getattr(encoder, "trainable", None)):
        raise UserError(f"--finetune: the text encoder {name!r} cannot be fine-tuned (it has no trainable "
                        "model); use --text-encoder minilm or leave out --finetune.")
    return encoder, finetune_config


def prepare_command(
    *,
    dataset: str,
    target: Path,
    source: Path | None,
    url: str | None,
    text_encoder: str,
    console: Any,
    limit_dialogues: int | None = None,
    finetune: dict[str, Any] | None = None,
    media: Any = None,
    dataset_config: Path | None = None,
    dataset_overrides: Sequence[str] = (),
) -> Path:
    """Prepare ``dataset`` (one a plugin declares, e.g. ``meld``) into the folder ``target``; return the manifest.

    ``limit_dialogues`` keeps only the first N dialogues of each split (after the source's checks on
    the full files); tests use it to keep encoding short. The command line always prepares everything.
    ``finetune`` (options of :class:`merc_bench.text_finetune.FinetuneConfig`, ``{}`` for the defaults)
    fine-tunes the text encoder on the train split, selected on dev, before extracting the features.
    ``media`` (a :class:`merc_bench.media_features.MediaOptions`) adds audio and visual features from
    the dataset's media files.
    ``dataset_config`` (a corpus config file) and ``dataset_overrides`` (``dataset.KEY=VALUE``) are the
    options of a source configured like a registered dataset (``data prepare csv``).
    """
    preparable = _preparable(dataset, data_sources())
    target = Path(target)
    options, nonfinite = _dataset_options(preparable, dataset_config, dataset_overrides)
    request = PrepareRequest(target=target, source=Path(source) if source is not None else None, url=url,
                             console=console, dataset_config=options, text_encoder=text_encoder)
    preparable.check(request)
    if limit_dialogues is not None and limit_dialogues < 1:
        raise ValueError("limit_dialogues must be at least 1")
    replacing = _check_target(target)
    encoder, finetune_config = _text_encoder(text_encoder, finetune)
    # Before anything is fetched: a missing extra, decoder or media folder fails now, not after the text.
    media_setup = _media_setup(preparable, media) if media is not None else None

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".prepare"))
    try:
        corpus, parsed = _build_into(staging, name=dataset, preparable=preparable, request=request,
                                     encoder=encoder, limit_dialogues=limit_dialogues, finetune=finetune_config,
                                     media=media, media_setup=media_setup, nonfinite=nonfinite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    others = "".join(f", {m} {d}-d" for m, d in corpus.info.feature_dims.items() if m != "text")
    console.print(f"{'replaced' if replacing else 'wrote'} {target}: {corpus.summary()}; text {encoder.dimension}-d "
                  f"({encoder.name}{', fine-tuned' if finetune_config is not None else ''}){others}", markup=False,
                  highlight=False)
    if parsed.next_step:
        step = parsed.next_step.format(target=target, modalities=",".join(corpus.info.feature_dims))
        console.print(f"next: {step}", markup=False, highlight=False)
    return target / MANIFEST
