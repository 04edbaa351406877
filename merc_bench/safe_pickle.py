"""Load the community's feature pickles without letting them run code, crash or exhaust the machine.

MERC papers ship their utterance features as Python pickles (SDT, MMGCN, DialogueRNN, COSMIC,
MultiEMO; see ``shared/docs/reference-models.md`` §1). Unpickling calls whatever importable
function a file names, so a file from an unknown link is a program, not data. :func:`load_pickle`
reads one through :class:`SafeUnpickler`, built on Python's pure-Python unpickler so that every
opcode passes through code here before anything is allocated or called:

* **An allow-list of globals** (:meth:`SafeUnpickler.find_class`): built-in containers and scalars
  (``dict list tuple set frozenset str bytes bytearray int float bool complex``, also under their
  Python 2 ``__builtin__`` names and ``unicode``/``long``), ``collections.OrderedDict`` and
  ``defaultdict``, ``_codecs.encode`` restricted to Latin-1 (how Python 3 writes ``bytes`` at
  protocol <= 2), and numpy's array pieces (``numpy.ndarray``, ``numpy.dtype``, ``_reconstruct`` and
  ``scalar`` under ``numpy.core.multiarray`` or ``numpy._core.multiarray``, ``_frombuffer`` under
  ``numpy.core.numeric`` or ``numpy._core.numeric``). Anything else is refused by name when it is
  looked up, before anything could call it. An allowed name never resolves to the real object: it
  resolves to a builder here that checks the arguments first (``bytearray(4_000_000_000)`` and
  ``str`` of a container are refused; ``defaultdict``'s factory must be a plain type).
* **numpy never sees the file's state.** ``numpy.dtype`` and ``_reconstruct`` give placeholders; the
  BUILD opcode hands their state to code here, which accepts plain dtypes only — bool, signed and
  unsigned integers, float16/32/64, complex64/128, and the ``U``/``S`` strings of utterance-id
  arrays — with an explicit byte order and no fields, sub-arrays or metadata, and refuses object,
  void/structured, datetime and every other dtype by name. Arrays are rebuilt with
  ``np.frombuffer`` from a dtype made from a checked type string, after checking that the shape
  times the item size equals the buffer's length (C or Fortran order); ``U`` data is checked to
  hold valid code points, booleans are normalised to 0/1. Crafted numpy state used to segfault the
  C unpickler through numpy's own ``__setstate__``.
* **Resource limits**, each a :class:`PickleLimitError` naming the file and the limit:

  - total allocation (``max_bytes``): what the file's strings, bytes and arrays take, plus a fixed
    128 bytes for each value the file builds (an upper estimate of a Python object, a list slot or a
    memo entry). Default: 64 × the file's size, at least 256 MiB, at most half the memory available
    now; the environment variable ``MERC_BENCH_PICKLE_MAX_BYTES`` sets it (bytes, or a number with
    ``K``/``M``/``G``/``T``, e.g. ``24G``), and the keyword argument overrides both;
  - one string, bytes or array (``max_item_bytes``, 1 GiB): a length prefix is checked — against
    this and against what is left of the file — *before* reading, so a 33-byte file claiming 4 GB
    allocates nothing; integers may take at most 1 KiB;
  - the memo (``max_memo``, 2^24 entries), the values built (``max_objects``, 5 × 10^7, shared
    containers counted each time they are reached, so a small file cannot expand exponentially in a
    consumer's loop), and nesting (``max_depth``, 100 levels of containers or MARKs; walks are
    iterative, so the C stack is never at risk).

  Dictionary keys and set members must be text, bytes, booleans, ``None``, floats or integers below
  2^61 - 1 (whose hashes cannot collide in bulk); a container that holds itself is refused.

:func:`load_pickle` also retries with ``encoding='latin1'`` when a Python 2 ``str`` cannot be decoded
as ASCII (SDT's and DialogueRNN's IEMOCAP files need it, as their loaders say), and turns truncated or
damaged files into one-paragraph errors. Messages quote the file's own data only in bounded previews.
Cost: on a 75 MB file in SDT's MELD layout (3,901 utterances, 23,406 arrays) loading takes 0.4-0.6 s
against 0.1-0.2 s for the C unpickler (protocols 2, 4, 5), as array payloads are single large reads;
peak memory is about twice the file at protocols 2-4, because the memo keeps each payload while its
array gets its own writable copy (numpy's loader copies too).
"""

from __future__ import annotations

import codecs
import collections
import os
import pickle
import re
import struct
import sys
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np

from merc_bench.errors import UserError, preview
from merc_bench.memory import available_memory, parse_size

__all__ = ["PickleLimitError", "SafeUnpickler", "UnsafePickleError", "allowed_globals", "default_max_bytes",
           "load_pickle", "MAX_BYTES_ENV"]

MAX_BYTES_ENV = "MERC_BENCH_PICKLE_MAX_BYTES"
MAX_ITEM_BYTES = 1 << 30
MAX_MEMO = 1 << 24
MAX_OBJECTS = 50_000_000
MAX_DEPTH = 100
#: Charged for every opcode: an upper estimate of what one built value, list slot or memo entry takes.
OBJECT_COST = 128
MAX_LONG_BYTES = 1024
#: Integers in (-M, M) hash to themselves, so distinct keys never share a hash.
_HASH_SAFE = sys.hash_info.modulus
_MIB = 1 << 20


class UnsafePickleError(UserError):
    """A pickle asked for something that is not plain data; nothing from it was executed."""


class PickleLimitError(UserError):
    """A pickle would exceed a resource limit (memory, length, memo, objects or nesting)."""


def _kind(value: Any) -> str:
    """A type's name for messages (the types that can occur are this module's or built-in ones)."""
    return value.qualname if isinstance(value, _Global) else type(value).__name__[:40]


def _clip(text: str) -> str:
    """A name from the file as is when short and printable, else a bounded repr."""
    return text if len(text) <= 60 and text.isprintable() else preview(text)


# -- numpy: dtypes and arrays rebuilt from checked parts ---------------------------------------------
_ITEM_SIZES = {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (2, 4, 8), "c": (8, 16)}
_KIND_NAMES = {"O": "object (Python objects, whose unpickling runs code)", "V": "void/structured (raw records)",
               "M": "datetime64", "m": "timedelta64", "T": "variable-width string"}
_TYPESTR = re.compile(r"([a-zA-Z])(\d{1,9})")
_MAX_STRING_ITEM = 1 << 20  # one U/S element


class _DtypeSpec:
    """What ``numpy.dtype(...)`` gives while unpickling: a checked type string waiting for its state."""

    __slots__ = ("kind", "size", "dtype", "memo_keys")

    def __init__(self, kind: str, size: int) -> None:
        self.kind, self.size = kind, size
        self.dtype: np.dtype | None = None
        self.memo_keys: list[int] = []

    def build(self, loader: SafeUnpickler, state: Any) -> np.dtype:
        if self.dtype is not None:
            raise loader.damaged("sets the state of one numpy dtype twice")
        order, elsize = _plain_dtype_state(loader, state)
        kind = self.kind
        size = self._checked_size(loader, elsize)
        single = kind in "bS" or (kind in "iu" and size == 1)
        if order == "=":
            order = "<" if sys.byteorder == "little" else ">"
        if order == "|" and single:
            order = ""
        elif order not in ("<", ">"):
            raise loader.damaged(f"gives the numpy dtype {kind}{size} the byte order {preview(order)}; expected "
                                 "'<' or '>' ('|' only for one-byte items)")
        self.dtype = np.dtype(f"{'' if single else order}{kind}{size}")
        return self.dtype

    def _checked_size(self, loader: SafeUnpickler, elsize: int) -> int:
        """The type string's size (characters for U/S) agreeing with the state's bytes per item."""
        kind, size = self.kind, self.size
        if kind not in "US":
            if elsize not in (-1, size):
                raise loader.damaged(f"declares a {kind}{size} dtype with {elsize} bytes per item")
            return size
        unit = 4 if kind == "U" else 1
        itemsize = size * unit if size else elsize
        if elsize not in (-1, itemsize) or not 0 < itemsize <= _MAX_STRING_ITEM or itemsize % unit:
            raise loader.damaged(f"declares a {kind} dtype of {size} characters with {elsize} bytes per item")
        return itemsize // unit


def _plain_dtype_state(loader: SafeUnpickler, state: Any) -> tuple[Any, int]:
    """(byte order, bytes per item) from numpy's dtype state, refusing structured or extended dtypes."""
    if type(state) is not tuple or len(state) not in (8, 9) or state[0] not in (3, 4):
        raise loader.damaged(f"gives a numpy dtype the state {preview(state)}; expected numpy's "
                             "(3, byteorder, None, None, None, elsize, alignment, flags)")
    order, subarray, names, fields, elsize = state[1:6]
    metadata = state[8] if len(state) == 9 else None
    if any(part is not None for part in (subarray, names, fields, metadata)):
        raise loader.unsafe("declares a numpy dtype with fields, a sub-array or metadata (a structured or "
                            "extended dtype); feature arrays may have plain numeric, bool or string dtypes only")
    if any(type(number) is not int for number in (elsize, state[6], state[7])):
        raise loader.damaged(f"gives a numpy dtype a non-integer size in its state {preview(state)}")
    return order, elsize


class _ArraySpec:
    """What ``_reconstruct(ndarray, ...)`` gives: an array waiting for BUILD's (shape, dtype, data)."""

    __slots__ = ("done", "memo_keys")

    def __init__(self) -> None:
        self.done = False
        self.memo_keys: list[int] = []

    def build(self, loader: SafeUnpickler, state: Any) -> np.ndarray:
        if self.done:
            raise loader.damaged("sets the state of one numpy array twice")
        self.done = True
        if type(state) is tuple and len(state) == 5 and type(state[0]) is int:
            state = state[1:]
        if type(state) is not tuple or len(state) != 4:
            raise loader.damaged(f"gives a numpy array the state {preview(state)}; expected numpy's "
                                 "(version, shape, dtype, is_fortran, data)")
        shape, dtype, fortran, data = state
        if fortran not in (0, 1) or type(fortran) not in (bool, int):
            raise loader.damaged(f"gives a numpy array the Fortran flag {preview(fortran)}")
        return loader.make_array(data, dtype, shape, "F" if fortran else "C")


def _as_dtype(loader: SafeUnpickler, value: Any) -> np.dtype:
    if isinstance(value, np.dtype):  # only dtypes this module built can be on the stack
        return value
    if type(value) is _DtypeSpec and value.dtype is not None:
        return value.dtype
    if type(value) is _DtypeSpec:
        raise loader.damaged("uses a numpy dtype before giving it its byte order (no BUILD)")
    raise loader.damaged(f"gives a {_kind(value)} where a numpy dtype belongs")


def _numpy_dtype(loader: SafeUnpickler, args: tuple) -> _DtypeSpec:
    if not 1 <= len(args) <= 3 or type(args[0]) is not str or any(type(a) not in (bool, int) for a in args[1:]):
        raise loader.damaged(f"calls numpy.dtype with {preview(args)}; expected numpy's (typestring, align, copy)")
    match = _TYPESTR.fullmatch(args[0])
    kind = match.group(1) if match else args[0][:1]
    if kind in _KIND_NAMES:
        raise loader.unsafe(f"holds a numpy array of dtype {preview(args[0])}, {_KIND_NAMES[kind]}; feature "
                            "files may hold only plain numeric, bool and U/S string arrays")
    size = int(match.group(2)) if match else -1
    if kind in "US" and match and size <= _MAX_STRING_ITEM:
        return _DtypeSpec(kind, size)
    if match and size in _ITEM_SIZES.get(kind, ()):
        return _DtypeSpec(kind, size)
    raise loader.unsafe(f"asks for the numpy dtype {preview(args[0])}; feature files may hold only bool, int8-64, "
                        "uint8-64, float16/32/64, complex64/128 and U/S string arrays")


def _numpy_reconstruct(loader: SafeUnpickler, args: tuple) -> _ArraySpec:
    if (len(args) != 3 or args[0] is not _NDARRAY or type(args[1]) is not tuple
            or type(args[2]) not in (bytes, str) or len(args[2]) > 8):
        raise loader.damaged(f"calls numpy's _reconstruct with {preview(args)}; expected (numpy.ndarray, (0,), b'b')")
    return _ArraySpec()


def _numpy_frombuffer(loader: SafeUnpickler, args: tuple) -> np.ndarray:
    if len(args) != 4 or args[3] not in ("C", "F"):
        raise loader.damaged(f"calls numpy's _frombuffer with {preview(args)}; expected (buffer, dtype, shape, "
                             "'C' or 'F')")
    return loader.make_array(args[0], args[1], args[2], args[3])


def _numpy_scalar(loader: SafeUnpickler, args: tuple) -> np.generic:
    if len(args) != 2:
        raise loader.damaged(f"calls numpy's scalar with {preview(args)}; expected (dtype, data)")
    return loader.make_array(args[1], args[0], (), "C")[()]


def _numpy_ndarray(loader: SafeUnpickler, args: tuple) -> Any:
    raise loader.unsafe("calls numpy.ndarray directly (numpy pickles arrays through _reconstruct or _frombuffer)")


# -- builtins: the allowed callables, with their arguments checked -----------------------------------
_SCALARS = (str, bytes, bool, int, float, complex, type(None))
_CONTAINERS = (list, tuple, set, frozenset, dict, collections.OrderedDict, collections.defaultdict)


def _text_or_number(value: Any, limit: int = 64) -> bool:
    return type(value) in (bool, int, float) or (type(value) is str and len(value) <= limit)


def _copy_of(kind: type) -> Callable[[SafeUnpickler, tuple], Any]:
    """``list(x)``, ``tuple(x)``, ``set(x)``, ``frozenset(x)``: a copy of a container, charged by size."""

    def build(loader: SafeUnpickler, args: tuple) -> Any:
        if not args:
            return kind()
        if len(args) != 1 or type(args[0]) not in (list, tuple, set, frozenset, dict):
            raise loader.damaged(f"calls {kind.__name__} with {preview(args)}; expected one container")
        loader.charge(OBJECT_COST * len(args[0]), f"a {kind.__name__} of {len(args[0]):,} items")
        if kind in (set, frozenset):
            loader.check_keys(args[0])
        return kind(args[0])

    return build


def _mapping_of(kind: type) -> Callable[[SafeUnpickler, tuple], Any]:
    """``dict(pairs)``, ``OrderedDict(pairs)`` (how Python 2 pickled it), keys checked."""

    def build(loader: SafeUnpickler, args: tuple) -> Any:
        if not args:
            return kind()
        if len(args) != 1 or type(args[0]) not in (list, tuple, dict, collections.OrderedDict):
            raise loader.damaged(f"calls {kind.__name__} with {preview(args)}; expected a list of pairs")
        return loader.fill_mapping(kind(), args[0], kind.__name__)

    return build


def _defaultdict(loader: SafeUnpickler, args: tuple) -> collections.defaultdict:
    factory = args[0] if args else None
    if factory is not None and not (isinstance(factory, _Global) and factory.value in _CONTAINERS + _SCALARS):
        raise loader.unsafe(f"makes a defaultdict whose factory is {_kind(factory)}; a feature file's defaultdict "
                            "may only make plain containers or scalars")
    if len(args) > 2:
        raise loader.damaged(f"calls defaultdict with {len(args)} arguments")
    made = collections.defaultdict(factory.value if factory is not None else None)
    return loader.fill_mapping(made, args[1], "defaultdict") if len(args) == 2 else made


def _scalar_of(kind: type) -> Callable[[SafeUnpickler, tuple], Any]:
    """``int``, ``float``, ``bool``, ``complex``, ``str`` of scalars or short text only."""

    def build(loader: SafeUnpickler, args: tuple) -> Any:
        if len(args) > (2 if kind is complex else 1) or not all(_text_or_number(a) for a in args):
            raise loader.damaged(f"calls {kind.__name__} with {preview(args)}; expected a number or short text")
        return kind(*args)

    return build


def _str(loader: SafeUnpickler, args: tuple) -> str:
    if args == () or (len(args) == 1 and type(args[0]) is str):
        return str(*args)
    raise loader.damaged(f"calls str with {preview(args)}; expected text")


def _bytes_of(kind: type) -> Callable[[SafeUnpickler, tuple], Any]:
    """``bytes()``/``bytearray()`` of bytes, or of Latin-1 text (protocol <= 2); never of a count."""

    def build(loader: SafeUnpickler, args: tuple) -> Any:
        if not args:
            return kind()
        if len(args) == 1 and type(args[0]) in (bytes, bytearray):
            loader.charge(len(args[0]), f"a {len(args[0]):,}-byte {kind.__name__}")
            return kind(args[0])
        if len(args) == 2 and type(args[0]) is str and _is_latin1(args[1]):
            loader.charge(len(args[0]), f"a {len(args[0]):,}-byte {kind.__name__}")
            return kind(args[0], "latin-1")
        raise loader.unsafe(f"calls {kind.__name__} with {preview(args)}; only a copy of bytes or of Latin-1 text is "
                            "plain data (a number would allocate that many bytes)")

    return build


def _is_latin1(encoding: Any) -> bool:
    try:
        return type(encoding) is str and len(encoding) < 32 and codecs.lookup(encoding).name == "iso8859-1"
    except LookupError:
        return False


def _latin1_encode(loader: SafeUnpickler, args: tuple) -> bytes:
    """``_codecs.encode`` as Python 3 pickles ``bytes`` at protocol <= 2, and nothing else."""
    if len(args) not in (1, 2) or type(args[0]) is not str or (len(args) == 2 and not _is_latin1(args[1])):
        raise loader.unsafe(f"calls _codecs.encode with {preview(args)}, which is not allowed in a feature file: "
                            "only Latin-1 text (how Python 3 pickles bytes) is; other codecs decompress or decode data")
    loader.charge(len(args[0]), f"a {len(args[0]):,}-byte bytes object")
    return args[0].encode("latin-1")


class _Global:
    """An allowed ``module.name``: what the file gets instead of the real object."""

    __slots__ = ("qualname", "value", "builder")

    def __init__(self, qualname: str, value: Any, builder: Callable[[SafeUnpickler, tuple], Any]) -> None:
        self.qualname, self.value, self.builder = qualname, value, builder


def _make_globals() -> dict[tuple[str, str], _Global]:
    builtins: dict[str, tuple[type, Callable]] = {
        "dict": (dict, _mapping_of(dict)), "list": (list, _copy_of(list)), "tuple": (tuple, _copy_of(tuple)),
        "set": (set, _copy_of(set)), "frozenset": (frozenset, _copy_of(frozenset)), "str": (str, _str),
        "bytes": (bytes, _bytes_of(bytes)), "bytearray": (bytearray, _bytes_of(bytearray)),
        "int": (int, _scalar_of(int)), "float": (float, _scalar_of(float)), "bool": (bool, _scalar_of(bool)),
        "complex": (complex, _scalar_of(complex)),
    }
    allowed: dict[tuple[str, str], _Global] = {}
    for name, (value, builder) in builtins.items():
        for module in ("builtins", "__builtin__"):
            allowed[(module, name)] = _Global(f"{module}.{name}", value, builder)
    allowed[("__builtin__", "unicode")] = _Global("__builtin__.unicode", str, _str)
    allowed[("__builtin__", "long")] = _Global("__builtin__.long", int, _scalar_of(int))
    allowed[("collections", "OrderedDict")] = _Global("collections.OrderedDict", collections.OrderedDict,
                                                      _mapping_of(collections.OrderedDict))
    allowed[("collections", "defaultdict")] = _Global("collections.defaultdict", collections.defaultdict,
                                                      _defaultdict)
    allowed[("_codecs", "encode")] = _Global("_codecs.encode", codecs.encode, _latin1_encode)
    allowed[("numpy", "ndarray")] = _NDARRAY
    allowed[("numpy", "dtype")] = _Global("numpy.dtype", np.dtype, _numpy_dtype)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _Global(f"{module}._reconstruct", None, _numpy_reconstruct)
        allowed[(module, "scalar")] = _Global(f"{module}.scalar", None, _numpy_scalar)
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = _Global(f"{module}._frombuffer", None, _numpy_frombuffer)
    return allowed


_NDARRAY = _Global("numpy.ndarray", np.ndarray, _numpy_ndarray)
_ALLOWED = _make_globals()


def allowed_globals() -> list[str]:
    """The allow-list: the ``module.name`` globals a feature pickle may refer to."""
    return sorted(g.qualname for g in _ALLOWED.values())


# -- the unpickler ------------------------------------------------------------------------------------
class _Stop(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


_op = pickle._Unpickler.dispatch  # noqa: SLF001 - the pure-Python opcode table, extended below


class SafeUnpickler(pickle._Unpickler):  # noqa: SLF001 - the pure-Python unpickler: every opcode passes here
    """An unpickler that builds only plain containers, scalars and checked numpy arrays, within limits.

    ``source`` names the file in error messages; ``size`` is its length in bytes (a length prefix
    claiming more than what is left of the file is refused before reading). The limits are those of
    :func:`load_pickle`.
    """

    def __init__(self, file: Any, *, source: str = "<pickle>", size: int, max_bytes: int | None = None,
                 max_item_bytes: int = MAX_ITEM_BYTES, max_memo: int = MAX_MEMO, max_objects: int = MAX_OBJECTS,
                 max_depth: int = MAX_DEPTH, encoding: str = "ASCII") -> None:
        super().__init__(file, encoding=encoding, errors="strict")
        self.source, self._stream, self._size = source, file, size
        if max_bytes is not None:
            self._origin = "given by the caller"
        elif os.environ.get(MAX_BYTES_ENV, "").strip():
            self._origin = f"set by {MAX_BYTES_ENV}"
        else:
            self._origin = "64 times its size, at least 256 MiB, at most half the free memory"
        max_bytes = default_max_bytes(size) if max_bytes is None else max_bytes
        self.max_bytes, self.max_item_bytes = max_bytes, max_item_bytes
        self.max_memo, self.max_objects, self.max_depth = max_memo, max_objects, max_depth
        self._charged = 0
        self._ops = 0
        self._ops_allowed = min(max_objects, max_bytes // OBJECT_COST)

    # - errors -
    def damaged(self, what: str) -> UserError:
        return UserError(f"{self.source!r} is damaged or not a feature pickle: it {what}. Download it again and "
                         "compare its checksum.")

    def unsafe(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(f"refusing to load {self.source!r}: it {what}. Nothing from the file was executed.")

    def limit(self, what: str, limit: str, advice: str = "A genuine feature file stays far below it; the file is "
              "damaged or crafted.") -> PickleLimitError:
        return PickleLimitError(f"refusing to load {self.source!r}: {what}, over the limit of {limit}. {advice}")

    def _budget_error(self, what: str) -> PickleLimitError:
        used = self._charged + self._ops * OBJECT_COST
        return self.limit(f"loading it would allocate more than {self.max_bytes / _MIB:,.0f} MiB (about "
                          f"{used / _MIB:,.0f} MiB so far, then {what})",
                          f"{self.max_bytes:,} bytes for this {self._size:,}-byte file ({self._origin})",
                          f"A feature file needs about twice its size; if this one is genuine, free memory or raise "
                          f"the limit with {MAX_BYTES_ENV}=<bytes, or e.g. 16G>.")

    # - accounting -
    def charge(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` against the allocation budget before they are allocated."""
        if self._charged + nbytes + self._ops * OBJECT_COST > self.max_bytes:
            raise self._budget_error(what)
        self._charged += nbytes
        self._ops_allowed = min(self.max_objects, (self.max_bytes - self._charged) // OBJECT_COST)

    def _too_many_ops(self) -> None:
        if self._ops > self.max_objects:
            raise self.limit(f"it builds more than {self.max_objects:,} values", f"{self.max_objects:,} values")
        raise self._budget_error("more values")

    def _frame_left(self) -> int:
        frame = self._unframer.current_frame
        if frame is None:
            return 0
        with frame.getbuffer() as view:
            return view.nbytes - frame.tell()

    def _remaining(self) -> int:
        """Bytes the next read can return: the rest of the current frame, or else of the file."""
        return self._frame_left() or self._size - self._stream.tell()

    def _check_length(self, n: int, what: str) -> None:
        if n > self.max_item_bytes:
            raise self.limit(f"it declares a {n:,}-byte {what}", f"{self.max_item_bytes:,} bytes for one item")
        left = self._remaining()
        if n > left:
            raise UserError(f"{self.source!r} is truncated or not a pickle: it declares a {n:,}-byte {what} but only "
                            f"{left:,} bytes follow; the file is {self._size:,} bytes. Download it again and compare "
                            "its checksum.")
        self.charge(n, f"a {n:,}-byte {what}")

    def _length(self, fmt: str) -> int:
        (n,) = struct.unpack(fmt, self.read(struct.calcsize(fmt)))
        if n < 0:
            raise self.damaged("declares a negative length")
        return n

    def _payload(self, fmt: str, what: str) -> bytes:
        n = self._length(fmt)
        self._check_length(n, what)
        return self.read(n)

    # - the loop -
    def load(self) -> Any:
        self._unframer = pickle._Unframer(self._file_read, self._file_readline)  # noqa: SLF001
        self.read = self._unframer.read
        self.readinto = self._unframer.readinto
        self.readline = self._unframer.readline
        self.metastack, self.stack = [], []
        self.append = self.stack.append
        self.proto = 0
        read, dispatch = self.read, _DISPATCH
        try:
            while True:
                key = read(1)
                if not key:
                    raise EOFError("the file ends before the pickle's STOP opcode")
                self._ops += 1
                if self._ops > self._ops_allowed:
                    self._too_many_ops()
                dispatch[key[0]](self)
        except _Stop as stop:
            value = stop.value
        self.stack = self.metastack = []
        self.memo = {}
        _audit(self, value)
        return value

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {self.source!r}: it asks to import {_clip(module)}.{_clip(name)}, "
                "which is not plain data. Feature files may hold only built-in containers and numpy arrays, because "
                "unpickling anything else can run code; nothing from the file was executed. If you made this file "
                "and trust it, save its contents as plain lists, dicts and numpy arrays instead."
            ) from None

    # - numpy arrays -
    def make_array(self, data: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
        """An array from checked parts: plain dtype, shape × item size == len(data), C or F order."""
        dtype = _as_dtype(self, dtype)
        if (type(shape) is not tuple or len(shape) > 32
                or any(type(d) is not int or not 0 <= d < 1 << 48 for d in shape)):
            raise self.damaged(f"gives a numpy array the shape {preview(shape)}; expected at most 32 sizes "
                               "between 0 and 2^48")
        if type(data) is str:  # Python 2 byte strings decoded as Latin-1, as numpy's own loader accepts
            self.charge(len(data), f"a {len(data):,}-byte array")
            try:
                data = data.encode("latin-1")
            except UnicodeEncodeError:
                raise self.damaged("gives a numpy array text data that is not Latin-1") from None
        elif type(data) not in (bytes, bytearray):
            raise self.unsafe(f"gives a numpy array a {_kind(data)} as its data instead of bytes (as an object "
                              "array would)")
        count, span = 1, dtype.itemsize
        for d in shape:
            count, span = count * d, span * max(d, 1)
        if span > self.max_item_bytes:  # an empty array whose other sizes claim terabytes misleads its readers too
            raise self.limit(f"it declares a numpy array of shape {preview(shape)} and dtype {dtype.str}, "
                             f"{span:,} bytes with empty dimensions counted as 1",
                             f"{self.max_item_bytes:,} bytes for one item")
        if count * dtype.itemsize != len(data):
            raise self.damaged(f"declares a numpy array of shape {preview(shape)} and dtype {dtype.str} "
                               f"({count * dtype.itemsize:,} bytes) with {len(data):,} bytes of data")
        if count == 0:
            return np.empty(shape, dtype, order=order)
        if dtype.kind == "b":  # any non-zero byte is True; stored as 0/1 as numpy's own bools are
            self.charge(len(data), f"a {len(data):,}-byte array")
            return (np.frombuffer(data, dtype=np.uint8) != 0).reshape(shape, order=order)
        flat = np.frombuffer(data, dtype=dtype)
        if dtype.kind == "U":  # numpy raises SystemError on reading a code point above U+10FFFF
            codes = np.frombuffer(data, dtype=dtype.byteorder.replace("|", "=") + "u4")
            if int(codes.max()) > sys.maxunicode:
                raise self.damaged(f"holds a {dtype.str} string array with a character code above {sys.maxunicode:#x}")
        if type(data) is bytes:  # numpy's own loader copies too: a writable array, not a view of the file
            self.charge(len(data), f"a {len(data):,}-byte array")
            flat = flat.copy()
        return flat.reshape(shape, order=order)

    # - opcodes with a length prefix: checked before reading -
    def _load_bytes(self, fmt: str) -> None:
        self.append(self._payload(fmt, "bytes object"))

    def _load_unicode(self, fmt: str) -> None:
        self.append(str(self._payload(fmt, "string"), "utf-8", "surrogatepass"))

    def _load_string(self, fmt: str) -> None:
        self.append(self._decode_string(self._payload(fmt, "Python 2 string")))

    def _load_bytearray8(self) -> None:
        n = self._length("<Q")
        self._check_length(n, "bytearray")
        buffer = bytearray(n)
        if self._frame_left():
            got = self._unframer.current_frame.readinto(buffer)
        else:  # straight from the file into the buffer: no second copy of a large array
            self._unframer.current_frame = None
            got, view = 0, memoryview(buffer)
            while got < n:
                step = self._stream.readinto(view[got:])
                if not step:
                    break
                got += step
            view.release()
        if got != n:
            raise EOFError("the file ends inside a bytearray")
        self.append(buffer)

    def _load_long(self, fmt: str) -> None:
        n = self._length(fmt)
        if n > MAX_LONG_BYTES:
            raise self.limit(f"it declares a {n:,}-byte integer", f"{MAX_LONG_BYTES} bytes for an integer")
        self._check_length(n, "integer")
        self.append(pickle.decode_long(self.read(n)))

    def _load_frame(self) -> None:
        (n,) = struct.unpack("<Q", self.read(8))
        left = self._size - self._stream.tell()
        if n > left:
            raise UserError(f"{self.source!r} is truncated or not a pickle: it declares a {n:,}-byte frame but only "
                            f"{left:,} bytes follow. Download it again and compare its checksum.")
        self._unframer.load_frame(n)

    # - memo -
    def _memo_put(self, index: int) -> None:
        memo = self.memo
        if index not in memo and len(memo) >= self.max_memo:
            raise self.limit(f"it stores more than {self.max_memo:,} values in its memo",
                             f"{self.max_memo:,} memo entries")
        value = self.stack[-1]
        memo[index] = value
        if type(value) in (_ArraySpec, _DtypeSpec):
            value.memo_keys.append(index)

    def _load_put(self) -> None:
        line = self.readline()[:-1]
        if len(line) > 12 or not line.isdigit():
            raise self.damaged(f"has the memo index {preview(line)}")
        self._memo_put(int(line))

    def _load_binput(self) -> None:
        self._memo_put(self.read(1)[0])

    def _load_long_binput(self) -> None:
        self._memo_put(struct.unpack("<I", self.read(4))[0])

    def _load_memoize(self) -> None:
        self._memo_put(len(self.memo))

    def _load_mark(self) -> None:
        if len(self.metastack) >= self.max_depth:
            raise self.limit(f"it nests more than {self.max_depth} MARKs", f"{self.max_depth} levels")
        self.metastack.append(self.stack)
        self.stack = []
        self.append = self.stack.append

    def _load_stop(self) -> None:
        raise _Stop(self.stack.pop())

    # - calls: only the allowed builders -
    def _call(self, func: Any, args: Any) -> Any:
        if not isinstance(func, _Global):
            raise self.damaged(f"calls a {_kind(func)} value")
        if type(args) is not tuple:
            raise self.damaged(f"calls {func.qualname} with {_kind(args)} arguments instead of a tuple")
        return func.builder(self, args)

    def _load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        stack[-1] = self._call(stack[-1], args)

    def _load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, {}))

    def _load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, kwargs))

    def _new(self, cls: Any, args: Any, kwargs: Any) -> Any:
        # NEWOBJ makes an instance without __init__: only an empty plain container is data.
        if not (isinstance(cls, _Global) and cls.value in _CONTAINERS) or args != () or kwargs != {}:
            raise self.unsafe(f"creates a {_kind(cls)} object with NEWOBJ and arguments {preview(args)}")
        return cls.value()

    def _load_inst(self) -> None:
        module = self.readline()[:-1].decode("ascii")
        name = self.readline()[:-1].decode("ascii")
        func = self.find_class(module, name)
        self.append(self._call(func, tuple(self.pop_mark())))

    def _load_obj(self) -> None:
        args = self.pop_mark()
        if not args:
            raise self.damaged("has an OBJ opcode without a class")
        self.append(self._call(args[0], tuple(args[1:])))

    def _load_build(self) -> None:
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        if type(inst) not in (_ArraySpec, _DtypeSpec):
            raise self.unsafe(f"sets the state of a {_kind(inst)} object (BUILD); only numpy arrays and dtypes "
                              "are built that way in a feature file")
        built = inst.build(self, state)
        stack[-1] = built
        for key in inst.memo_keys:
            if self.memo.get(key) is inst:
                self.memo[key] = built

    # - containers: right target type, safe keys -
    def check_keys(self, keys: Any) -> None:
        for key in keys:
            kind = type(key)
            if kind is str or kind is bytes or kind is float or kind is bool or key is None:
                continue
            if kind is int and -_HASH_SAFE < key < _HASH_SAFE:
                continue
            if isinstance(key, np.generic) and key.dtype.kind in "biufUS":
                continue
            raise self.unsafe(f"uses {preview(key) if kind is int else 'a ' + _kind(key)} as a dictionary key or "
                              "set member; feature files key by text or integers below 2^61")

    def fill_mapping(self, target: dict, items: Any, what: str) -> dict:
        if isinstance(items, dict):
            pairs = list(items.items())
        else:
            pairs = list(items)
            if not all(type(p) in (tuple, list) and len(p) == 2 for p in pairs):
                raise self.damaged(f"builds a {what} from {preview(items)}; expected (key, value) pairs")
        self.charge(OBJECT_COST * len(pairs), f"a {what} of {len(pairs):,} items")
        self.check_keys(p[0] for p in pairs)
        target.update(pairs)
        return target

    def _target(self, kinds: tuple, what: str) -> Any:
        target = self.stack[-1]
        if type(target) not in kinds:
            raise self.damaged(f"{what} a {_kind(target)}")
        return target

    def _load_append(self) -> None:
        value = self.stack.pop()
        self._target((list,), "appends to").append(value)

    def _load_appends(self) -> None:
        items = self.pop_mark()
        self._target((list,), "appends to").extend(items)

    def _load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        target = self._target((dict, collections.OrderedDict, collections.defaultdict), "sets an item of")
        self.check_keys((key,))
        target[key] = value

    def _load_setitems(self) -> None:
        items = self.pop_mark()
        target = self._target((dict, collections.OrderedDict, collections.defaultdict), "sets items of")
        if len(items) % 2:
            raise self.damaged("sets dictionary items from an odd number of values")
        keys = items[0::2]
        self.check_keys(keys)
        target.update(zip(keys, items[1::2]))

    def _load_dict(self) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            raise self.damaged("builds a dictionary from an odd number of values")
        keys = items[0::2]
        self.check_keys(keys)
        self.append(dict(zip(keys, items[1::2])))

    def _load_additems(self) -> None:
        items = self.pop_mark()
        self.check_keys(items)
        self._target((set,), "adds set items to").update(items)

    def _load_frozenset(self) -> None:
        items = self.pop_mark()
        self.check_keys(items)
        self.append(frozenset(items))


def _refusing(what: str) -> Callable[[SafeUnpickler], None]:
    def refuse(self: SafeUnpickler) -> None:
        raise self.unsafe(what)

    return refuse


def _invalid(self: SafeUnpickler) -> None:
    raise pickle.UnpicklingError("invalid opcode")


def _dispatch_table() -> list[Callable[[SafeUnpickler], None]]:
    table: dict[bytes, Callable] = {bytes([k]): v for k, v in _op.items()}
    S = SafeUnpickler
    table.update({
        pickle.BINBYTES: lambda self: self._load_bytes("<I"),
        pickle.SHORT_BINBYTES: lambda self: self._load_bytes("<B"),
        pickle.BINBYTES8: lambda self: self._load_bytes("<Q"),
        pickle.BINUNICODE: lambda self: self._load_unicode("<I"),
        pickle.SHORT_BINUNICODE: lambda self: self._load_unicode("<B"),
        pickle.BINUNICODE8: lambda self: self._load_unicode("<Q"),
        pickle.BINSTRING: lambda self: self._load_string("<i"),
        pickle.SHORT_BINSTRING: lambda self: self._load_string("<B"),
        pickle.LONG1: lambda self: self._load_long("<B"),
        pickle.LONG4: lambda self: self._load_long("<i"),
        pickle.BYTEARRAY8: S._load_bytearray8, pickle.FRAME: S._load_frame,
        pickle.PUT: S._load_put, pickle.BINPUT: S._load_binput, pickle.LONG_BINPUT: S._load_long_binput,
        pickle.MEMOIZE: S._load_memoize, pickle.MARK: S._load_mark, pickle.STOP: S._load_stop,
        pickle.REDUCE: S._load_reduce, pickle.NEWOBJ: S._load_newobj, pickle.NEWOBJ_EX: S._load_newobj_ex,
        pickle.INST: S._load_inst, pickle.OBJ: S._load_obj, pickle.BUILD: S._load_build,
        pickle.APPEND: S._load_append, pickle.APPENDS: S._load_appends, pickle.SETITEM: S._load_setitem,
        pickle.SETITEMS: S._load_setitems, pickle.DICT: S._load_dict, pickle.ADDITEMS: S._load_additems,
        pickle.FROZENSET: S._load_frozenset,
        pickle.PERSID: _refusing("refers to a persistent object (PERSID), which only the program that wrote it can "
                                 "resolve"),
        pickle.BINPERSID: _refusing("refers to a persistent object (BINPERSID), which only the program that wrote it "
                                    "can resolve"),
        pickle.EXT1: _refusing("refers to a registered extension (EXT1), which names a global indirectly"),
        pickle.EXT2: _refusing("refers to a registered extension (EXT2), which names a global indirectly"),
        pickle.EXT4: _refusing("refers to a registered extension (EXT4), which names a global indirectly"),
        pickle.NEXT_BUFFER: _refusing("refers to an out-of-band buffer (NEXT_BUFFER), which a file cannot carry"),
        pickle.READONLY_BUFFER: _refusing("refers to an out-of-band buffer (READONLY_BUFFER)"),
    })
    out: list[Callable] = [_invalid] * 256
    for key, handler in table.items():
        out[key[0]] = handler
    return out


_DISPATCH = _dispatch_table()


# -- after loading: no placeholders, no cycles, bounded depth and expanded size ----------------------
_LEAVES: set[type] = {str, bytes, bytearray, int, float, bool, complex, type(None), np.ndarray}
_FOREIGN: set[type] = {_Global, _ArraySpec, _DtypeSpec}


def _is_leaf(kind: type) -> bool:
    if kind in _LEAVES:
        return True
    if kind not in _FOREIGN and (issubclass(kind, np.generic) or issubclass(kind, np.dtype)):
        _LEAVES.add(kind)
        return True
    return False


def _audit(loader: SafeUnpickler, root: Any) -> None:
    """Refuse what a consumer could not walk safely: leftovers, cycles, depth, shared-container blowup.

    An iterative post-order walk over lists, tuples and dict values (set members and keys are scalars
    by construction). Each container's expanded size is computed once (by id), so a small file that
    references one list from many places is counted as a consumer's loop would see it.
    """
    containers = (list, tuple, dict, collections.OrderedDict, collections.defaultdict)
    done: dict[int, tuple[int, int]] = {}  # id -> (expanded size, depth)

    def inner(node: Any) -> list:
        items = node.values() if isinstance(node, dict) else node
        if all(_is_leaf(kind) for kind in set(map(type, items))):  # the common case, at C speed
            return []
        return [x for x in items if not _is_leaf(type(x))]

    def leftover(value: Any) -> UserError:
        if type(value) in (_ArraySpec, _DtypeSpec):
            return loader.damaged("uses a numpy array or dtype before it is complete, or outside the place numpy "
                                  "puts it")
        if isinstance(value, _Global):
            return loader.unsafe(f"holds {value.qualname} itself (a type or function) as a value, not data")
        return loader.damaged(f"holds a {_kind(value)} value")

    if type(root) not in containers:
        if not _is_leaf(type(root)) and type(root) not in (set, frozenset):
            raise leftover(root)
        return
    path = {id(root)}
    work = [(root, inner(root), 0)]
    while work:
        node, children, position = work[-1]
        if position < len(children):
            work[-1] = (node, children, position + 1)
            child = children[position]
            kind = type(child)
            if kind in (set, frozenset) or id(child) in done:
                continue
            if kind not in containers:
                raise leftover(child)
            if id(child) in path:
                raise loader.unsafe("holds a container that contains itself (a cycle), which no feature file needs")
            if len(work) >= loader.max_depth:
                raise loader.limit(f"it nests containers more than {loader.max_depth} levels deep",
                                   f"{loader.max_depth} levels")
            path.add(id(child))
            work.append((child, inner(child), 0))
            continue
        work.pop()
        path.discard(id(node))
        total, deepest = 1 + len(node), 0
        for child in children:
            if id(child) in done:
                size, depth = done[id(child)]
                total += size - 1
                deepest = max(deepest, depth)
        if total > loader.max_objects:
            raise loader.limit(f"it holds more than {loader.max_objects:,} values when shared containers are counted "
                               "each time they are referenced", f"{loader.max_objects:,} values")
        done[id(node)] = (total, deepest + 1)


# -- the entry point ----------------------------------------------------------------------------------
def default_max_bytes(file_size: int) -> int:
    """The allocation limit for a file of ``file_size`` bytes (see the module docstring)."""
    configured = os.environ.get(MAX_BYTES_ENV, "").strip()
    if configured:
        return parse_size(configured, where=MAX_BYTES_ENV)
    return min(max(64 * file_size, 256 * _MIB), available_memory() // 2)


def load_pickle(path: Path | str, *, max_bytes: int | None = None, max_item_bytes: int = MAX_ITEM_BYTES,
                max_memo: int = MAX_MEMO, max_objects: int = MAX_OBJECTS, max_depth: int = MAX_DEPTH) -> Any:
    """Unpickle ``path`` through :class:`SafeUnpickler`; Python 2 files are retried as Latin-1.

    ``max_bytes`` defaults to :func:`default_max_bytes` of the file's size. Raises
    :class:`~merc_bench.errors.UserError` (:class:`UnsafePickleError`, :class:`PickleLimitError`) for
    an unreadable, truncated, damaged, unsafe or oversized file.
    """
    path = Path(path)
    source = str(path)
    try:
        stream = open(path, "rb")  # noqa: SIM115 -- closed by the `with stream:` below, once its size is known
        size = os.fstat(stream.fileno()).st_size
    except OSError as error:
        raise UserError(f"cannot read {source!r}: {error.strerror or error}.") from None
    with stream:
        if not size:
            raise UserError(f"{source!r} is empty (0 bytes); expected a pickled feature file.")
        limits = {"size": size, "max_bytes": max_bytes,
                  "max_item_bytes": max_item_bytes, "max_memo": max_memo, "max_objects": max_objects,
                  "max_depth": max_depth}
        try:
            try:
                return SafeUnpickler(stream, source=source, encoding="ASCII", **limits).load()
            except UnicodeDecodeError:
                # A Python 2 ``str`` (utterance ids, numpy buffers) that is not ASCII: the files'
                # own loaders read them with encoding='latin1', which maps every byte.
                stream.seek(0)
                return SafeUnpickler(stream, source=source, encoding="latin1", **limits).load()
        except UserError:
            raise
        except MemoryError:
            raise PickleLimitError(f"refusing to load {source!r}: the machine ran out of memory while loading it "
                                   f"({size:,} bytes); lower {MAX_BYTES_ENV} or free memory.") from None
        except OSError as error:
            raise UserError(f"cannot read {source!r}: {error.strerror or error}.") from None
        except (EOFError, pickle.UnpicklingError, struct.error) as error:
            raise UserError(
                f"{source!r} is truncated or not a pickle ({preview(str(error))[1:-1] or type(error).__name__}); "
                f"the file is {size:,} bytes. Download it again and compare its checksum."
            ) from None
        except Exception as error:  # any other failure while rebuilding objects means damaged input
            raise UserError(
                f"{source!r} is damaged or not a feature pickle ({type(error).__name__}: "
                f"{preview(str(error))[1:-1]}). Download it again and compare its checksum."
            ) from None
