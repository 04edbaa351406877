"""User-facing errors.

A :class:`UserError` is a mistake the person running merc-bench can fix (an unknown name, a typo in
``--set``, a missing modality, an unwritable folder). The CLI prints its message as one paragraph
and exits with code 2, without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable
from typing import Any

__all__ = ["TrainingDiverged", "UserError", "preview", "unknown_name_message"]


class UserError(Exception):
    """A mistake in the user's input, reported as one clear paragraph (exit code 2)."""


class TrainingDiverged(UserError, FloatingPointError):
    """The training loss became NaN or inf: usually a learning rate too high or non-finite features."""


def unknown_name_message(what: str, name: str, known: Iterable[str]) -> str:
    """Say that ``name`` is not a known ``what``, listing the known names and close matches."""
    known = sorted(known)
    # A name typed by a user may be huge: quoted in part, and matched only when it could be a typo.
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5) if len(name) <= 100 else []
    shown = repr(name) if len(name) <= 60 else repr(name[:57] + "...")
    message = f"unknown {what} {shown}."
    if close:
        message += f" Did you mean {' or '.join(repr(c) for c in close)}?"
    message += f" Known {what}s: {', '.join(known) if known else '(none registered)'}."
    return message


class _Preview(reprlib.Repr):
    """reprlib, but bytes are cut before their repr is made (reprlib would repr them whole first)."""

    def repr_bytes(self, value: bytes, level: int) -> str:
        return repr(value[:40]) + ("..." if len(value) > 40 else "")

    repr_bytearray = repr_bytes


_PREVIEW = _Preview()
_PREVIEW.maxstring = _PREVIEW.maxother = 60
_PREVIEW.maxlist = _PREVIEW.maxtuple = _PREVIEW.maxdict = _PREVIEW.maxset = 4
_PREVIEW.maxlevel = 2


def preview(value: Any, limit: int = 80) -> str:
    """A repr of untrusted ``value`` for an error message, never longer than ``limit`` characters.

    Files, ``--set`` arguments and space files can hold megabytes in one value; messages quote
    them in part (reprlib cuts long strings and containers), and a hostile ``__repr__`` cannot
    replace the message being built.
    """
    try:
        text = _PREVIEW.repr(value)
    except Exception:  # noqa: BLE001
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
