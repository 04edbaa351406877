"""The ``--space`` file read and checked for form: bytes → UTF-8 text → TOML or YAML tables.

A space file comes from anywhere (a colleague, a paper's repository), so reading it must not hang,
exhaust memory or print a traceback, whatever it holds; :func:`read_space_file` turns every problem
into one :class:`~merc_bench.errors.UserError` naming the file, the place and what was expected:

* a regular file of at most :data:`MAX_SPACE_BYTES`, UTF-8 text, and TOML parsed without letting a
  long dotted key run for seconds — :mod:`merc_bench.config_files`, shared with ``--dataset-config``;
* YAML through PyYAML's pure-Python safe loader (the C loader recurses on the C stack) with no
  aliases at all — a 389-byte file of nested aliases ("billion laughs") expands to gigabytes —, no
  merge keys and no duplicate keys (which PyYAML would silently resolve to the last);
* nesting no deeper than file → section → component → option → range or choices, keys that are
  names and values that are finite numbers, strings, booleans, lists or tables (YAML's dates,
  binary and sets are refused), checked without recursion.

What the values mean (names, ranges, choices) is checked by :func:`merc_bench.tuning.space.build_space`.
Messages quote values from the file through :func:`preview`, never in full.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from merc_bench.config_files import MAX_FILE_BYTES, FileKind, clip, parse_toml, parse_yaml, read_text_file
from merc_bench.errors import UserError, preview

__all__ = ["MAX_SPACE_BYTES", "read_space_file", "preview", "clip", "bounded_name"]

#: The largest space file read; real ones are a few hundred bytes.
MAX_SPACE_BYTES = MAX_FILE_BYTES
#: Containers inside containers: file → section → component → option → range or choices.
MAX_DEPTH = 4
SCALARS = (bool, int, float, str, type(None))
SPACE_FILE = FileKind(noun="space file", wanted="the TOML or YAML file of the search space", formats="TOML or YAML",
                      depth=f"a space file needs at most {MAX_DEPTH} levels",
                      dotted="a space file needs at most 4 (mixer.sdmoe.experts.low)")


def bounded_name(text: str) -> str:
    """A name from the file, bounded for messages."""
    return text if len(text) <= 60 else text[:57] + "..."


def read_space_file(path: Path) -> dict[str, Any]:
    """The parsed ``--space`` file: TOML, or YAML for ``.yaml``/``.yml`` (needs PyYAML).

    Only the file's form is checked here (size, encoding, syntax, nesting, key and value types);
    :func:`build_space` checks its meaning.
    """
    where = f"--space {str(path)!r}"
    text = read_text_file(path, where, SPACE_FILE)
    if path.suffix.lower() in (".yaml", ".yml"):
        values = parse_yaml(text, where, SPACE_FILE)
    else:
        values = parse_toml(text, where, SPACE_FILE)
    if values is None:  # an empty YAML document: nothing changed
        values = {}
    if not isinstance(values, dict):
        raise UserError(f"{where}: the file must hold tables (slots, training, model, a slot with a component), "
                        f"not a {type(values).__name__}.")
    _check_form(values, where)
    return values


def _check_form(values: dict[str, Any], where: str) -> None:
    """Keys are names, values plain scalars, lists or tables, nested at most ``MAX_DEPTH`` deep
    (iteratively: a parser may hand back deeper data than Python's recursion limit)."""
    pending: list[tuple[Any, int, str]] = [(values, 1, "")]
    while pending:
        value, depth, key = pending.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise UserError(f"{where}: {key} is nested too deeply; a space file needs at most {MAX_DEPTH} levels "
                                "(section, component, option, then a range table or a list of choices).")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for name, item in items:
                if isinstance(value, dict) and not isinstance(name, str):
                    raise UserError(f"{where}: the key {preview(name)} {'in ' + key if key else ''} is not a name.")
                label = bounded_name(str(name)) if isinstance(value, dict) else f"[{name}]"
                pending.append((item, depth + 1, f"{key}.{label}" if key and isinstance(value, dict)
                                else f"{key}{label}" if key else label))
        elif not isinstance(value, SCALARS):
            raise UserError(f"{where}: {key} = {preview(value)} is a {type(value).__name__}; a space file holds "
                            "numbers, strings, booleans, lists and tables.")
        elif isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{where}: {key} = {value}: a space file's numbers must be finite.")
