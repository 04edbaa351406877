"""Write the ``csv`` fuzz category: crafted ``conversation-csv`` datasets.

csv: conversation-csv files in wrong encodings (UTF-16/32, NUL bytes, binary garbage; BOM and
cp1252 as valid controls), broken quoting (unclosed quotes, a field past the csv module's limit,
stray quotes), missing or duplicated columns, ragged rows, empty files, repeated or non-numeric
utterance orders, empty ids, labels and speakers, speaker cells listing several speakers, dialogue
keys naming missing columns, a single class, labels outside ``classes``, bad split values, and
feature files that disagree with the rows.

Each case is a folder under ``tests/fuzz/csv/<name>/`` holding ``train.csv``, ``dev.csv``,
``test.csv`` and one audio ``.npy`` per split (some cases ``all.csv``); the test passes the folder
as ``--data-dir`` with the options ``INDEX.json`` lists (``sets``: the base options of
:data:`craft.CSV_SETS` with the case's changes). ``expect`` is ``refuse`` or ``ok`` (the valid
controls); ``run`` marks the cases also given to ``merc-bench run``.

Run ``python tests/fuzz/make_csv.py`` to rewrite the folder (deterministic); ``--out DIR`` writes
elsewhere.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from craft import (  # noqa: E402 - the helper sits beside this script
    CSV_COLUMNS, CSV_SETS, csv_files, csv_rows, csv_text, feature_matrix, npy_bytes, write_index, write_tree,
)

HERE = Path(__file__).resolve().parent


def case(*, train: bytes | None = None, dev: bytes | None = None, test: bytes | None = None,
         extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    files = csv_files()
    for name, data in (("train.csv", train), ("dev.csv", dev), ("test.csv", test)):
        if data is not None:
            files[name] = data
    return {**files, **(extra or {})}


def rows_with(split: str, row: int, column: str, value: str) -> list[list[str]]:
    rows = csv_rows(split)
    rows[row][CSV_COLUMNS.index(column)] = value
    return rows


def text(rows, columns=CSV_COLUMNS, **options) -> bytes:
    return csv_text(rows, columns, **options).encode()


def sets(*changes: str, drop: tuple[str, ...] = ()) -> list[str]:
    """The base options with ``changes`` (key=value; a key given replaces the base's) and ``drop``ped keys."""
    keys = {change.split("=", 1)[0] for change in changes} | set(drop)
    return [s for s in CSV_SETS if s.split("=", 1)[0] not in keys] + list(changes)


def one_file() -> bytes:
    rows = [row + [split] for split in ("train", "dev", "test") for row in csv_rows(split)]
    return text(rows, CSV_COLUMNS + ["split"])


ONE_FILE_SETS = sets("dataset.file=all.csv", "dataset.features.audio.all=all_audio.npy",
                     drop=("dataset.train", "dataset.dev", "dataset.test", "dataset.features.audio.train",
                           "dataset.features.audio.dev", "dataset.features.audio.test"))


def cases() -> list[tuple[str, str, str, bool, list[str], dict[str, bytes]]]:
    """(name, what it tests, "refuse" or "ok", also run `merc-bench run`, options, files)."""
    train = csv_rows("train")
    valid = text(train)
    unclosed = valid.replace(b'with a comma"\r\n', b"with a comma\r\n", 1)  # row 1 opens a quote never closed
    all_audio = npy_bytes(feature_matrix(22, 3, 0))
    base = sets()
    out = [
        # -- valid controls --------------------------------------------------------------------------
        ("valid", "the base dataset: loads and trains", "ok", True, base, case()),
        ("valid-bom", "UTF-8 with a byte-order mark", "ok", False, base, case(train=b"\xef\xbb\xbf" + valid)),
        ("valid-cp1252", "cp1252 bytes (not UTF-8) in the text, read as documented", "ok", False, base,
         case(train=valid.replace(b"with a comma", b"caf\xe9 \x93quoted\x94"))),
        ("valid-bom-then-cp1252", "a UTF-8 BOM followed by cp1252 bytes", "ok", False, base,
         case(dev=b"\xef\xbb\xbf" + text(csv_rows("dev")).replace(b"with a comma", b"na\xefve"))),
        ("valid-lf-and-cr", "LF and bare CR line endings", "ok", False, base,
         case(train=text(train, newline="\n"), dev=text(csv_rows("dev"), newline="\r"))),
        ("valid-quoted-newlines", "quoted fields with commas, quotes and newlines", "ok", False, base,
         case(train=text(rows_with("train", 0, "text", 'she said "no",\nthen left')))),
        ("valid-several-speakers-cell-join", "a speaker cell 'Ann, Bob' with speaker_policy=join: one speaker of "
         "that name", "ok", False, sets("dataset.speaker_policy=join"),
         case(train=text(rows_with("train", 0, "speaker", "Ann, Bob")))),
        ("valid-several-speakers-cell-first", "a speaker cell 'Ann & Bob' with speaker_policy=first: Ann", "ok", False,
         sets("dataset.speaker_policy=first"), case(train=text(rows_with("train", 0, "speaker", "Ann & Bob")))),
        ("valid-ids-repeat-across-splits", "dialogue ids restarting in each split (MELD's CSVs)", "ok", True, base,
         case(dev=text([[r[0].replace("dev-1039", "train-0").replace("dev-1040", "train-1")] + r[1:]
                         for r in csv_rows("dev")]))),
        ("valid-one-file", "one CSV with a split column", "ok", False, ONE_FILE_SETS,
         {"all.csv": one_file(), "all_audio.npy": all_audio}),
        # -- encodings and bytes ---------------------------------------------------------------------
        ("utf16-le", "UTF-16 little-endian with BOM", "refuse", True, base,
         case(train=valid.decode().encode("utf-16"))),
        ("utf16-be-no-bom", "UTF-16 big-endian without BOM", "refuse", False, base,
         case(dev=text(csv_rows("dev")).decode().encode("utf-16-be"))),
        ("utf32", "UTF-32", "refuse", False, base, case(test=text(csv_rows("test")).decode().encode("utf-32"))),
        ("nul-in-field", "one NUL byte inside a text field", "refuse", False, base,
         case(train=valid.replace(b"with a comma", b"with a \x00 comma", 1))),
        ("binary-garbage", "256 bytes of every value, repeated", "refuse", False, base,
         case(train=bytes(range(256)) * 8)),
        ("binary-high-bytes", "bytes 0x80-0xff only (no NUL, no newline)", "refuse", False, base,
         case(dev=bytes(range(128, 256)) * 8)),
        ("gzip-csv", "a gzip-compressed CSV", "refuse", False, base,
         case(train=b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + bytes(range(1, 120)))),
        ("empty", "a 0-byte train CSV", "refuse", True, base, case(train=b"")),
        ("blank-lines", "only blank lines", "refuse", False, base, case(dev=b"\r\n\r\n\n\n")),
        ("header-only", "a header and no rows", "refuse", False, base, case(test=text([]))),
        # -- quoting ---------------------------------------------------------------------------------
        ("unclosed-quote", "an unclosed quote swallowing the rest of the file", "refuse", True, base,
         case(train=unclosed)),
        ("unclosed-quote-last-line", "an unclosed quote on the last line", "refuse", False, base,
         case(test=text(csv_rows("test"))[:-2] + b',"oops\r\n')),
        ("field-past-limit", "an unclosed quote followed by 140,000 characters (past the field limit)", "refuse",
         False, base, case(dev=text(csv_rows("dev")) + b'x,1,Ann,calm,"' + b"y" * 140_000)),
        ("quote-then-text", '"ab"c: text after a closing quote', "refuse", False, base,
         case(train=valid.replace(b"utterance 0 of 0, with a comma", b'"utterance 0"x', 1))),
        # -- columns and rows ------------------------------------------------------------------------
        ("missing-speaker-column", "no speaker column", "refuse", False, base,
         case(train=text([r[:2] + r[3:] for r in train], CSV_COLUMNS[:2] + CSV_COLUMNS[3:]))),
        ("missing-key-columns", "dataset.dialogue_column lists columns season and scene the files lack", "refuse",
         False, sets('dataset.dialogue_column=["season","dialogue_id","scene"]'), case()),
        ("duplicate-key-columns", "dataset.dialogue_column names one column twice", "refuse", False,
         sets('dataset.dialogue_column=["dialogue_id","dialogue_id"]'), case()),
        ("missing-label-column", "no label column", "refuse", False, base,
         case(dev=text([r[:3] + r[4:] for r in csv_rows("dev")], CSV_COLUMNS[:3] + CSV_COLUMNS[4:]))),
        ("duplicate-header", "the label column named twice", "refuse", False, base,
         case(train=text([r + ["x"] for r in train], CSV_COLUMNS + ["label"]))),
        ("many-columns", "a header of 5,000 columns, none of them the ones needed", "refuse", False, base,
         case(test=(",".join(f"c{i}" for i in range(5000)) + "\r\n" + ",".join("1" * 5000) + "\r\n").encode())),
        ("row-too-long", "a row with an extra field", "refuse", False, base,
         case(train=valid.replace(b"with a comma\"\r\n", b"with a comma\",extra\r\n", 1))),
        ("row-too-short", "a row with a missing field", "refuse", False, base,
         case(dev=text(csv_rows("dev")).replace(b',"utterance 0 of 1039, with a comma"', b"", 1))),
        ("semicolons", "a semicolon-separated file read with the default comma", "refuse", False, base,
         case(train=text(train).replace(b",", b";"))),
        ("wrong-delimiter-option", "--set dataset.delimiter to a two-character string", "refuse", False,
         sets("dataset.delimiter=;;"), case()),
        # -- values ----------------------------------------------------------------------------------
        ("repeated-order", "the same utterance_id twice in one dialogue", "refuse", True, base,
         case(train=text(rows_with("train", 1, "utterance_id", "0")))),
        ("order-not-number", "utterance_id 'first'", "refuse", False, base,
         case(train=text(rows_with("train", 2, "utterance_id", "first")))),
        ("order-nan", "utterance_id nan", "refuse", False, base,
         case(dev=text(rows_with("dev", 0, "utterance_id", "nan")))),
        ("empty-dialogue-id", "an empty dialogue id", "refuse", False, base,
         case(test=text(rows_with("test", 0, "dialogue_id", "  ")))),
        ("empty-label", "an empty label", "refuse", False, base, case(train=text(rows_with("train", 3, "label", "")))),
        ("empty-speaker", "an empty speaker", "refuse", False, base,
         case(train=text(rows_with("train", 3, "speaker", "")))),
        ("several-speakers-cell", "a speaker cell 'Ann, Bob' listing two speakers (speaker_policy=error, the "
         "default)", "refuse", False, base, case(train=text(rows_with("train", 0, "speaker", "Ann, Bob")))),
        ("several-speakers-only-separators", "a speaker cell ' ; ' under speaker_policy=first: no name left", "refuse",
         False, sets("dataset.speaker_policy=first"), case(dev=text(rows_with("dev", 1, "speaker", " ; ")))),
        ("one-class", "every label the same", "refuse", False, base,
         case(train=text([r[:3] + ["calm"] + r[4:] for r in train]),
              dev=text([r[:3] + ["calm"] + r[4:] for r in csv_rows("dev")]),
              test=text([r[:3] + ["calm"] + r[4:] for r in csv_rows("test")]))),
        ("label-not-in-classes", "a label outside --set dataset.classes", "refuse", False,
         sets('dataset.classes=["angry","calm","happy"]'), case()),
        ("long-label", "a 100,000-character label outside dataset.classes", "refuse", False,
         sets('dataset.classes=["angry","calm","happy","sad"]'),
         case(test=text(rows_with("test", 0, "label", "z" * 100_000)))),
        ("split-value-unknown", "a split column value 'holdout'", "refuse", False, ONE_FILE_SETS,
         {"all.csv": one_file().replace(b",dev\r\n", b",holdout\r\n", 1), "all_audio.npy": all_audio}),
        ("split-missing-test", "one file without test rows", "refuse", False, ONE_FILE_SETS,
         {"all.csv": one_file().replace(b",test\r\n", b",train\r\n"), "all_audio.npy": all_audio}),
        ("file-and-splits", "dataset.file and dataset.train together", "refuse", False,
         ONE_FILE_SETS + ["dataset.train=train.csv"], {"all.csv": one_file(), "all_audio.npy": all_audio}),
        ("csv-is-a-folder", "dataset.train names a folder", "refuse", False, sets("dataset.train=sub"),
         {**case(), "sub/readme.txt": b"not a csv"}),
        # -- features against the rows ---------------------------------------------------------------
        ("features-rows-short", "train audio with one row fewer than the CSV", "refuse", False, base,
         case(extra={"train_audio.npy": npy_bytes(feature_matrix(11, 3, 0))})),
        ("features-width-differs", "dev audio 4 wide, train 3 wide", "refuse", False, base,
         case(extra={"dev_audio.npy": npy_bytes(feature_matrix(5, 4, 0))})),
        ("features-nan", "a NaN in the test audio (refused; loads with dataset.nonfinite=zero)", "refuse", True, base,
         case(extra={"test_audio.npy": npy_bytes(np.where(np.eye(5, 3, dtype=bool), np.float32("nan"),
                                                           feature_matrix(5, 3, 200)).astype(np.float32))})),
        ("features-unknown-modality", "features for a modality 'smell'", "refuse", False,
         sets("dataset.features.smell.train=train_audio.npy"), case()),
        ("features-missing-file", "an audio .npy that does not exist", "refuse", False,
         sets("dataset.features.audio.dev=nowhere.npy"), case()),
        ("no-features", "no features and no text encoder", "refuse", False,
         sets(drop=("dataset.features.audio.train", "dataset.features.audio.dev", "dataset.features.audio.test")),
         case()),
    ]
    return out


def write(target: Path) -> int:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    index = []
    for name, what, expect, run, options, files in cases():
        write_tree(target / name, files)
        index.append({"name": name, "what": what, "expect": expect, "run": run, "sets": options})
    write_index(target, index)
    return len(index)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "csv")
    count = write(parser.parse_args().out)
    print(f"wrote {count} csv cases")
