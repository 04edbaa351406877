"""Write the ``npy`` fuzz category: crafted ``.npy`` feature files read by ``conversation-csv``.

npy: ``.npy`` files with wrong or missing magic strings, lying or malformed headers (huge, negative
or fractional shapes, oversized header lengths, unknown versions, missing keys), pickled object
arrays (a payload that would create a canary), structured, complex, boolean, text, datetime, void
and 16-byte float dtypes, truncated or trailing data, wrong dimensions, zero-width features, NaN,
inf and float64 values beyond float32; valid controls in float64, float16, int32, Fortran order,
big-endian order and format 2.0.

Each case is a folder under ``tests/fuzz/npy/<name>/`` holding the valid conversation-csv dataset
of :func:`craft.csv_files` whose ``train_audio.npy`` (12 rows, 3 features) is the crafted file;
``INDEX.json`` lists the cases (``expect`` ``refuse`` or ``ok``, ``run`` for the cases also given to
``merc-bench run``, ``sets`` the options).

Run ``python tests/fuzz/make_npy.py`` to rewrite the folder (deterministic); ``--out DIR`` writes
elsewhere.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from craft import (  # noqa: E402 - the helper sits beside this script
    CSV_SETS, csv_files, feature_matrix, npy_bytes, npy_header, npz_bytes, pickle_payload, pickled_npy, write_index,
    write_tree,
)

HERE = Path(__file__).resolve().parent
ROWS = 12  # train rows of the base dataset
GOOD = feature_matrix(ROWS, 3, 0)


def header_with_length(length: int, body: bytes = b"") -> bytes:
    """Magic, version 1.0 and a header-length field of ``length`` followed by ``body``."""
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", length) + body


def cases() -> list[tuple[str, str, str, bool, bytes]]:
    """(name, what it tests, "refuse" or "ok", also run `merc-bench run`, train_audio.npy bytes)."""
    data = GOOD.tobytes()
    with_nan = GOOD.copy()
    with_nan[3, 1] = np.nan
    with_inf = GOOD.copy()
    with_inf[0, 0] = -np.inf
    too_big = GOOD.astype(np.float64)
    too_big[5, 2] = 1e300
    return [
        # -- valid controls ------------------------------------------------------------------------------
        ("valid-float64", "float64 features (cast to float32)", "ok", True, npy_bytes(GOOD.astype(np.float64))),
        ("valid-float16", "float16 features", "ok", False, npy_bytes(GOOD.astype(np.float16))),
        ("valid-int32", "integer features", "ok", False,
         npy_bytes(np.arange(ROWS * 3, dtype=np.int32).reshape(ROWS, 3))),
        ("valid-fortran", "Fortran-ordered features", "ok", False, npy_bytes(np.asfortranarray(GOOD))),
        ("valid-big-endian", "big-endian float32", "ok", False, npy_bytes(GOOD.astype(">f4"))),
        ("valid-version-2", "format 2.0 header", "ok", False, npy_header("<f4", (ROWS, 3), version=(2, 0)) + data),
        # -- magic and header ----------------------------------------------------------------------------
        ("empty", "a 0-byte file", "refuse", True, b""),
        ("magic-only", "the magic string and nothing else", "refuse", False, b"\x93NUMPY"),
        ("bad-magic", "a wrong magic string", "refuse", False, b"\x93NUMPX\x01\x00" + npy_bytes(GOOD)[8:]),
        ("text-file", "a CSV saved as .npy", "refuse", False, b"a,b,c\n1,2,3\n" * 12),
        ("npz-as-npy", "an .npz (zip) named .npy", "refuse", False, npz_bytes({"features": GOOD})),
        ("pickle-file", "a plain pickle (payload writes a canary) named .npy", "refuse", True, pickle_payload()),
        ("version-3", "format 3.0 (utf-8 header)", "refuse", False,
         npy_header("<f4", (ROWS, 3), version=(3, 0)) + data),
        ("version-9", "format 9.9", "refuse", False, b"\x93NUMPY\x09\x09" + npy_bytes(GOOD)[8:]),
        ("header-length-huge", "a header length of 65,535 (numpy's limit is 10,000)", "refuse", False,
         header_with_length(65535, b"{" + b" " * 65534)),
        ("header-length-past-end", "a header length past the end of the file", "refuse", False,
         header_with_length(4000, b"{'descr': '<f4'")),
        ("header-not-dict", "a header that is a list literal", "refuse", False,
         npy_header("", (), raw="['<f4', False, (12, 3)]") + data),
        ("header-call", "a header calling a function", "refuse", False,
         npy_header("", (), raw="__import__('os').system('touch /tmp/x')") + data),
        ("header-missing-shape", "a header without shape", "refuse", False,
         npy_header("", (), raw="{'descr': '<f4', 'fortran_order': False}") + data),
        ("header-extra-key", "a header with an extra key", "refuse", False,
         npy_header("", (), raw="{'descr': '<f4', 'fortran_order': False, 'shape': (12, 3), 'x': 1}") + data),
        ("header-deep-parens", "a header nesting 4,000 parentheses", "refuse", False,
         npy_header("", (), raw="(" * 4000 + ")" * 4000)),
        ("fortran-not-bool", "fortran_order given as text", "refuse", False,
         npy_header("", (), raw="{'descr': '<f4', 'fortran_order': 'yes', 'shape': (12, 3)}") + data),
        # -- dtypes --------------------------------------------------------------------------------------
        ("object-pickled", "an object array whose pickle writes a canary", "refuse", True, pickled_npy((ROWS, 3))),
        ("structured", "a structured dtype", "refuse", False,
         npy_bytes(np.zeros(ROWS, dtype=[("a", "<f4"), ("b", "<f4")]))),
        ("complex", "complex64 features", "refuse", False, npy_bytes(GOOD.astype(np.complex64))),
        ("bool", "boolean features", "refuse", False, npy_bytes(GOOD > 0)),
        ("bytes", "byte strings", "refuse", False, npy_bytes(GOOD.astype("S8"))),
        ("unicode", "unicode strings", "refuse", False, npy_bytes(GOOD.astype("U8"))),
        ("datetime", "datetime64 values", "refuse", False, npy_bytes(np.zeros((ROWS, 3), dtype="datetime64[s]"))),
        ("void", "an opaque void dtype", "refuse", False, npy_header("|V4", (ROWS, 3)) + data),
        ("float128", "16-byte floats", "refuse", False, npy_header("<f16", (ROWS, 3)) + b"\0" * (ROWS * 3 * 16)),
        ("descr-garbage", "an unknown dtype string", "refuse", False, npy_header("<q9", (ROWS, 3)) + data),
        # -- shapes and sizes ----------------------------------------------------------------------------
        ("one-dimensional", "a 1-D array", "refuse", False, npy_bytes(GOOD.ravel())),
        ("three-dimensional", "a 3-D array", "refuse", False, npy_bytes(GOOD.reshape(ROWS, 3, 1))),
        ("scalar", "a 0-D array", "refuse", False, npy_bytes(np.float32(1.0).reshape(()))),
        ("zero-width", "12 rows of 0 features", "refuse", True, npy_bytes(np.zeros((ROWS, 0), np.float32))),
        ("rows-too-many", "13 rows for 12 CSV rows", "refuse", False, npy_bytes(feature_matrix(ROWS + 1, 3, 0))),
        ("shape-negative", "a negative dimension", "refuse", False, npy_header("<f4", (-12, 3)) + data),
        ("shape-fraction", "a fractional dimension", "refuse", False,
         npy_header("", (), raw="{'descr': '<f4', 'fortran_order': False, 'shape': (12.0, 3)}") + data),
        ("shape-huge-rows", "10**12 rows claimed by a 128-byte file", "refuse", False, npy_header("<f4", (10**12, 3))),
        ("shape-huge-columns", "12 rows of 10**12 features claimed by a 128-byte file", "refuse", True,
         npy_header("<f4", (ROWS, 10**12))),
        ("shape-astronomical", "a dimension of 10**40", "refuse", False, npy_header("<f8", (ROWS, 10**40))),
        ("truncated", "half the data missing", "refuse", False, npy_bytes(GOOD)[: 128 + len(data) // 2]),
        ("trailing-bytes", "extra bytes after the data", "refuse", False, npy_bytes(GOOD) + b"\0" * 64),
        # -- values --------------------------------------------------------------------------------------
        ("nan", "a NaN feature", "refuse", False, npy_bytes(with_nan)),
        ("inf", "a -inf feature", "refuse", False, npy_bytes(with_inf)),
        ("beyond-float32", "a float64 value of 1e300 (inf once cast to float32)", "refuse", False, npy_bytes(too_big)),
    ]


def write(target: Path) -> int:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    index = []
    for name, what, expect, run, data in cases():
        write_tree(target / name, {**csv_files(), "train_audio.npy": data})
        index.append({"name": name, "what": what, "expect": expect, "run": run, "sets": list(CSV_SETS)})
    write_index(target, index)
    return len(index)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "npy")
    count = write(parser.parse_args().out)
    print(f"wrote {count} npy cases")
