"""``merc-bench data prepare``: a dataset from its raw annotations plus text features.

Only MELD is supported. Its three annotation CSVs (Poria et al., ACL 2019; repository
declare-lab/MELD, folder ``data/MELD/``) are downloaded from GitHub at a fixed commit — or copied
from a local folder with ``--from`` — and checked against the sha256 sums embedded below (the
values of shared/data/SHA256SUMS for that commit; nothing outside the package is read at run time).
A file that differs is refused: the error names it, the expected and the actual hash, and nothing
is left in the target folder. The CSVs are parsed by :mod:`merc_bench_datasets.meld_annotations`
(dialogue ids with the SDT/MMGCN offsets, utterances in ``Utterance_ID`` order, speakers by first
appearance, MELD's label order), compared with the published counts (a difference is a warning),
and every utterance is embedded with a registered text encoder (default ``minilm``).

The prepared folder ``DIR`` is a feature store (:mod:`merc_bench.feature_store`: ``manifest.json``
and ``train/dev/test.npz``) that ``merc-bench run ... --dataset meld --data-dir DIR`` reads, plus

* ``DIR/raw/`` — the three verified CSVs, byte for byte;
* ``DIR/cache/`` — the embeddings, one ``.npz`` per split, named by the CSV's sha256, the encoder's
  name and a digest of its version. Preparing into the same ``DIR`` again (a folder written by this
  command is replaced, anything else is refused) reuses them instead of encoding again, and says
  "reused" or "computed" per split. The embeddings are also kept in ``$MERC_BENCH_CACHE/embeddings``
  (the one cache folder of merc-bench, default ``~/.cache/merc-bench``), shared by every prepared
  dataset and the ``conversation-csv`` dataset. A cache file also stores a digest of
  the exact texts it embeds, so a file whose texts no longer match is recomputed, never trusted.

The manifest's provenance records where the files came from (URL or folder), each CSV's sha256 and
size, how the text was decoded, the text encoder's name, version and dimension, which splits were
computed or reused, the count warnings and the creation time. The whole folder is assembled under a
temporary name beside ``DIR`` and renamed into place, so an interrupted prepare leaves nothing
half-written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from merc_bench.data import Corpus, DatasetInfo, Dialogue
from merc_bench.errors import UserError, unknown_name_message
from merc_bench.feature_store import MANIFEST, sha256_file, write_corpus

__all__ = [
    "SUPPORTED", "MELD_COMMIT", "MELD_BASE_URL", "MELD_SHA256", "prepare_command",
    "build_text_encoder", "cached_embeddings", "encode_texts", "texts_digest", "default_cache_dir",
]

SUPPORTED = ("meld",)
#: The declare-lab/MELD commit the checksums belong to (shared/data/README.md).
MELD_COMMIT = "2d2011b409d3ca2d7e94460cd007d434b1d0a102"
MELD_BASE_URL = f"https://raw.githubusercontent.com/declare-lab/MELD/{MELD_COMMIT}/data/MELD/"
#: sha256 of the official CSVs at MELD_COMMIT (shared/data/SHA256SUMS).
MELD_SHA256 = {
    "train_sent_emo.csv": "d2fa2d6529cf03cac2989efec05c9b27d8fd2f4c8fc5974c7ae88aa537fa02db",
    "dev_sent_emo.csv": "2e89c6f8aa182d6f62f8c6331aece905ac7273ca4999660bfb5213e1d0370c1c",
    "test_sent_emo.csv": "8d37103938f7067600839fe29d5a114a6cd1bcdafb75bec101e06464c5006888",
}
PREPARED_BY = "merc-bench data prepare"
# The three CSVs are about 1.6 MB together; a response far larger is not a MELD CSV.
_MAX_DOWNLOAD_BYTES = 64 << 20
_DOWNLOAD_TIMEOUT_S = 60
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


# -- obtaining the raw files ------------------------------------------------------------------------

def _download(url: str, destination: Path) -> None:
    from merc_bench import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"merc-bench/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_S) as response, open(destination, "wb") as out:
            size = 0
            while block := response.read(1 << 16):
                size += len(block)
                if size > _MAX_DOWNLOAD_BYTES:
                    raise UserError(f"{url} is larger than {_MAX_DOWNLOAD_BYTES >> 20} MB, far more than a MELD CSV; "
                                    "check --url.")
                out.write(block)
    except urllib.error.HTTPError as error:
        raise UserError(f"downloading {url} failed: HTTP {error.code} {error.reason}. Check --url, or download the "
                        "three CSVs yourself and pass their folder with --from.") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise UserError(f"downloading {url} failed: {reason}. Without network access, copy the three CSVs "
                        "(train/dev/test_sent_emo.csv) to a folder and pass it with --from.") from None


def _obtain(name: str, *, source: Path | None, base_url: str, destination: Path) -> str:
    """Put the raw file ``name`` at ``destination``; return where it came from."""
    if source is not None:
        origin = source / name
        if not origin.is_file():
            raise UserError(f"{str(origin)!r} does not exist: --from must be a folder holding "
                            f"{', '.join(MELD_SHA256)} (MELD's data/MELD/ files).")
        shutil.copyfile(origin, destination)
        return str(origin.resolve())
    url = urllib.parse.urljoin(base_url, name)
    _download(url, destination)
    return url


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


# -- the command ------------------------------------------------------------------------------------

def prepare_command(
    *,
    dataset: str,
    target: Path,
    source: Path | None,
    url: str | None,
    text_encoder: str,
    console: Any,
    limit_dialogues: int | None = None,
) -> Path:
    """Prepare ``dataset`` (only ``meld``) into the folder ``target``; return the manifest's path.

    ``limit_dialogues`` keeps only the first N dialogues of each split (after the checks on the
    full files); tests use it to keep encoding short. The command line always prepares everything.
    """
    from merc_bench_datasets.meld_annotations import (
        ID_OFFSETS, MAX_SPEAKERS, MELD_CLASSES, SPLIT_FILES, check_counts, read_split,
    )

    if dataset not in SUPPORTED:
        raise UserError(f"`data prepare` cannot prepare {dataset!r}: " +
                        unknown_name_message("preparable dataset", dataset, SUPPORTED) +
                        " Other corpora: convert their feature files with `merc-bench data convert`, or describe "
                        "their CSV files with the conversation-csv dataset.")
    if source is not None and url is not None:
        raise UserError("--from and --url are alternatives: --from copies the CSVs from a folder, --url downloads "
                        "them from another base URL; give one of them.")
    if source is not None and not Path(source).is_dir():
        raise UserError(f"--from {str(source)!r} is not a folder; give the folder that holds "
                        f"{', '.join(MELD_SHA256)}.")
    base_url = url or MELD_BASE_URL
    if urllib.parse.urlparse(base_url).scheme not in ("http", "https", "file"):
        raise UserError(f"--url {base_url!r} is not an http(s):// or file:// URL.")
    if not base_url.endswith("/"):
        base_url += "/"  # urljoin would otherwise replace the last path segment
    if limit_dialogues is not None and limit_dialogues < 1:
        raise ValueError("limit_dialogues must be at least 1")
    target = Path(target)
    replacing = _check_target(target)
    encoder = build_text_encoder(text_encoder)  # fails now, before any download, if the extra is missing

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".prepare"))
    try:
        raw = staging / "raw"
        raw.mkdir()
        files: dict[str, dict[str, Any]] = {}
        parsed = {}
        decoding = {}
        for split, name in SPLIT_FILES.items():
            origin = _obtain(name, source=Path(source) if source is not None else None, base_url=base_url,
                             destination=raw / name)
            actual, expected = sha256_file(raw / name), MELD_SHA256[name]
            if actual != expected:
                raise UserError(
                    f"{name} from {origin} has sha256 {actual}, but the official file (declare-lab/MELD commit "
                    f"{MELD_COMMIT[:7]}) has {expected}: it was modified, damaged or is another release. Nothing "
                    f"was written to {str(target)!r}."
                )
            files[name] = {"origin": origin, "sha256": actual, "bytes": (raw / name).stat().st_size}
            dialogues, decoded = read_split(raw / name, split)
            decoding[name] = {"encoding": decoded.encoding, "mojibake_fixed": decoded.mojibake_fixed}
            parsed[split] = dialogues
            console.print(f"{name}: sha256 ok, {len(dialogues)} dialogues, {sum(len(d) for d in dialogues)} "
                          f"utterances", markup=False, highlight=False)
        warnings = check_counts(parsed)
        for warning in warnings:
            console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)
        if limit_dialogues is not None:
            parsed = {split: dialogues[:limit_dialogues] for split, dialogues in parsed.items()}

        # Embeddings: read from an earlier prepare's DIR/cache or the shared cache ($MERC_BENCH_CACHE/
        # embeddings, where conversation-csv corpora keep theirs); written into the new folder's own
        # cache, so a prepared folder is complete without the shared one.
        read_dirs = [target / "cache", default_cache_dir()]
        write_dir = staging / "cache"
        splits: dict[str, list[Dialogue]] = {}
        embedding_status = {}
        for split, dialogues in parsed.items():
            name = SPLIT_FILES[split]
            texts = [text for dialogue in dialogues for text in dialogue.texts]
            tag = split if limit_dialogues is None else f"{split}-first{limit_dialogues}"
            started = time.perf_counter()
            vectors, status = cached_embeddings(
                encoder, texts,
                file_name=cache_file_name(source_sha256=files[name]["sha256"], encoder=encoder, tag=tag),
                read_dirs=read_dirs, write_dir=write_dir, console=console,
                description=f"{encoder.name} {split} ({len(texts)} utterances)",
            )
            seconds = time.perf_counter() - started
            embedding_status[split] = status
            console.print(f"text features {split}: {status} ({len(texts)} × {vectors.shape[1]}, {seconds:.1f} s)",
                          markup=False, highlight=False)
            bounds = np.cumsum([0] + [len(d) for d in dialogues])
            splits[split] = [
                Dialogue(id=d.id, features={"text": vectors[bounds[i] : bounds[i + 1]]}, speakers=d.speakers,
                         labels=d.labels)
                for i, d in enumerate(dialogues)
            ]

        info = DatasetInfo(
            name="meld", family="meld", classes=MELD_CLASSES, feature_dims={"text": int(encoder.dimension)},
            num_speakers=MAX_SPEAKERS,
            description=f"MELD (Poria et al., ACL 2019) from its annotation CSVs; text features: {encoder.name}",
        )
        provenance = {
            "prepared_by": f"{PREPARED_BY} meld",
            "source": str(Path(source).resolve()) if source is not None else base_url,
            "source_kind": "folder" if source is not None else "download",
            "meld_commit": MELD_COMMIT,
            "files": files,
            "decoding": decoding,
            "text_handling": "utterances kept as written (UTF-8; C1 mojibake mapped to cp1252 punctuation)",
            "dialogue_ids": f"train Dialogue_ID, dev {ID_OFFSETS['dev']} + Dialogue_ID, "
                            f"test {ID_OFFSETS['test']} + Dialogue_ID",
            "speakers": f"order of first appearance within each dialogue (at most {MAX_SPEAKERS})",
            "text_encoder": {"name": encoder.name, "version": str(encoder.version),
                             "dimension": int(encoder.dimension)},
            "embeddings": embedding_status,
            "embedding_cache": "cache/",
            "count_warnings": warnings,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        if limit_dialogues is not None:
            provenance["limit_dialogues"] = limit_dialogues
        corpus = Corpus(info=info, train=splits["train"], dev=splits["dev"], test=splits["test"])
        store = staging / "dataset"
        write_corpus(corpus, store, provenance=provenance)
        os.chmod(store, 0o777 & ~_umask())  # temporary folders are created owner-only
        os.replace(raw, store / "raw")
        if (staging / "cache").exists():
            os.replace(staging / "cache", store / "cache")
        # Swap into place: the previous folder (empty, or an earlier prepare) is kept until the new one is in.
        if target.exists():
            previous = staging / "previous"
            os.replace(target, previous)
            try:
                os.replace(store, target)
            except BaseException:
                os.replace(previous, target)
                raise
        else:
            os.replace(store, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    console.print(f"{'replaced' if replacing else 'wrote'} {target}: {corpus.summary()}; text {encoder.dimension}-d "
                  f"({encoder.name})", markup=False, highlight=False)
    console.print(f"next: merc-bench run sdt --dataset meld --data-dir {target} --modalities text",
                  markup=False, highlight=False)
    return target / MANIFEST
