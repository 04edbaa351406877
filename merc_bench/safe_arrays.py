"""Reading ``.npy`` and ``.npz`` files from strangers: the header decides, before anything is allocated.

``np.load`` trusts a file: a 100-byte ``.npy`` whose header claims shape (10¹², 1024) makes it
allocate terabytes, and an ``.npz`` member is inflated before anyone looks at its size. Here every
array is read in three steps:

1. the magic string and the header (``numpy.lib.format.read_magic`` / ``read_array_header_*``,
   header at most 10,000 bytes) give the dtype, shape and memory order;
2. the dtype must be a plain number (object, structured, void, string and pointer-bearing dtypes
   are refused by kind — the caller names the kinds it accepts), the shape must be what the caller
   expects, ``shape × itemsize`` must fit the memory left (:func:`memory_budget`) and the header
   plus the data must be exactly the file's size (an ``.npz`` member's size as its zip entry
   declares it, which is also the most the zip reader ever inflates);
3. only then is the array allocated and filled, in bounded chunks.

An ``.npz`` is opened only after its zip directory is checked: a bounded number of entries,
exactly the member names expected, stored or deflated members (other methods can inflate without
bound per read), no encryption, and the declared sizes summed against the memory budget.
"""

from __future__ import annotations

import math
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import numpy as np

from merc_bench.errors import UserError, preview
from merc_bench.memory import available_memory


__all__ = ["ArraySpec", "memory_budget", "read_npy", "read_npy_file", "read_npy_header", "read_npz"]

#: The largest header numpy itself accepts without ``allow_pickle`` (its default ``max_header_size``).
MAX_HEADER = 10_000
#: More entries than any merc-bench split file holds; checked from the zip's end record before parsing.
MAX_ZIP_ENTRIES = 64
_CHUNK = 1 << 24
_READ_ERRORS = (ValueError, TypeError, OSError, EOFError, SyntaxError, RecursionError, OverflowError, KeyError,
                zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, struct.error)

#: What the caller expects of one array: accepted dtype kinds (e.g. "f", "iu", "U"), an optional
#: exact itemsize, and the shape (None for a dimension the caller accepts at any size).
ArraySpec = tuple[str, int | None, tuple[int | None, ...]]


def memory_budget() -> int:
    """Bytes an array read may take: 3/4 of the memory this process can still get
    (:func:`merc_bench.memory.available_memory`: available RAM, or less under ``RLIMIT_AS``)."""
    return available_memory() * 3 // 4


def _gib(count: int) -> str:
    return f"{count / (1 << 30):.2f} GiB" if count >= 1 << 30 else f"{count:,} bytes"


def _header(stream: IO[bytes], source: str) -> tuple[tuple, bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(stream)
    except zipfile.BadZipFile as error:  # a small member is inflated, and its CRC checked, on the first read
        raise UserError(f"{source} is damaged ({preview(str(error), 120)}).") from None
    except _READ_ERRORS as error:
        raise UserError(f"{source} is not a .npy array (bad magic string: {preview(str(error), 120)}).") from None
    if version not in ((1, 0), (2, 0)):
        raise UserError(f"{source} is a .npy file of format version {version[0]}.{version[1]}; merc-bench reads "
                        "versions 1.0 and 2.0 (what numpy.save writes for numeric arrays).")
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        shape, fortran, dtype = reader(stream, max_header_size=MAX_HEADER)
    except _READ_ERRORS as error:
        raise UserError(f"{source} has an unreadable .npy header ({preview(str(error), 160)}).") from None
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise UserError(f"{source}: the .npy header's shape {preview(shape)} is not a tuple of sizes.")
    return shape, bool(fortran), dtype


def _check_dtype(dtype: np.dtype, spec: ArraySpec, source: str) -> None:
    kinds, itemsize, _ = spec
    names = {"f": "float", "i": "signed integer", "u": "unsigned integer", "U": "unicode text"}
    wanted = " or ".join(names.get(k, k) for k in kinds) + (f" of {itemsize} bytes" if itemsize else "")
    plain = not dtype.hasobject and dtype.fields is None and dtype.subdtype is None and dtype.itemsize > 0
    if not plain or dtype.kind not in kinds or (itemsize is not None and dtype.itemsize != itemsize) \
            or (dtype.kind in "fiu" and dtype.itemsize > 8):
        raise UserError(f"{source} holds {preview(str(dtype), 60)} values; expected {wanted}. Object, structured, "
                        "complex, boolean and text arrays are refused where numbers belong (and pickled arrays "
                        "always).")


def read_npy(stream: IO[bytes], *, source: str, size: int, spec: ArraySpec, budget: int) -> np.ndarray:
    """Read one array from ``stream`` (``size`` bytes in all, header included), checking ``spec`` first."""
    shape, fortran, dtype = _header(stream, source)
    _check_dtype(dtype, spec, source)
    expected = spec[2]
    if len(shape) != len(expected) or any(want is not None and got != want for got, want in zip(shape, expected)):
        sizes = ["any" if n is None else str(n) for n in expected]
        wanted = "(" + ", ".join(sizes) + ("," if len(sizes) == 1 else "") + ")"
        raise UserError(f"{source} has shape {preview(shape)}; expected {wanted}.")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > budget:
        raise UserError(f"{source} claims {_gib(nbytes)} of data (shape {preview(shape)}, {dtype}), more than the "
                        f"{_gib(budget)} of memory merc-bench may use for it; refusing to allocate it.")
    try:
        offset = stream.tell()
    except _READ_ERRORS as error:
        raise UserError(f"{source} cannot be read: {preview(str(error), 120)}.") from None
    if offset + nbytes != size:
        state = "is truncated" if offset + nbytes > size else "has trailing bytes"
        raise UserError(f"{source} {state}: its header promises {nbytes:,} bytes of data after {offset} header bytes, "
                        f"but it holds {size - offset:,}.")
    flat = np.empty(math.prod(shape), dtype=dtype)
    raw = memoryview(flat.view(np.uint8))
    position = 0
    try:
        while position < nbytes:
            got = stream.readinto(raw[position:position + _CHUNK])
            if not got:
                raise EOFError(f"{nbytes - position:,} bytes missing")
            position += got
    except _READ_ERRORS as error:
        raise UserError(f"{source} cannot be read ({preview(str(error), 160)}); the file is damaged.") from None
    array = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def read_npy_header(path: Path, *, source: str | None = None) -> tuple[tuple, bool, np.dtype]:
    """The (shape, Fortran order, dtype) a ``.npy`` file's header declares; nothing else is read."""
    where = source or repr(str(path))
    try:
        with open(path, "rb") as stream:
            return _header(stream, where)
    except OSError as error:
        raise UserError(f"cannot read {where}: {error.strerror or error}.") from None


def read_npy_file(path: Path, *, spec: ArraySpec, budget: int | None = None, source: str | None = None) -> np.ndarray:
    """Read a ``.npy`` file with :func:`read_npy` (never ``np.load``)."""
    path = Path(path)
    where = source or repr(str(path))
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            return read_npy(stream, source=where, size=size, spec=spec,
                            budget=memory_budget() if budget is None else budget)
    except OSError as error:
        raise UserError(f"cannot read {where}: {error.strerror or error}.") from None


def _zip_entries(stream: IO[bytes], size: int) -> int | None:
    """The entry count of a zip's end-of-central-directory record, read before ``zipfile`` parses the directory."""
    tail_size = min(size, 22 + 0xFFFF)
    stream.seek(size - tail_size)
    tail = stream.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    return struct.unpack("<H", tail[at + 10:at + 12])[0]


def read_npz(path: Path, *, specs: Mapping[str, ArraySpec], budget: int, source: str | None = None
             ) -> dict[str, np.ndarray]:
    """Read the ``.npz`` at ``path``, which must hold exactly the arrays named in ``specs``."""
    path = Path(path)
    where = source or repr(str(path))
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            entries = _zip_entries(stream, size)
            if entries is None:
                raise UserError(f"{where} is not an .npz file (no zip directory found).")
            if entries > MAX_ZIP_ENTRIES:
                raise UserError(f"{where} lists {entries} zip entries; a split file holds {len(specs)} arrays.")
            stream.seek(0)
            with zipfile.ZipFile(stream) as archive:
                members = archive.infolist()
                names = [member.filename for member in members]
                wanted = sorted(f"{name}.npy" for name in specs)
                if sorted(names) != wanted:
                    raise UserError(f"{where} holds the arrays {preview(sorted(names), 200)}; expected exactly "
                                    f"{', '.join(wanted)}.")
                declared = 0
                for member in members:
                    if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or member.flag_bits & 1:
                        raise UserError(f"{where}: member {member.filename} is encrypted or compressed with method "
                                        f"{member.compress_type}; merc-bench reads stored or deflated members only.")
                    declared += member.file_size
                if declared > budget:
                    raise UserError(f"{where} declares {_gib(declared)} of uncompressed arrays, more than the "
                                    f"{_gib(budget)} of memory merc-bench may use for it; refusing to inflate it.")
                arrays = {}
                for member in members:
                    name = member.filename[: -len(".npy")]
                    with archive.open(member) as data:
                        arrays[name] = read_npy(data, source=f"{where}, array {name}", size=member.file_size,
                                                spec=specs[name], budget=budget)
                return arrays
    except UserError:
        raise
    except _READ_ERRORS as error:
        if isinstance(error, OSError) and not isinstance(error, zipfile.BadZipFile) and error.strerror:
            raise UserError(f"cannot read {where}: {error.strerror}.") from None
        raise UserError(f"{where} is not a readable .npz file ({preview(str(error), 160)}).") from None
