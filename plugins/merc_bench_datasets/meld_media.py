"""Where MELD's utterance clips are: the MELD.Raw layout, for ``data prepare meld --media-dir PATH``.

MELD.Raw (the public ``MELD.Raw.tar.gz`` of Poria et al., ACL 2019) holds one ``.mp4`` per utterance,
named ``dia{Dialogue_ID}_utt{Utterance_ID}.mp4`` after the CSVs' columns (the ids as written, not
the community ids with their split offsets), in one folder per split. Accepted for ``PATH``, per split
(the first that exists wins):

1. ``PATH/train/train_splits/``, ``PATH/dev/dev_splits_complete/``, ``PATH/test/output_repeated_splits_test/``
   — the three archives inside MELD.Raw each extracted into a folder named after the split;
2. ``PATH/train_splits/``, ``PATH/dev_splits_complete/``, ``PATH/output_repeated_splits_test/``
   — the three archives extracted side by side;
3. ``PATH/train/``, ``PATH/dev/``, ``PATH/test/`` holding the ``dia*_utt*.mp4`` files directly.

A split with none of these folders gets the first one's paths, so each of its utterances is listed
as missing (or skipped with ``--skip-missing``); a ``PATH`` where no split has a folder is refused
with the list above. Some clips of the public release are known to be missing or broken, which is
what ``--skip-missing`` is for. File names are built from the CSVs' integer ids, never from text in
the files, so no path can leave the split folder.
"""

from __future__ import annotations

from pathlib import Path

from merc_bench.data_sources import MediaFiles, RawCorpus
from merc_bench.errors import UserError

__all__ = ["SPLIT_FOLDERS", "LAYOUTS", "media_files"]

#: split -> the folder its MELD.Raw archive extracts to
SPLIT_FOLDERS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
LAYOUTS = ("MELD.Raw: PATH/{train/train_splits, dev/dev_splits_complete, test/output_repeated_splits_test}/"
           "dia{D}_utt{U}.mp4, or those three folders directly in PATH, or PATH/{train,dev,test}/dia{D}_utt{U}.mp4")


def _candidates(root: Path, split: str) -> list[Path]:
    folder = SPLIT_FOLDERS[split]
    return [root / split / folder, root / folder, root / split]


def _split_folder(root: Path, split: str) -> Path | None:
    for candidate in _candidates(root, split):
        if candidate.is_dir() and (candidate.name == SPLIT_FOLDERS[split] or any(candidate.glob("dia*_utt*.mp4"))):
            return candidate
    return None


def media_files(media_dir: Path, parsed: RawCorpus) -> MediaFiles:
    """One expected ``.mp4`` per utterance of ``parsed`` (MELD dialogues with their CSV ids), per split."""
    root = Path(media_dir)
    if not root.is_dir():
        raise UserError(f"--media-dir {str(root)!r} is not a folder; give the folder of MELD's clips ({LAYOUTS}).")
    folders = {split: _split_folder(root, split) for split in parsed.splits}
    if not any(folders.values()):
        looked = ", ".join(str(path) for split in parsed.splits for path in _candidates(root, split))
        raise UserError(f"--media-dir {str(root)!r} holds none of MELD's split folders (looked for {looked}). "
                        f"Accepted layouts: {LAYOUTS}.")
    files: dict[str, list[Path]] = {}
    layout: dict[str, str] = {}
    for split, dialogues in parsed.splits.items():
        folder = folders[split] or _candidates(root, split)[0]
        layout[split] = str(folder.relative_to(root)) + ("" if folders[split] else " (not found)")
        files[split] = [folder / f"dia{dialogue.dialogue_id}_utt{utterance}.mp4"
                        for dialogue in dialogues for utterance in dialogue.utterance_ids]
    return MediaFiles(files=files, layout=layout)
