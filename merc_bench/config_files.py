"""Configuration files from strangers read safely: a bounded regular file → UTF-8 text → TOML.

``tune --space`` files and ``--dataset-config`` corpus files come from anywhere (a colleague, a
paper's repository, a download), so reading one must not hang, exhaust memory or print a
traceback, whatever it holds. Every problem becomes one :class:`~merc_bench.errors.UserError`
naming the file (``where``), the place and what was expected:

* a regular file (a pipe would block, ``/dev/zero`` never end) of at most :data:`MAX_FILE_BYTES`,
  refused by its size before a byte is read;
* UTF-8 (a UTF-8 byte-order mark is dropped; UTF-16, Latin-1 and binary files are named as such);
* YAML (``parse_yaml``) through PyYAML's pure-Python safe loader, refusing aliases (the "billion
  laughs" expansion needs them), merge keys and duplicate keys;
* TOML through :mod:`tomllib`, whose time grows with the square of a dotted key's parts — a key of
  more than 8 parts is refused before parsing (40,000 parts took 21 s; the check reads the text, so
  a string value of 9 dotted parts is refused too).

What the values mean is the caller's to check (:mod:`merc_bench.tuning.space_file`,
:mod:`merc_bench.dataset_config`). Messages quote the file's content in part, never whole.
"""

from __future__ import annotations

import codecs
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from merc_bench.errors import UserError, preview

__all__ = ["MAX_FILE_BYTES", "FileKind", "read_text_file", "parse_toml", "parse_yaml", "clip"]

#: The largest configuration file read; real ones are a few hundred bytes.
MAX_FILE_BYTES = 1 << 20
#: Parts of one dotted TOML key; tomllib's time grows with the square of a key's parts.
_MAX_KEY_PARTS = 8
_KEY_PART = r"""(?:[A-Za-z0-9_-]++|"[^"\n]*+"|'[^'\n]*+')"""
_DOTTED_KEY = re.compile(rf"(?<![A-Za-z0-9_\-\"'.]){_KEY_PART}(?:[ \t]*+\.[ \t]*+{_KEY_PART}){{{_MAX_KEY_PARTS},}}")


@dataclass(frozen=True)
class FileKind:
    """How messages speak of one kind of configuration file."""

    noun: str  # "space file": "a space file may have at most ..."
    wanted: str  # what a folder should have been: "the TOML or YAML file of the search space"
    formats: str  # "TOML or YAML"
    depth: str  # how deep its data goes, for "nested too deeply; <depth>": "a space file needs at most 4 levels"
    dotted: str  # the longest dotted name it needs, for "a dotted name of more than 8 parts; <dotted>"


def clip(text: Any, limit: int = 300) -> str:
    """A parser's message as one bounded line."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def read_text_file(path: Path, where: str, kind: FileKind) -> str:
    """The UTF-8 text of ``path``, refused (as ``where``) when it is no regular file, too big or not UTF-8."""
    try:
        info = path.stat()
    except OSError as error:
        raise UserError(f"cannot read {where}: {error.strerror or error}.") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{where} is a folder; give {kind.wanted}.")
    if not stat.S_ISREG(info.st_mode):  # a pipe would block, a device never end
        raise UserError(f"{where} is not a regular file (a device, pipe or socket); give a {kind.formats} file.")
    if info.st_size > MAX_FILE_BYTES:
        raise UserError(f"{where} is {info.st_size} bytes; a {kind.noun} may have at most {MAX_FILE_BYTES} bytes "
                        "(1 MiB).")
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise UserError(f"cannot read {where}: {error.strerror or error}.") from None
    if len(data) > MAX_FILE_BYTES:  # it grew after stat
        raise UserError(f"{where} has more than {MAX_FILE_BYTES} bytes; a {kind.noun} may have at most 1 MiB.")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UserError(f"{where} is UTF-16 text (it starts with a UTF-16 byte-order mark); save it as UTF-8.")
    if data.startswith(codecs.BOM_UTF8):  # Windows editors add one; it carries no content
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UserError(f"{where} is not UTF-8 text: byte 0x{data[error.start]:02x} at offset {error.start} (line "
                        f"{line}) is not valid UTF-8. Save the file as UTF-8.") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise UserError(f"{where} contains a NUL byte (line {line}): it is binary, or UTF-16 without a byte-order "
                        "mark. Save it as UTF-8 text.")
    return text


def parse_toml(text: str, where: str, kind: FileKind) -> dict[str, Any]:
    """``text`` parsed by :mod:`tomllib`, a dotted key too long for it refused first."""
    deep = _DOTTED_KEY.search(text)
    if deep is not None:
        line = text.count("\n", 0, deep.start()) + 1
        raise UserError(f"{where}, line {line}: a dotted name of more than {_MAX_KEY_PARTS} parts; {kind.dotted}.")
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise UserError(f"{where}: arrays or tables nested too deeply; {kind.depth}.") from None
    except ValueError as error:  # TOMLDecodeError, or an integer of more digits than Python converts
        raise UserError(f"{where} is not valid TOML: {clip(error)}") from None


class _YamlRefused(Exception):
    """A YAML construct the loader does not accept (aliases, merge keys, duplicate keys)."""


def parse_yaml(text: str, where: str, kind: FileKind) -> Any:
    """``text`` parsed as YAML (None for an empty document); needs PyYAML."""
    try:
        import yaml
    except ImportError:
        raise UserError(f"{where} is YAML, which needs PyYAML (pip install pyyaml); or write it as TOML.") from None
    try:
        return yaml.load(text, Loader=_yaml_loader(yaml, kind))  # noqa: S506 - a SafeLoader subclass, see below
    except _YamlRefused as error:
        raise UserError(f"{where}, {error}") from None
    except RecursionError:
        raise UserError(f"{where}: lists or mappings nested too deeply; {kind.depth}.") from None
    except (yaml.YAMLError, ValueError, TypeError) as error:  # ValueError: an integer of too many digits
        raise UserError(f"{where} is not valid YAML: {clip(error)}") from None


def _yaml_loader(yaml: Any, kind: FileKind) -> type:
    """PyYAML's pure-Python safe loader (the C one recurses on the C stack), refusing aliases — the
    "billion laughs" expansion needs them and a configuration file does not —, merge keys and duplicate keys."""
    merge_tag = "tag:yaml.org,2002:merge"

    class RefusingLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise _YamlRefused(f"line {event.start_mark.line + 1}: YAML aliases (*{clip(event.anchor, 40)}) "
                                   f"are not allowed in a {kind.noun}; write the values out.")
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == merge_tag:
                    raise _YamlRefused(f"line {line}: YAML merge keys (<<) are not allowed in a {kind.noun}.")
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    raise _YamlRefused(f"line {line}: a key must be a name, not a {type(key).__name__}.") from None
                if duplicate:
                    raise _YamlRefused(f"line {line}: the key {preview(key)} appears twice in one mapping.")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return RefusingLoader
