"""Audio and visual features per utterance from media files, cached by file content and encoder.

Used by ``merc-bench data prepare NAME --media-dir PATH`` (:mod:`merc_bench.prepare`) and by the
``conversation-csv`` dataset's ``media_column``. The caller names one media file per utterance; this
module decodes each file with ffmpeg (:mod:`merc_bench.media`, bounded in time and memory) and runs
the registered ``audio_encoder`` and ``visual_encoder`` components on it:

* an **audio encoder** has ``name``, ``version``, ``dimension`` (D) and ``sample_rate`` (Hz) and
  ``encode(clips) -> (n, D) float32``, each clip mono float32 samples in [-1, 1] at that rate, (S,);
* a **visual encoder** has ``name``, ``version``, ``dimension``, ``frame_rate`` (frames per second
  sampled) and ``frame_size`` ((width, height) every frame is scaled to) and ``encode(clips) ->
  (n, D) float32``, each clip uint8 RGB frames (T, height, width, 3).

**Cache.** One ``.npy`` vector per (file, encoder), in ``media/<encoder>-<key>/<sha[:2]>/<sha256>.npy``
where ``sha256`` is the media file's and ``key`` a digest of the encoder's name, version, dimension,
options and decoding settings. Vectors are looked up in the given folders (a prepared folder's
``cache/``, then ``$MERC_BENCH_CACHE``) and written to both, as soon as each is computed: a re-run
does not decode again, and neither does a run that failed on other files and is repeated after they
are fixed.

**Bad files.** A missing, empty, oversized, undecodable or too long file (or one whose encoder output
is not finite) is collected, not raised on the spot: after the pass, without ``skip_missing`` one
:class:`UserError` lists them all (the first :data:`LISTED_PROBLEMS` with their reasons, then a
count) and nothing is written; with it, each such utterance gets a **zero vector** for that modality
and is recorded (split, dialogue, utterance, file, modalities, reason) in the result's ``skipped``,
which ``data prepare`` puts in the manifest. Zeros keep every dialogue whole and every labelled
utterance in the evaluation, so scores stay comparable with the published splits; the alternative,
dropping those utterances, would change the dialogues' context and the test set (MELD's test set is
2610 utterances in every paper). A zero vector is not a mask: a model sees it as an input; the
manifest says which utterances have it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from merc_bench.errors import UserError
from merc_bench.media import Decoder, MediaError, decode_audio, decode_frames

__all__ = ["MediaItem", "MediaOptions", "MediaResult", "build_media_encoder", "extract_media_features", "MEDIA_KINDS",
           "LISTED_PROBLEMS", "MAX_MEDIA_FILE_BYTES", "DEFAULT_MAX_SECONDS", "MAX_SECONDS_LIMIT"]

#: modality -> the registry kind of its encoders
MEDIA_KINDS = {"audio": "audio_encoder", "visual": "visual_encoder"}
#: Bad files named in one error; the rest are counted.
LISTED_PROBLEMS = 20
#: A media file larger than this is refused before it is hashed or decoded (a MELD clip is < 20 MB).
MAX_MEDIA_FILE_BYTES = 2 << 30
#: Seconds of audio/video decoded per utterance at most (MELD's longest clip is about 305 s).
DEFAULT_MAX_SECONDS = 600.0
#: The largest per-utterance limit accepted: two hours.
MAX_SECONDS_LIMIT = 7200.0
# Files decoded at once (ffmpeg runs in threads while the encoders work): bounds the memory in flight.
_CHUNK = 16


@dataclass(frozen=True)
class MediaItem:
    """One utterance's media file, and where the utterance is (for messages and the manifest)."""

    split: str
    dialogue: str
    utterance: int  # position in the dialogue, 0-based
    path: Path
    shown: str  # how messages name the file (relative to the media folder when inside it)
    problem: str | None = None  # why no file can be read for it at all (a refused path cell), found by the caller


@dataclass(frozen=True)
class MediaOptions:
    """What ``data prepare --media-dir`` was asked for (encoders by registered name; None: that modality not)."""

    media_dir: Path
    audio_encoder: str | None = "is10"
    visual_encoder: str | None = "frame-stats"
    skip_missing: bool = False
    max_seconds: float = DEFAULT_MAX_SECONDS

    def encoder_names(self) -> dict[str, str]:
        """modality -> encoder name, for the modalities asked for."""
        names = {"audio": self.audio_encoder, "visual": self.visual_encoder}
        return {modality: name for modality, name in names.items() if name}


@dataclass
class MediaResult:
    """Per modality and split the (N, D) float32 features in the items' order, and what happened."""

    features: dict[str, dict[str, np.ndarray]]
    status: dict[str, dict[str, int]]  # modality -> {"computed": n, "reused": n, "skipped": n}
    skipped: list[dict[str, Any]] = field(default_factory=list)


def build_media_encoder(kind: str, name: str, options: dict[str, Any] | None = None, *, registry: Any = None) -> Any:
    """Instantiate the registered ``audio_encoder`` / ``visual_encoder`` ``name`` (UserError if unknown or unusable)."""
    if registry is None:
        from merc_bench.plugins import get_registry

        registry = get_registry()
    entry = registry.get(kind, name)
    config = entry.make_config(options or {}, where=kind.replace("_", " "))
    encoder = entry.build(config, {})
    needed = ("name", "version", "dimension") + (("sample_rate",) if kind == "audio_encoder" else
                                                 ("frame_rate", "frame_size"))
    for attribute in needed:
        if getattr(encoder, attribute, None) in (None, ""):
            raise RuntimeError(f"{kind} {name!r} ({entry.plugin}) lacks the attribute {attribute!r}")
    # Part of the cache key: two configurations of one encoder never share vectors.
    encoder.options = config.model_dump(mode="json")
    return encoder


def _encoder_key(modality: str, encoder: Any) -> str:
    """The cache folder of one encoder: its name (file-name safe) and a digest of everything that shapes its vectors."""
    facts = {"name": encoder.name, "version": str(encoder.version), "dimension": int(encoder.dimension),
             "options": getattr(encoder, "options", {})}
    if modality == "audio":
        facts["sample_rate"] = int(encoder.sample_rate)
    else:
        facts.update(frame_rate=float(encoder.frame_rate), frame_size=[int(v) for v in encoder.frame_size])
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{re.sub(r'[^A-Za-z0-9._-]', '_', encoder.name)}-{digest}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _cache_path(folder: Path, key: str, sha256: str) -> Path:
    return folder / "media" / key / sha256[:2] / f"{sha256}.npy"


def _read_vector(path: Path, dimension: int) -> np.ndarray | None:
    try:
        vector = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None  # missing or damaged: compute again rather than fail
    if vector.shape != (dimension,) or vector.dtype != np.float32 or not np.isfinite(vector).all():
        return None
    return vector


def _write_vector(path: Path, vector: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.save(stream, vector, allow_pickle=False)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)  # mkstemp makes it owner-only; a cache may be shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a media file before decoding it, or None."""
    if not path.exists():
        return "missing"
    if not path.is_file():
        return "not a regular file"
    size = path.stat().st_size
    if size == 0:
        return "empty (0 bytes)"
    if size > MAX_MEDIA_FILE_BYTES:
        return f"{size:,} bytes, more than the {MAX_MEDIA_FILE_BYTES:,} a media file may have"
    return None


def _decode(decoder: Decoder, path: Path, modalities: Sequence[str], encoders: dict[str, Any], max_seconds: float
            ) -> dict[str, np.ndarray | MediaError]:
    """The decoded clip per modality asked for, or the MediaError that stopped it (runs in a worker thread)."""
    decoded: dict[str, np.ndarray | MediaError] = {}
    for modality in modalities:
        encoder = encoders[modality]
        try:
            if modality == "audio":
                decoded[modality] = decode_audio(decoder, path, sample_rate=int(encoder.sample_rate),
                                                 max_seconds=max_seconds)
            else:
                decoded[modality] = decode_frames(decoder, path, frame_rate=float(encoder.frame_rate),
                                                  frame_size=tuple(encoder.frame_size), max_seconds=max_seconds)
        except MediaError as error:
            decoded[modality] = error
    return decoded


def _encode(modality: str, encoder: Any, clips: list[np.ndarray]) -> np.ndarray:
    """The encoder's vectors for ``clips``: (n, D) float32, shape checked (a wrong shape is the plugin's bug)."""
    vectors = np.asarray(encoder.encode(clips), dtype=np.float32)
    if vectors.shape != (len(clips), int(encoder.dimension)):
        raise RuntimeError(f"{modality} encoder {encoder.name!r} returned shape {vectors.shape} for {len(clips)} "
                           f"clips; expected ({len(clips)}, {encoder.dimension})")
    return vectors


class _Extraction:
    """One pass over the items: cache look-ups, decoding in worker threads, encoding, the list of problems."""

    def __init__(self, items: dict[str, list[MediaItem]], encoders: dict[str, Any], *, decoder: Decoder,
                 read_dirs: Sequence[Path], write_dirs: Sequence[Path], max_seconds: float) -> None:
        self.modalities = [m for m in MEDIA_KINDS if m in encoders]
        self.encoders, self.decoder, self.max_seconds = encoders, decoder, max_seconds
        self.read_dirs, self.write_dirs = [Path(f) for f in read_dirs], [Path(f) for f in write_dirs]
        self.keys = {m: _encoder_key(m, encoders[m]) for m in self.modalities}
        # (N, D) per modality and split, zeros until filled: a skipped utterance keeps its zeros
        self.features = {m: {split: np.zeros((len(batch), int(encoders[m].dimension)), np.float32)
                             for split, batch in items.items()} for m in self.modalities}
        self.status = {m: {"computed": 0, "reused": 0, "skipped": 0} for m in self.modalities}
        self.problems: list[tuple[MediaItem, str, str]] = []  # (item, "audio,visual", reason)
        self._hashes: dict[Path, str] = {}

    def _store(self, modality: str, sha: str, vector: np.ndarray, *, only_if_absent: bool) -> None:
        for folder in self.write_dirs:
            path = _cache_path(folder, self.keys[modality], sha)
            if not only_if_absent or _read_vector(path, vector.shape[0]) is None:
                _write_vector(path, vector)

    def lookup(self, split: str, row: int, item: MediaItem) -> tuple[int, MediaItem, str, list[str]] | None:
        """Fill what the cache holds; return what is left to decode (row, item, sha256, modalities), or None."""
        problem = item.problem or _file_problem(item.path)
        if problem is not None:
            self.problems.append((item, ",".join(self.modalities), problem))
            return None
        sha = self._hashes.get(item.path) or self._hashes.setdefault(item.path, _sha256(item.path))
        missing = []
        for modality in self.modalities:
            dimension = int(self.encoders[modality].dimension)
            vector = next((v for folder in self.read_dirs if (v := _read_vector(
                _cache_path(folder, self.keys[modality], sha), dimension)) is not None), None)
            if vector is None:
                missing.append(modality)
                continue
            self.features[modality][split][row] = vector
            self.status[modality]["reused"] += 1
            self._store(modality, sha, vector, only_if_absent=True)
        return (row, item, sha, missing) if missing else None

    def compute(self, split: str, pending: list[tuple[int, MediaItem, str, list[str]]], pool: Any) -> None:
        """Decode ``pending`` in the pool's threads, encode per modality, fill and cache the vectors."""
        decoded = list(pool.map(lambda p: _decode(self.decoder, p[1].path, p[3], self.encoders, self.max_seconds),
                                pending))
        for modality in self.modalities:
            good = []
            for entry, clips in zip(pending, decoded):
                clip = clips.get(modality)
                if isinstance(clip, MediaError):
                    self.problems.append((entry[1], modality, clip.reason))
                elif clip is not None:
                    good.append((entry, clip))
            if not good:
                continue
            encoder = self.encoders[modality]
            vectors = _encode(modality, encoder, [clip for _entry, clip in good])
            for ((row, item, sha, _missing), _clip), vector in zip(good, vectors):
                if not np.isfinite(vector).all():
                    self.problems.append((item, modality, f"the {modality} encoder {encoder.name!r} returned NaN "
                                                          "or infinite values for it"))
                    continue
                self.features[modality][split][row] = vector
                self.status[modality]["computed"] += 1
                self._store(modality, sha, vector, only_if_absent=False)

    def skipped(self) -> list[dict[str, Any]]:
        """The problems as manifest entries, one per (utterance, reason) with the modalities it lost (one entry
        for a missing file, not one per modality: MELD's ~14k utterances stay well inside a manifest's bound);
        counts them in ``status``."""
        entries: dict[tuple[str, str, int, str], dict[str, Any]] = {}
        for item, modality_list, reason in self.problems:
            entry = entries.setdefault((item.split, item.dialogue, item.utterance, reason), {
                "split": item.split, "dialogue": item.dialogue, "utterance": item.utterance, "file": item.shown,
                "modalities": [], "reason": reason})
            for modality in modality_list.split(","):
                self.status[modality]["skipped"] += 1
                entry["modalities"].append(modality)
        return list(entries.values())


def extract_media_features(
    items: dict[str, list[MediaItem]],
    encoders: dict[str, Any],
    *,
    decoder: Decoder,
    read_dirs: Sequence[Path],
    write_dirs: Sequence[Path],
    skip_missing: bool,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    console: Any = None,
    workers: int | None = None,
    skip_hint: str = "--skip-missing",
) -> MediaResult:
    """Features of every item for every modality in ``encoders`` ({"audio": encoder, "visual": encoder}).

    See the module docstring for the cache and the bad-file policy. ``skip_hint`` names the option
    that turns skipping on, for the error message.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    extraction = _Extraction(items, encoders, decoder=decoder, read_dirs=read_dirs, write_dirs=write_dirs,
                             max_seconds=max_seconds)
    total = sum(len(batch) for batch in items.values())
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console or Console(stderr=True), transient=False) as progress, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        task = progress.add_task(f"media features ({', '.join(extraction.modalities)})", total=total)
        for split, batch in items.items():
            for start in range(0, len(batch), _CHUNK):
                chunk = batch[start : start + _CHUNK]
                pending = [left for row, item in enumerate(chunk, start)
                           if (left := extraction.lookup(split, row, item)) is not None]
                if pending:
                    extraction.compute(split, pending, pool)
                progress.advance(task, len(chunk))
    if extraction.problems and not skip_missing:
        raise UserError(_problems_message(extraction.problems, total, skip_hint))
    skipped = extraction.skipped()
    return MediaResult(features=extraction.features, status=extraction.status, skipped=skipped)


def _problems_message(problems: list[tuple[MediaItem, str, str]], total: int, skip_hint: str) -> str:
    by_file: dict[str, list[str]] = {}
    for item, modality, reason in problems:
        by_file.setdefault(item.shown, [])
        entry = f"{reason} ({modality.replace(',', ' and ')})"
        if entry not in by_file[item.shown]:
            by_file[item.shown].append(entry)
    listed = [f"{name}: {'; '.join(reasons)}" for name, reasons in list(by_file.items())[:LISTED_PROBLEMS]]
    more = f"; and {len(by_file) - LISTED_PROBLEMS} more files" if len(by_file) > LISTED_PROBLEMS else ""
    return (f"{len(by_file)} of {total} utterances' media files cannot be used: " + " | ".join(listed) + more +
            f". Each utterance needs a readable media file with the modalities asked for. Fix or replace those files, "
            f"or pass {skip_hint} to give those utterances zero features for the affected modality (recorded in the "
            "manifest). Features of the good files are cached, so running again does not decode them again.")
