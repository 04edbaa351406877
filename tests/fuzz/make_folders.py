"""Write the ``folders`` fuzz category: crafted converted folders (``manifest.json`` + ``train/dev/test.npz``).

folders: converted folders with a malformed or lying manifest (types, ranges, missing or extra
fields, bad JSON), split files escaping the folder (``..``, absolute paths, symlinks out), sha256
mismatches, zip bombs and lying ``.npy`` headers, pickled members, and arrays that disagree with the
manifest (labels 7 of 7 classes, speakers out of range, NaN, empty splits, lengths, ids, dtypes).

Each case is one folder under ``tests/fuzz/folders/<name>/``; ``INDEX.json`` lists every case with
what it tests, whether merc-bench must refuse it (``refuse``) or load it (``ok``: the valid
controls), and whether the test also runs ``merc-bench run`` on it (``run``). Unless a case is about
the hash, each manifest carries the true sha256 of the files it ships — the attacker who edits the
arrays rewrites the manifest too — so it is the deeper checks that must refuse it.

Run ``python tests/fuzz/make_folders.py`` to rewrite the folder (deterministic: same bytes on every
run); ``--out DIR`` writes elsewhere (the test compares that with the committed copy).
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from craft import (  # noqa: E402 - the helper sits beside this script
    MELD_CLASSES, SPLITS, deflate, manifest, npy_bytes, npy_header, npz_bytes, pickled_npy, raw_zip, split_arrays,
    write_index, write_tree, zip_bytes,
)

HERE = Path(__file__).resolve().parent
Files = dict[str, "bytes | str"]


def build(*, arrays: Callable | None = None, members: Callable | None = None, blobs: Callable | None = None,
          edit: Callable | None = None, facts: str = "base", rehash: bool = True) -> Files:
    """A folder from the valid base, changed at one stage.

    ``arrays(a)`` edits the arrays written (a: split -> name -> array); ``members(m)`` the zip
    members (split -> [(name, bytes)]); ``blobs(b)`` the file bytes (split -> bytes); ``edit(manifest)``
    the manifest. The manifest's facts describe the base arrays (``facts="base"``) or the written
    ones (``"written"``); its hashes are those of the written files unless ``rehash`` is False.
    """
    base = {split: split_arrays(split) for split in SPLITS}
    written = copy.deepcopy(base)
    if arrays:
        arrays(written)
    parts = {split: [(f"{name}.npy", npy_bytes(array)) for name, array in written[split].items()] for split in SPLITS}
    if members:
        members(parts)
    files = {split: zip_bytes(parts[split]) for split in SPLITS}
    if blobs:
        blobs(files)
    honest = {split: npz_bytes(base[split]) for split in SPLITS}
    document = manifest(files if rehash else honest, written if facts == "written" else base)
    if edit:
        edit(document)
    return {"manifest.json": json.dumps(document, separators=(",", ":")).encode(),
            **{f"{split}.npz": data for split, data in files.items()}}


def raw_manifest(data: bytes) -> Files:
    files = build()
    files["manifest.json"] = data
    return files


def setter(path: str, value) -> Callable:
    """An ``edit`` that sets a dotted manifest path (``splits.train.file``) to ``value``."""
    def apply(document: dict) -> None:
        *parents, last = path.split(".")
        target = document
        for part in parents:
            target = target[part]
        target[last] = value
    return apply


def deleter(path: str) -> Callable:
    def apply(document: dict) -> None:
        *parents, last = path.split(".")
        target = document
        for part in parents:
            target = target[part]
        del target[last]
    return apply


def in_split(split: str, name: str, change: Callable) -> Callable:
    """An ``arrays`` edit applying ``change(array) -> array`` to one array of one split."""
    def apply(arrays: dict) -> None:
        arrays[split][name] = change(arrays[split][name].copy())
    return apply


def setting(index, value) -> Callable:
    def change(array):
        array[index] = value
        return array
    return change


def empty_split(split: str) -> Callable:
    def apply(arrays: dict) -> None:
        arrays[split] = {name: array[:0] for name, array in arrays[split].items()}
    return apply


def replace_member(split: str, name: str, data: bytes) -> Callable:
    def apply(parts: dict) -> None:
        parts[split] = [(member, data if member == f"{name}.npy" else blob) for member, blob in parts[split]]
    return apply


def huge_declared_zip() -> bytes:
    """train.npz whose features_text member declares 160 GB uncompressed (ZIP64) over 4 KB of deflated zeros."""
    entries = [{"name": f"{k}.npy", "data": npy_bytes(v)} for k, v in split_arrays("train").items()
               if k != "features_text"]
    entries.append({"name": "features_text.npy", "data": deflate(b"\0" * 4096), "method": 8, "size": 160 * 10**9,
                    "crc": 0})
    return raw_zip(entries)


def deflate_longer_than_declared() -> bytes:
    """train.npz whose labels member inflates to 1 MB more than its entry declares (the CRC covers all of it)."""
    entries = []
    for name, array in split_arrays("train").items():
        data = npy_bytes(array)
        if name == "labels":
            longer = data + b"\0" * (1 << 20)
            entries.append({"name": "labels.npy", "data": deflate(longer), "method": 8, "size": len(data),
                            "crc": zlib.crc32(longer)})
        else:
            entries.append({"name": f"{name}.npy", "data": data})
    return raw_zip(entries)


def move_count(split: str) -> Callable:
    """An ``edit`` moving one utterance's count from the first class to the second (same sum, wrong counts)."""
    def apply(document: dict) -> None:
        counts = document["splits"][split]["class_counts"]
        counts[0], counts[1] = counts[0] - 1, counts[1] + 1
    return apply


def speakers_claim(size: int) -> Callable:
    """A manifest claiming one dialogue of ``size`` utterances in train (the arrays stay small)."""
    def apply(document: dict) -> None:
        entry = document["splits"]["train"]
        entry.update(dialogues=1, utterances=size, ids=["0"], class_counts=[size] + [0] * 6)
    return apply


def huge_header_members(size: int) -> Callable:
    """train members whose headers claim the ``size`` utterances of :func:`speakers_claim` (no data follows)."""
    def apply(parts: dict) -> None:
        parts["train"] = [
            ("ids.npy", npy_bytes(np.asarray(["0"]))),
            ("lengths.npy", npy_bytes(np.asarray([size], dtype=np.int64))),
            ("speakers.npy", npy_header("<i8", (size,))),
            ("labels.npy", npy_header("<i8", (size,))),
            ("features_text.npy", npy_header("<f4", (size, 4))),
            ("features_audio.npy", npy_header("<f4", (size, 3))),
        ]
    return apply


def cases() -> list[tuple[str, str, str, bool, Files]]:
    """(name, what it tests, "refuse" or "ok", also run `merc-bench run`, files)."""
    deep = (b'{"format": "merc-bench-features", "format_version": 1, "provenance": ' + b"[" * 30_000 + b"]" * 30_000
            + b"}")
    valid = json.loads(build()["manifest.json"])
    nan_value = np.float32("nan")
    out: list[tuple[str, str, str, bool, Files]] = [
        # -- valid controls ------------------------------------------------------------------------------
        ("valid", "the base folder: loads, inspects and trains", "ok", True, build()),
        ("valid-fortran-order", "features stored in Fortran order: a valid layout", "ok", False,
         build(members=lambda p: p.update(train=[(n, npy_bytes(np.asfortranarray(split_arrays("train")[n[:-4]]))
                                                  if n.startswith("features") else b) for n, b in p["train"]]))),
        ("valid-big-endian", "big-endian int64 labels: valid, converted to native order", "ok", False,
         build(arrays=in_split("dev", "labels", lambda a: a.astype(">i8")))),
        ("valid-deflated", "a compressed (deflated) .npz, as np.savez_compressed writes", "ok", False,
         build(blobs=lambda b: b.update(test=zip_bytes([(f"{k}.npy", npy_bytes(v)) for k, v in
                                                          split_arrays("test").items()],
                                                         compression=zipfile.ZIP_DEFLATED)))),
        # -- the manifest as a file ----------------------------------------------------------------------
        ("manifest-empty", "an empty manifest.json", "refuse", False, raw_manifest(b"")),
        ("manifest-garbage", "binary garbage instead of JSON", "refuse", False, raw_manifest(bytes(range(256)) * 4)),
        ("manifest-utf16", "the valid manifest encoded as UTF-16", "refuse", False,
         raw_manifest(json.dumps(valid).encode("utf-16"))),
        ("manifest-latin1", "Latin-1 bytes (not UTF-8) in a string", "refuse", False,
         raw_manifest(json.dumps(valid).replace("fuzz corpus", "fuzz corp\u00fcs").encode("latin-1"))),
        ("manifest-list", "a JSON list at the top", "refuse", False, raw_manifest(b"[1, 2, 3]")),
        ("manifest-truncated", "the valid manifest cut in half", "refuse", False,
         raw_manifest(json.dumps(valid).encode()[: len(json.dumps(valid)) // 2])),
        ("manifest-deep-nesting", "30,000 nested lists (RecursionError in a naive reader)", "refuse", False,
         raw_manifest(deep)),
        ("manifest-huge-integer", "an integer of 5,000 digits", "refuse", False,
         raw_manifest(json.dumps(valid).replace('"num_speakers": 9', '"num_speakers": ' + "9" * 5000).encode())),
        ("manifest-nan-literal", "NaN where a number belongs (not JSON)", "refuse", False,
         raw_manifest(json.dumps(valid).replace('"num_speakers": 9', '"num_speakers": NaN').encode())),
        ("manifest-duplicate-keys", "format given twice, the second one wrong", "refuse", False,
         raw_manifest(json.dumps(valid).replace('"format_version": 1', '"format_version": 1, "format": "x"').encode())),
        # -- the manifest's fields -----------------------------------------------------------------------
        ("format-wrong", "format names another format", "refuse", False, build(edit=setter("format", "numpy-zip"))),
        ("format-version-2", "a future format version", "refuse", False, build(edit=setter("format_version", 2))),
        ("missing-dataset", "no dataset section", "refuse", True, build(edit=deleter("dataset"))),
        ("missing-splits", "no splits section", "refuse", False, build(edit=deleter("splits"))),
        ("missing-test-split", "splits without test", "refuse", False, build(edit=deleter("splits.test"))),
        ("extra-top-field", "an unknown top-level field", "refuse", False, build(edit=setter("checked", True))),
        ("extra-split-field", "an unknown field in a split", "refuse", False,
         build(edit=setter("splits.dev.path", "/tmp/dev.npz"))),
        ("extra-split", "a fourth split", "refuse", False,
         build(edit=lambda m: m["splits"].update(extra=m["splits"]["dev"]))),
        ("dataset-not-object", "dataset is a string", "refuse", False, build(edit=setter("dataset", "meld"))),
        ("classes-string", "classes is one string", "refuse", False,
         build(edit=setter("dataset.classes", "neutral,joy"))),
        ("classes-one", "a single class", "refuse", False, build(edit=setter("dataset.classes", ["neutral"]))),
        ("classes-duplicate", "the same class twice", "refuse", False,
         build(edit=setter("dataset.classes", MELD_CLASSES[:6] + ["neutral"]))),
        ("classes-empty-name", "an empty class name", "refuse", False,
         build(edit=setter("dataset.classes", [""] + MELD_CLASSES[1:]))),
        ("classes-long-name", "a class name of 10,000 characters", "refuse", False,
         build(edit=setter("dataset.classes", ["n" * 10_000] + MELD_CLASSES[1:]))),
        ("feature-dims-zero", "a zero-width modality", "refuse", True,
         build(edit=setter("dataset.feature_dims.audio", 0))),
        ("feature-dims-negative", "a negative feature size", "refuse", False,
         build(edit=setter("dataset.feature_dims.audio", -3))),
        ("feature-dims-float", "a fractional feature size", "refuse", False,
         build(edit=setter("dataset.feature_dims.audio", 3.5))),
        ("feature-dims-string", "a feature size given as text", "refuse", False,
         build(edit=setter("dataset.feature_dims.audio", "3"))),
        ("feature-dims-huge", "a feature size of 2**40", "refuse", False,
         build(edit=setter("dataset.feature_dims.audio", 2**40))),
        ("feature-dims-empty", "no modality at all", "refuse", False, build(edit=setter("dataset.feature_dims", {}))),
        ("feature-dims-list", "feature_dims as a list", "refuse", False,
         build(edit=setter("dataset.feature_dims", [4, 3, 2]))),
        ("num-speakers-zero", "zero speaker slots", "refuse", False, build(edit=setter("dataset.num_speakers", 0))),
        ("num-speakers-bool", "num_speakers true", "refuse", False, build(edit=setter("dataset.num_speakers", True))),
        ("num-speakers-null", "num_speakers null", "refuse", False, build(edit=setter("dataset.num_speakers", None))),
        ("dialogues-negative", "a negative dialogue count", "refuse", False,
         build(edit=setter("splits.dev.dialogues", -2))),
        ("dialogues-vs-ids", "5 dialogues but 4 ids", "refuse", False, build(edit=setter("splits.train.dialogues", 5))),
        ("utterances-huge", "10**15 utterances claimed", "refuse", False,
         build(edit=setter("splits.train.utterances", 10**15))),
        ("class-counts-short", "6 class counts for 7 classes", "refuse", False,
         build(edit=lambda m: m["splits"]["train"]["class_counts"].pop())),
        ("class-counts-sum", "class counts summing to more than the utterances", "refuse", False,
         build(edit=lambda m: m["splits"]["train"]["class_counts"].__setitem__(0, 50))),
        ("class-counts-negative", "a negative class count", "refuse", False,
         build(edit=lambda m: m["splits"]["test"]["class_counts"].__setitem__(0, -1))),
        ("ids-duplicate", "a dialogue id twice in one split", "refuse", False,
         build(edit=lambda m: m["splits"]["train"]["ids"].__setitem__(1, "0"))),
        ("ids-in-two-splits", "the same dialogue in train and test", "refuse", True,
         build(arrays=in_split("test", "ids", lambda a: np.asarray(["0", "1154"])),
               edit=lambda m: m["splits"]["test"]["ids"].__setitem__(0, "0"))),
        ("ids-integers", "ids given as numbers", "refuse", False,
         build(edit=setter("splits.train.ids", [0, 1, 2, 3]))),
        ("ids-long", "a dialogue id of 5,000 characters", "refuse", False,
         build(edit=lambda m: m["splits"]["dev"]["ids"].__setitem__(0, "d" * 5000))),
        ("sha256-malformed", "a sha256 that is not 64 hex digits", "refuse", False,
         build(edit=setter("splits.train.sha256", "abc"))),
        ("provenance-warnings-int", "provenance.warnings not a list of text", "refuse", False,
         build(edit=setter("provenance.warnings", 7))),
        ("provenance-source-files", "provenance.source_files of the wrong shape", "refuse", False,
         build(edit=setter("provenance.source_files", [{"name": 1}]))),
        ("provenance-too-deep", "provenance nested 40 levels", "refuse", False,
         build(edit=setter("provenance.extra", json.loads("[" * 40 + "]" * 40)))),
        ("provenance-layout-dict", "provenance.layout not text", "refuse", False,
         build(edit=setter("provenance.layout", {"a": 1}))),
        # -- where the files are -------------------------------------------------------------------------
        ("file-dotdot", "splits.train.file = ../_outside/train.npz", "refuse", True,
         build(edit=setter("splits.train.file", "../_outside/train.npz"))),
        ("file-absolute", "splits.train.file an absolute path", "refuse", False,
         build(edit=setter("splits.train.file", "/etc/hostname"))),
        ("file-subfolder", "splits.dev.file in a subfolder", "refuse", False,
         build(edit=setter("splits.dev.file", "sub/dev.npz"))),
        ("file-not-npz", "a split file not named .npz", "refuse", False,
         build(edit=setter("splits.dev.file", "dev.pkl"))),
        ("file-hidden", "a split file named .npz", "refuse", False, build(edit=setter("splits.dev.file", ".npz"))),
        ("file-shared", "train and dev name the same file", "refuse", False,
         build(edit=setter("splits.dev.file", "train.npz"))),
        ("file-missing", "test.npz absent", "refuse", False, {k: v for k, v in build().items() if k != "test.npz"}),
        ("file-is-folder", "train.npz is a folder", "refuse", False,
         {**{k: v for k, v in build().items() if k != "train.npz"},
          "train.npz/placeholder.txt": b"a folder named train.npz (git keeps no empty folder)\n"}),
        ("symlink-out", "train.npz a symlink to a valid file outside (the hash matches it)", "refuse", True,
         {**build(), "train.npz": "->../_outside/train.npz"}),
        ("symlink-absolute", "dev.npz a symlink to /dev/zero", "refuse", False, {**build(), "dev.npz": "->/dev/zero"}),
        ("symlink-dangling", "test.npz a dangling symlink", "refuse", False,
         {**build(), "test.npz": "->does-not-exist.npz"}),
        ("symlink-loop", "dev.npz a symlink to itself", "refuse", False, {**build(), "dev.npz": "->dev.npz"}),
        ("manifest-is-folder", "manifest.json is a folder", "refuse", False,
         {**{k: v for k, v in build().items() if k != "manifest.json"},
          "manifest.json/placeholder.txt": b"a folder named manifest.json\n"}),
        ("manifest-symlink-out", "manifest.json a symlink out of the folder", "refuse", False,
         {**build(), "manifest.json": "->../_outside/manifest.json"}),
        # -- hashes --------------------------------------------------------------------------------------
        ("sha256-mismatch", "labels edited, manifest hash left as it was", "refuse", True,
         build(arrays=in_split("train", "labels", setting(0, 3)), rehash=False)),
        # -- arrays against the manifest (hash rewritten: only the deeper checks can refuse) -------------
        ("labels-7-of-7", "label 7 with 7 classes (IndexError mid-training before)", "refuse", True,
         build(arrays=in_split("train", "labels", setting(2, 7)))),
        ("labels-7-consistent", "label 7, the manifest's class counts rewritten to match", "refuse", False,
         build(arrays=in_split("train", "labels", setting(2, 7)), facts="written")),
        ("labels-negative", "label -1", "refuse", False, build(arrays=in_split("dev", "labels", setting(0, -1)))),
        ("labels-huge", "label 2**62", "refuse", False, build(arrays=in_split("test", "labels", setting(1, 2**62)))),
        ("labels-float", "labels stored as float64", "refuse", False,
         build(arrays=in_split("train", "labels", lambda a: a.astype(np.float64)))),
        ("labels-bool", "labels stored as bool", "refuse", False,
         build(arrays=in_split("train", "labels", lambda a: (a % 2).astype(bool)))),
        ("labels-pickled", "labels as a pickled object array whose payload writes a canary", "refuse", True,
         build(members=replace_member("train", "labels", pickled_npy((12,))))),
        ("class-counts-mismatch", "class counts that sum right but disagree with the labels", "refuse", False,
         build(edit=move_count("train"))),
        ("speakers-out-of-range", "speaker 9 with 9 slots", "refuse", False,
         build(arrays=in_split("train", "speakers", setting(0, 9)))),
        ("speakers-negative", "speaker -1", "refuse", False, build(arrays=in_split("dev", "speakers", setting(1, -1)))),
        ("speakers-uint64-max", "speaker 2**64-1 as uint64", "refuse", False,
         build(arrays=in_split("test", "speakers", lambda a: np.full(a.shape, 2**64 - 1, dtype=np.uint64)))),
        ("features-nan", "a NaN audio value (refused; loads with --set dataset.nonfinite=zero)", "refuse", True,
         build(arrays=in_split("train", "features_audio", setting((4, 1), nan_value)))),
        ("features-inf", "an infinite text value", "refuse", False,
         build(arrays=in_split("test", "features_text", setting((0, 0), np.float32("inf"))))),
        ("features-float64", "features stored as float64", "refuse", False,
         build(arrays=in_split("train", "features_audio", lambda a: a.astype(np.float64)))),
        ("features-complex", "complex features", "refuse", False,
         build(arrays=in_split("dev", "features_audio", lambda a: a.astype(np.complex64)))),
        ("features-int", "integer features where float32 was written", "refuse", False,
         build(arrays=in_split("dev", "features_text", lambda a: a.astype(np.int32)))),
        ("features-wide", "audio 4 wide where the manifest says 3", "refuse", False,
         build(arrays=in_split("train", "features_audio", lambda a: np.hstack([a, a[:, :1]])))),
        ("features-short", "one feature row missing", "refuse", False,
         build(arrays=in_split("train", "features_text", lambda a: a[:-1]))),
        ("features-3d", "a 3-D feature array", "refuse", False,
         build(arrays=in_split("test", "features_audio", lambda a: a[:, :, None]))),
        ("member-missing", "no features_audio in dev.npz", "refuse", False,
         build(members=lambda p: p.update(dev=[m for m in p["dev"] if m[0] != "features_audio.npy"]))),
        ("member-extra", "an extra array in test.npz", "refuse", False,
         build(members=lambda p: p["test"].append(("notes.npy", npy_bytes(np.arange(3)))))),
        ("member-twice", "labels.npy twice in one zip", "refuse", False,
         build(members=lambda p: p["train"].append(("labels.npy", npy_bytes(split_arrays("train")["labels"]))))),
        ("lengths-zero", "a dialogue of length 0", "refuse", False,
         build(arrays=in_split("train", "lengths", lambda a: np.asarray([3, 0, 6, 3])))),
        ("lengths-negative", "a negative dialogue length", "refuse", False,
         build(arrays=in_split("train", "lengths", lambda a: np.asarray([5, -2, 6, 3])))),
        ("lengths-sum", "lengths summing to fewer utterances", "refuse", False,
         build(arrays=in_split("dev", "lengths", lambda a: np.asarray([2, 2])))),
        ("ids-array-differs", "ids in the file differ from the manifest's", "refuse", False,
         build(arrays=in_split("dev", "ids", lambda a: np.asarray(["1039", "9999"])))),
        ("ids-array-int", "the ids array holds integers", "refuse", False,
         build(arrays=in_split("dev", "ids", lambda a: a.astype(np.int64)))),
        ("empty-train", "an empty train split (trained with loss 0.000 and exit 0 before)", "refuse", True,
         build(arrays=empty_split("train"), facts="written")),
        ("empty-dev", "an empty dev split", "refuse", False, build(arrays=empty_split("dev"), facts="written")),
        ("empty-test", "an empty test split", "refuse", False, build(arrays=empty_split("test"), facts="written")),
        # -- lying headers and bombs ---------------------------------------------------------------------
        ("zip-bomb-declared", "a member declaring 160 GB uncompressed (ZIP64) over 4 KB of deflate", "refuse", True,
         build(blobs=lambda b: b.update(train=huge_declared_zip()))),
        ("zip-stream-longer", "a deflate stream inflating past its declared size (CRC then fails)", "refuse", False,
         build(blobs=lambda b: b.update(train=deflate_longer_than_declared()))),
        ("header-claims-huge", "manifest and headers claim 10**9 utterances; the file holds headers only", "refuse",
         True, build(members=huge_header_members(10**9), edit=speakers_claim(10**9))),
        ("header-shape-lie", "a features header claiming 10**12 rows", "refuse", False,
         build(members=replace_member("dev", "features_audio", npy_header("<f4", (10**12, 3))))),
        ("header-truncated-data", "a header promising more data than the member holds", "refuse", False,
         build(members=replace_member("test", "labels", npy_header("<i8", (5,)) + b"\0" * 16))),
        ("header-version-3", "an .npy format 3.0 header", "refuse", False,
         build(members=replace_member("dev", "lengths", npy_header("<i8", (2,), version=(3, 0)) + b"\0" * 16))),
        ("header-bad-magic", "a member without the .npy magic string", "refuse", False,
         build(members=replace_member("dev", "lengths", b"NOTNUMPY" + b"\0" * 120))),
        ("header-garbage", "a header that is not a dict literal", "refuse", False,
         build(members=replace_member("dev", "lengths", npy_header("", (), raw="__import__('os')")))),
        ("header-void-dtype", "a header declaring a 10**9-byte void dtype", "refuse", False,
         build(members=replace_member("dev", "lengths", npy_header("|V1000000000", (2,))))),
        ("header-structured", "a structured dtype", "refuse", False,
         build(members=replace_member("dev", "lengths", npy_header([("a", "<i8")], (2,)) + b"\0" * 16))),
        ("header-unicode-zero", "ids as U0 (zero bytes per id) claiming 10**15 ids", "refuse", False,
         build(members=replace_member("dev", "ids", npy_header("<U0", (10**15,))))),
        ("not-a-zip", "train.npz holds garbage", "refuse", False, build(blobs=lambda b: b.update(train=b"PK" * 500))),
        ("truncated-zip", "dev.npz cut in half", "refuse", False, build(blobs=lambda b: b.update(dev=b["dev"][:300]))),
        ("zip-bzip2", "a bzip2-compressed member", "refuse", False,
         build(blobs=lambda b: b.update(test=zip_bytes([(f"{k}.npy", npy_bytes(v)) for k, v in
                                                          split_arrays("test").items()],
                                                         compression=zipfile.ZIP_BZIP2)))),
        ("npz-is-npy", "train.npz is a plain .npy", "refuse", False,
         build(blobs=lambda b: b.update(train=npy_bytes(np.zeros((3, 4), np.float32))))),
    ]
    return out


def write(target: Path) -> int:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    # The valid files the escape cases point at: loading them would mean the confinement failed.
    outside = build()
    write_tree(target / "_outside", {"train.npz": outside["train.npz"], "manifest.json": outside["manifest.json"]})
    index = []
    for name, what, expect, run, files in cases():
        write_tree(target / name, files)
        index.append({"name": name, "what": what, "expect": expect, "run": run})
    write_index(target, index)
    return len(index)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "folders")
    count = write(parser.parse_args().out)
    print(f"wrote {count} folder cases")
