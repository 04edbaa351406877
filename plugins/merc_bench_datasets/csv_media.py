"""The ``conversation-csv`` dataset's media column: audio and visual features from one clip per row.

With ``media_column`` set, each row names its utterance's audio/video file; the file is decoded with
ffmpeg and given to the registered ``audio_encoder`` / ``visual_encoder`` (default ``is10`` and
``frame-stats``; null for none) by :mod:`merc_bench.media_features`, for each of those modalities
that has no ``.npy`` features (``.npy`` files win: the media column then serves the other modality).

**Paths** in the column are relative to ``media_root`` (default: the folder of the row's CSV file)
and are hostile input like the rest of the file. Refused per row, with the file, line and value: an
empty cell; an absolute path (``/…``, ``~…``, ``C:\\…``); a path with a ``..`` part (a path may not
leave the media folder by name — a symbolic link inside it that points elsewhere is followed, since
the user put it there); a NUL byte or more than 4096 characters. Separators are ``/``.

**Bad files** (missing, empty, undecodable, too long) are all listed in one error, like those of
``data prepare --media-dir``; with ``media_policy = "skip"`` those utterances get zero features for
the affected modality and the corpus' provenance lists them (``media.skipped``). Features are cached
per file content and encoder in ``media/`` of ``cache_dir``'s parent (default ``$MERC_BENCH_CACHE``).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from merc_bench.errors import preview
from merc_bench.media_features import MEDIA_KINDS, MediaItem, build_media_encoder, extract_media_features

__all__ = ["cell_problem", "media_features"]

_MAX_PATH_CHARS = 4096


def cell_problem(value: str) -> str | None:
    """Why a media-column cell is not a usable relative path, or None."""
    if not value:
        return "the media path cell is empty"
    if "\x00" in value or len(value) > _MAX_PATH_CHARS:
        return f"not a usable path ({'a NUL byte' if chr(0) in value else f'over {_MAX_PATH_CHARS} characters'})"
    if value.startswith(("/", "~", "\\")) or PureWindowsPath(value).drive:
        return "an absolute path; media paths are relative to dataset.media_root (default: the CSV's folder)"
    if ".." in PurePosixPath(value).parts or ".." in PureWindowsPath(value).parts:
        return "has a '..' part; a media path may not leave dataset.media_root"
    return None


def media_features(tables: dict[str, Any], structure: dict[str, list], *, column: str, root: Path | None,
                   encoder_names: dict[str, str], skip: bool, max_seconds: float, cache: Path, console: Any = None
                   ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int], dict[str, Any]]:
    """split -> modality -> (rows, D) features in each table's row order; each modality's D; the provenance."""
    from merc_bench.media import find_decoder

    encoders = {modality: build_media_encoder(MEDIA_KINDS[modality], name) for modality, name in encoder_names.items()}
    decoder = find_decoder()
    items: dict[str, list[MediaItem]] = {}
    for split, table in tables.items():
        place = {row: (key, position) for key, members, *_ in structure[split] for position, row in enumerate(members)}
        folder = root if root is not None else table.path.parent
        items[split] = []
        for row, (cells, line) in enumerate(zip(table.rows, table.lines)):
            value = cells[column].strip()
            key, position = place[row]
            shown = f"{table.path.name} line {line}: {preview(value, 60)}"
            problem = cell_problem(value)
            path = folder / value if problem is None else folder
            items[split].append(MediaItem(split, key, position, path, shown, problem))
    result = extract_media_features(items, encoders, decoder=decoder, read_dirs=[cache], write_dirs=[cache],
                                    skip_missing=skip, max_seconds=max_seconds, console=console,
                                    skip_hint="dataset.media_policy=skip")
    features = {split: {m: result.features[m][split] for m in encoders} for split in tables}
    provenance = {
        "column": column, "root": str(root.resolve()) if root is not None else "each CSV's folder",
        "decoder": decoder.describe(), "max_seconds": max_seconds, "policy": "skip" if skip else "error",
        **{f"{m}_encoder": {"name": e.name, "version": str(e.version), "dimension": int(e.dimension)}
           for m, e in encoders.items()},
        "features": result.status, "skipped": result.skipped,
    }
    return features, {m: int(e.dimension) for m, e in encoders.items()}, provenance
