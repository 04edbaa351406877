"""Load the community's feature pickles without letting them run code.

MERC papers ship their utterance features as Python pickles (SDT, MMGCN, DialogueRNN, COSMIC,
MultiEMO; see ``shared/docs/reference-models.md`` §1). Unpickling calls whatever importable
function a file names, so a file from an unknown link is a program, not data. The
:class:`SafeUnpickler` here overrides :meth:`pickle.Unpickler.find_class`, the one place where a
pickle turns a ``module.name`` into a callable, and answers only from a fixed allow-list:

* built-in containers and scalars (``dict list tuple set frozenset str bytes bytearray int float
  bool complex``), under their Python 3 and Python 2 (``__builtin__``) names;
* ``collections.OrderedDict`` and ``collections.defaultdict``;
* numpy array reconstruction: ``numpy.ndarray``, ``numpy.dtype``, ``_reconstruct`` and ``scalar``
  from ``numpy.core.multiarray`` (numpy 1.x files) and ``numpy._core.multiarray`` (numpy 2.x), and
  ``_frombuffer`` from ``numpy.core.numeric`` / ``numpy._core.numeric`` (protocol 5). Both module
  spellings resolve to the running numpy's own functions, so a file written by either major
  version loads under either, and the deprecated ``numpy.core`` alias is never imported;
* ``_codecs.encode`` restricted to Latin-1, which Python 3 writes for ``bytes`` at protocol <= 2.

Anything else is refused with a :class:`~merc_bench.errors.UserError` naming the global and the file
*when the global is looked up* — before the reduce step that would call it, so nothing from the
file has run. :func:`load_pickle` also retries with ``encoding='latin1'`` when a Python 2 ``str``
cannot be decoded as ASCII (SDT's and DialogueRNN's IEMOCAP files need it, as their loaders say),
and turns truncated or damaged files into one-paragraph errors.
"""

from __future__ import annotations

import codecs
import collections
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from merc_bench.errors import UserError

__all__ = ["SafeUnpickler", "UnsafePickleError", "allowed_globals", "load_pickle"]


class UnsafePickleError(UserError):
    """A pickle asked for a global outside the allow-list; nothing from it was executed."""


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 pickles ``bytes`` at protocol <= 2, and nothing else.

    The real ``codecs.encode`` looks codecs up by name (zlib, base64, ...); only Latin-1 is needed
    to rebuild bytes, so any other codec name is treated as damage.
    """
    try:
        latin1 = isinstance(encoding, str) and codecs.lookup(encoding).name == "iso8859-1"
    except LookupError:
        latin1 = False
    if not latin1 or not isinstance(text, str):
        raise ValueError(f"_codecs.encode with codec {encoding!r} is not allowed in a feature file")
    return text.encode("latin1", errors)


def _numpy_globals() -> dict[tuple[str, str], Any]:
    # Take the functions from numpy's own reduce results instead of importing private modules by
    # name: that works on numpy 1.x and 2.x alike and never touches the deprecated numpy.core alias.
    reconstruct = np.zeros(1).__reduce__()[0]
    scalar = np.float64(0.0).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = frombuffer
    return allowed


def allowed_globals() -> dict[tuple[str, str], Any]:
    """The allow-list: ``(module, name)`` → the object a pickle may receive for it."""
    builtin_types = {t.__name__: t for t in (dict, list, tuple, set, frozenset, str, bytes, bytearray, int,
                                             float, bool, complex)}
    allowed: dict[tuple[str, str], Any] = {}
    for name, value in builtin_types.items():
        allowed[("builtins", name)] = value
        allowed[("__builtin__", name)] = value
    # Python 2 spellings of the same types (what pickle's fix_imports would map them to).
    allowed[("__builtin__", "unicode")] = str
    allowed[("__builtin__", "long")] = int
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    allowed[("collections", "defaultdict")] = collections.defaultdict
    allowed[("_codecs", "encode")] = _latin1_encode
    allowed.update(_numpy_globals())
    return allowed


_ALLOWED = allowed_globals()


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers, scalars and numpy arrays.

    ``source`` names the file in error messages.
    """

    def __init__(self, file: Any, *, source: str = "<pickle>", **options: Any) -> None:
        super().__init__(file, **options)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {self.source!r}: it asks to import {module}.{name}, which is not plain "
                "data. Feature files may hold only built-in containers and numpy arrays, because unpickling "
                "anything else can run code; nothing from the file was executed. If you made this file and "
                "trust it, save its contents as plain lists, dicts and numpy arrays instead."
            ) from None


def load_pickle(path: Path | str) -> Any:
    """Unpickle ``path`` through :class:`SafeUnpickler`; Python 2 files are retried as Latin-1.

    Raises :class:`~merc_bench.errors.UserError` for an unreadable, truncated, damaged or unsafe file.
    """
    path = Path(path)
    source = str(path)
    try:
        stream = open(path, "rb")
        size = os.fstat(stream.fileno()).st_size
    except OSError as error:
        raise UserError(f"cannot read {source!r}: {error.strerror or error}.") from None
    # Read through the buffered file (the C unpickler prefetches) rather than a bytes copy of it.
    with stream:
        if not size:
            raise UserError(f"{source!r} is empty (0 bytes); expected a pickled feature file.")
        try:
            try:
                return SafeUnpickler(stream, source=source, encoding="ASCII").load()
            except UnicodeDecodeError:
                # A Python 2 ``str`` (utterance ids, numpy buffers) that is not ASCII: the files'
                # own loaders read them with encoding='latin1', which maps every byte.
                stream.seek(0)
                return SafeUnpickler(stream, source=source, encoding="latin1").load()
        except UserError:
            raise
        except OSError as error:
            raise UserError(f"cannot read {source!r}: {error.strerror or error}.") from None
        except (EOFError, pickle.UnpicklingError) as error:
            raise UserError(
                f"{source!r} is truncated or not a pickle ({error}); the file is {size:,} bytes. "
                "Download it again and compare its checksum."
            ) from None
        except Exception as error:  # any other failure while rebuilding objects means damaged input
            raise UserError(
                f"{source!r} is damaged or not a feature pickle ({type(error).__name__}: {error}). "
                "Download it again and compare its checksum."
            ) from None
