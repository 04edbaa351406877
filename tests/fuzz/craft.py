"""Byte-exact builders shared by the data fuzz generators (make_folders, make_csv, make_npy).

Everything here is deterministic: ``.npy`` bytes from ``numpy.lib.format``, headers written by hand
when they must lie, zips with fixed timestamps, and a small valid MELD-shaped corpus (7 classes, 9
speaker slots, text 4 / audio 3 features) computed from integers, not from a random
generator, so a rerun writes the same bytes on any machine.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

MELD_CLASSES = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
DIMS = {"text": 4, "audio": 3}
#: Dialogue ids and lengths per split (ids as the MELD feature files number them).
SPLITS = {
    "train": [("0", 3), ("1", 2), ("2", 4), ("3", 3)],
    "dev": [("1039", 2), ("1040", 3)],
    "test": [("1153", 3), ("1154", 2)],
}
#: A canary the pickle payloads try to create; the tests point it at a temporary file.
CANARY_VARIABLE = "MERC_FUZZ_CANARY"
_DATE = (1980, 1, 1, 0, 0, 0)


def feature_matrix(rows: int, dim: int, offset: int) -> np.ndarray:
    """Small, distinct, exactly representable float32 values."""
    grid = np.arange(rows * dim, dtype=np.int64).reshape(rows, dim) + offset
    return (((grid * 7) % 11 - 5) / 4).astype(np.float32)


def split_arrays(split: str) -> dict[str, np.ndarray]:
    """The arrays of one valid split file, in the order merc-bench writes them."""
    dialogues = SPLITS[split]
    count = sum(n for _, n in dialogues)
    offset = {"train": 0, "dev": 100, "test": 200}[split]
    speakers = np.concatenate([np.arange(n) % (2 + i % 2) for i, (_, n) in enumerate(dialogues)]).astype(np.int64)
    arrays = {
        "ids": np.asarray([d for d, _ in dialogues], dtype=str),
        "lengths": np.asarray([n for _, n in dialogues], dtype=np.int64),
        "speakers": speakers,
        "labels": ((np.arange(count) + offset) % len(MELD_CLASSES)).astype(np.int64),
    }
    for index, (modality, dim) in enumerate(DIMS.items()):
        arrays[f"features_{modality}"] = feature_matrix(count, dim, offset + 10 * index)
    return arrays


def npy_bytes(array: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    stream = io.BytesIO()
    np.lib.format.write_array(stream, array, version=(1, 0), allow_pickle=allow_pickle)
    return stream.getvalue()


def npy_header(descr: str, shape: tuple, *, fortran: bool = False, version: tuple[int, int] = (1, 0),
               raw: str | None = None) -> bytes:
    """A ``.npy`` magic string and header declaring ``descr``/``shape`` (or the literal ``raw`` text)."""
    text = raw if raw is not None else repr({"descr": descr, "fortran_order": fortran, "shape": shape})
    body = text.encode("latin1")
    size_format = "<H" if version == (1, 0) else "<I"
    prefix = 10 if version == (1, 0) else 12
    padding = (-(prefix + len(body) + 1)) % 64
    body += b" " * padding + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack(size_format, len(body)) + body


def zip_bytes(members: list[tuple[str, bytes]], *, compression: int = zipfile.ZIP_STORED) -> bytes:
    stream = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(stream, "w") as archive:
        warnings.simplefilter("ignore")  # a duplicated member name is what one case is about
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=_DATE)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return stream.getvalue()


def raw_zip(entries: list[dict]) -> bytes:
    """A zip written field by field, so sizes and CRCs can lie.

    Each entry: ``name``, ``data`` (the stored or compressed bytes), optional ``method`` (0 stored,
    8 deflated), ``size`` (the declared uncompressed size; ZIP64 fields from 4 GiB on) and ``crc``.
    """
    body, directory = b"", b""
    for entry in entries:
        name, data = entry["name"].encode(), entry["data"]
        method, size, crc = entry.get("method", 0), entry.get("size", len(data)), entry.get("crc", zlib.crc32(data))
        if size >= 0xFFFFFFFF:
            extra, sizes, version = struct.pack("<HHQQ", 1, 16, size, len(data)), (0xFFFFFFFF, 0xFFFFFFFF), 45
        else:
            extra, sizes, version = b"", (len(data), size), 20
        offset = len(body)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, version, 0, method, 0, 33, crc, *sizes, len(name),
                            len(extra)) + name + extra + data
        directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, version, version, 0, method, 0, 33, crc, *sizes,
                                 len(name), len(extra), 0, 0, 0, 0o644 << 16, offset) + name + extra
    count = len(entries)
    return body + directory + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(directory), len(body), 0)


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    return zip_bytes([(f"{name}.npy", npy_bytes(array)) for name, array in arrays.items()])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(blobs: dict[str, bytes], arrays: dict[str, dict[str, np.ndarray]]) -> dict:
    """The manifest merc-bench writes for these split files (hashes of ``blobs``, facts of ``arrays``)."""
    splits = {}
    for split, split_arrays_ in arrays.items():
        labels = split_arrays_["labels"]
        splits[split] = {
            "file": f"{split}.npz",
            "sha256": sha256(blobs[split]),
            "dialogues": int(len(split_arrays_["ids"])),
            "utterances": int(len(labels)),
            "class_counts": np.bincount(labels, minlength=len(MELD_CLASSES)).tolist(),
            "ids": [str(i) for i in split_arrays_["ids"]],
        }
    return {
        "format": "merc-bench-features",
        "format_version": 1,
        "dataset": {"name": "meld", "family": "meld", "classes": list(MELD_CLASSES), "feature_dims": dict(DIMS),
                    "num_speakers": 9, "description": "fuzz corpus base (tests/fuzz/craft.py)"},
        "splits": splits,
        "provenance": {"source": "tests/fuzz/craft.py", "layout": "crafted", "warnings": []},
        "created": "2026-01-01T00:00:00+00:00",
        "merc_bench_version": "0.1.0",
    }


def pickle_payload() -> bytes:
    """A pickle that would run ``touch "$MERC_FUZZ_CANARY"`` if anything ever unpickled it."""
    command = f'touch "${CANARY_VARIABLE}"'.encode()
    # PROTO 2, GLOBAL posix.system, the command, TUPLE1, REDUCE, STOP: written out so no class is needed.
    return (b"\x80\x02cposix\nsystem\n" + b"X" + struct.pack("<I", len(command)) + command + b"\x85R.")


def pickled_npy(shape: tuple = (1,)) -> bytes:
    """A ``.npy`` of dtype object whose data is :func:`pickle_payload` (what ``allow_pickle=True`` would run)."""
    return npy_header("|O", shape) + pickle_payload()


def write_tree(root: Path, files: dict[str, bytes | str]) -> None:
    """Write ``files`` (relative path -> bytes, or ``"->target"`` for a symlink) under ``root``.

    No empty folders: git would not keep them, and a clone would then differ from a fresh run.
    """
    for relative, content in sorted(files.items()):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str) and content.startswith("->"):
            os.symlink(content[2:], path)
        else:
            path.write_bytes(content)


def write_index(root: Path, entries: list[dict]) -> None:
    (root / "INDEX.json").write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its sha256 (files) or link target (symlinks), to compare two trees."""
    state = {}
    for folder, folders, files in os.walk(root):  # does not follow symlinks
        for name in folders + files:
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                state[relative] = "-> " + os.readlink(path)
            elif path.is_dir():
                state[relative] = "<dir>"
            else:
                state[relative] = sha256(path.read_bytes())
    return dict(sorted(state.items()))


# -- conversation-csv ------------------------------------------------------------------------------
EMOTIONS = ["angry", "calm", "happy", "sad"]
CSV_COLUMNS = ["dialogue_id", "utterance_id", "speaker", "label", "text"]
#: The options every conversation-csv case starts from (files relative to the case folder, given as
#: --data-dir); a case adds or replaces some.
CSV_SETS = [
    "dataset.train=train.csv", "dataset.dev=dev.csv", "dataset.test=test.csv", "dataset.text_encoder=null",
    "dataset.features.audio.train=train_audio.npy", "dataset.features.audio.dev=dev_audio.npy",
    "dataset.features.audio.test=test_audio.npy", "model.hidden_size=8",
]


def csv_rows(split: str) -> list[list[str]]:
    """One row per utterance of ``split`` (the same dialogues as the converted-folder base)."""
    rows = []
    offset = {"train": 0, "dev": 100, "test": 200}[split]
    people = ["Ann", "Bob", "Cy"]
    for number, (dialogue, length) in enumerate(SPLITS[split]):
        for turn in range(length):
            index = offset + len(rows)
            rows.append([f"{split}-{dialogue}", str(10 * turn), people[(turn + number) % (2 + number % 2)],
                         EMOTIONS[index % len(EMOTIONS)], f"utterance {turn} of {dialogue}, with a comma"])
    return rows


def csv_text(rows: list[list[str]], columns: list[str] = CSV_COLUMNS, *, newline: str = "\r\n") -> str:
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator=newline)
    writer.writerow(columns)
    writer.writerows(rows)
    return stream.getvalue()


def csv_files() -> dict[str, bytes]:
    """A valid conversation-csv case: three CSVs and one audio .npy per split."""
    files = {}
    for split in SPLITS:
        rows = csv_rows(split)
        files[f"{split}.csv"] = csv_text(rows).encode()
        offset = {"train": 0, "dev": 100, "test": 200}[split]
        files[f"{split}_audio.npy"] = npy_bytes(feature_matrix(len(rows), 3, offset))
    return files


def csv_argv(command: str, folder: Path, sets: list[str], out: Path | None = None) -> list[str]:
    """``merc-bench validate``/``run`` arguments for a conversation-csv case folder."""
    argv = [command, "bigru-concat", "--dataset", "conversation-csv", "--data-dir", str(folder)]
    if command == "run":
        argv += ["--epochs", "1", "--no-track", "--out", str(out)]
    for option in sets:
        argv += ["--set", option]
    return argv
