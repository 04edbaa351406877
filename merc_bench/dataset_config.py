"""``--dataset-config FILE``: a dataset's options from a TOML file instead of ten ``--set`` flags.

A corpus config file holds one table of the dataset's options, as ``--set dataset.<option>=...``
would give them, plus an optional top-level ``dataset`` key naming the dataset::

    dataset = "conversation-csv"        # optional: --dataset may name it instead (they must agree)
    name = "friends"
    dialogue_column = ["season", "episode", "scene"]
    train = "train.csv"                  # relative: resolved against this file's folder
    [features.audio]
    train = "audio/train.npy"

* **Null**: TOML has none; ``false`` stands for null in an option that takes null and no boolean
  (``order_column = false``: keep file order; ``text_encoder = false``: embed no text).
* **Precedence**: the dataset's defaults < the file < ``--set dataset.*``. ``--set dataset=OTHER``
  names another dataset and drops the file's options with the rest (as it does for ``--set``).
* **Paths**: options the dataset marks with :data:`merc_bench.data.PATH_OPTION` (conversation-csv's
  ``train``/``dev``/``test``/``file``/``features``/``cache_dir``, meld's and iemocap's ``path``)
  that the file gives as relative paths are resolved against the file's own folder (``~`` is
  expanded), so the file travels with its CSVs. Paths given with ``--set`` and ``--data-dir`` work
  as without a file (the dataset resolves them: for conversation-csv against ``--data-dir``, else
  the working folder).
* **Hostile input**: the file is read by :mod:`merc_bench.config_files` (a regular file of at most
  1 MiB, refused by its size before it is read; UTF-8; TOML); then every key must be an option of
  the dataset (or the generic ``nonfinite``) and every value of the option's type. Each problem is
  one :class:`~merc_bench.errors.UserError` naming the file, the key, the value and what was
  expected; the command exits with code 2.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import pydantic

from merc_bench.config_files import FileKind, parse_toml, read_text_file
from merc_bench.data import NONFINITE_POLICIES, PATH_OPTION
from merc_bench.errors import UserError, preview, unknown_name_message
from merc_bench.registry import Registry, describe_type

__all__ = ["DEFAULT_DATASET", "read_dataset_config"]

#: The dataset of a command given neither --dataset nor a corpus config file naming one.
DEFAULT_DATASET = "synthetic"

_KIND = FileKind(noun="corpus config file", wanted="the TOML file of the dataset's options", formats="TOML",
                 depth="a corpus config file holds options, lists and tables of them",
                 dotted="a corpus config file needs at most 3 (features.audio.train)")


def read_dataset_config(path: Path, registry: Registry, dataset: str | None, *, command: str | None = None
                        ) -> dict[str, Any]:
    """The dataset choice ``{"name": ..., "config": {...}}`` a corpus config file describes.

    ``dataset`` is ``--dataset`` (None when not given); the file's ``dataset`` key must agree with it.
    ``command`` names a command that reads only ``dataset`` (``data prepare csv``), for the message
    when the file names another. Relative paths of the dataset's path options are resolved against
    the file's folder.
    """
    path = Path(path).expanduser()
    where = f"--dataset-config {str(path)!r}"
    values = parse_toml(read_text_file(path, where, _KIND), where, _KIND)
    in_file = values.pop("dataset", None)
    if command is not None and in_file not in (None, dataset):
        raise UserError(f"{where} names the dataset {preview(in_file)}, but `{command}` reads {dataset} corpora; "
                        f"remove its dataset key, or set it to {dataset!r}.")
    name, named_by = _dataset_name(in_file, dataset, where)
    try:
        entry = registry.get("dataset", name)
    except UserError as error:
        raise UserError(f"{where}: {error}") from None
    if entry.config is None:
        raise UserError(f"{where}: dataset {name!r} has no options to set.")
    fields = entry.config.model_fields
    _false_as_null(values, fields)
    options = dict(values)
    generic = options.pop("nonfinite", None) if "nonfinite" not in fields else None
    if generic is not None and generic not in NONFINITE_POLICIES:
        raise UserError(f"{where}: nonfinite = {preview(generic)} is not a policy; expected refuse (NaN/inf features "
                        "are an error) or zero (replace them with 0 and record the count).")
    _check_options(options, entry.config, where, f"dataset {name!r} ({named_by})")
    folder = path.resolve().parent
    for key, value in options.items():
        if key in fields and PATH_OPTION in fields[key].metadata:
            values[key] = _resolved(value, folder)
    return {"name": name, "config": values}


def _dataset_name(in_file: Any, given: str | None, where: str) -> tuple[str, str]:
    """The dataset's name and what named it, from the file's ``dataset`` key and ``--dataset``."""
    if in_file is not None and not isinstance(in_file, str):
        raise UserError(f"{where}: dataset = {preview(in_file)} is not a name; expected the name of a registered "
                        "dataset as a string, e.g. dataset = \"conversation-csv\" (see `merc-bench list dataset`).")
    if in_file is not None and given is not None and in_file != given:
        raise UserError(f"{where} names the dataset {preview(in_file)} but --dataset is {preview(given)}; give one of "
                        "them, or the same name in both.")
    if in_file is not None:
        return in_file, "named by the file"
    if given is not None:
        return given, "--dataset"
    return DEFAULT_DATASET, "the default: the file names no dataset; add dataset = \"NAME\" or give --dataset"


def _false_as_null(values: dict[str, Any], fields: dict[str, Any]) -> None:
    """TOML has no null: ``false`` stands for it in an option that takes null and no boolean
    (``order_column = false``: file order; ``text_encoder = false``: no text encoder)."""
    for key, value in values.items():
        spec = fields.get(key)
        if value is not False or spec is None:
            continue
        union = typing.get_origin(spec.annotation) in (typing.Union, types.UnionType)
        accepted = typing.get_args(spec.annotation) if union else (spec.annotation,)
        booleans = any(arg is bool or (typing.get_origin(arg) is typing.Literal and
                                       any(isinstance(v, bool) for v in typing.get_args(arg))) for arg in accepted)
        if type(None) in accepted and not booleans:
            values[key] = None


def _check_options(options: dict[str, Any], config: type[pydantic.BaseModel], where: str, owner: str) -> None:
    """Every key an option of ``config`` and every value of its type; options the file leaves out may be
    given with --set, so a missing required option is not the file's mistake."""
    try:
        config.model_validate(options)
        return
    except pydantic.ValidationError as error:
        problems = [item for item in error.errors() if item["type"] != "missing"]
    if not problems:
        return
    if not problems[0]["loc"]:  # a check of several options together (a model validator)
        raise UserError(f"{where}: the options are not valid together for {owner}: {problems[0]['msg']}.")
    key = str(problems[0]["loc"][0])
    if problems[0]["type"] == "extra_forbidden":
        raise UserError(f"{where}, for {owner}: {unknown_name_message('option', key, config.model_fields)}")
    # Of a union's errors (one per member type), the deepest points at the value that is wrong:
    # dialogue_column = ["a", 3] is a list whose item [1] is not a string, not "a list is not a string".
    first = max((item for item in problems if item["loc"][:1] == problems[0]["loc"][:1]), key=lambda i: len(i["loc"]))
    spec = config.model_fields.get(key)
    expected = describe_type(spec.annotation) if spec is not None else "?"
    place, value = _located(options, first["loc"])
    others = len({item["loc"][:1] for item in problems}) - 1
    more = f" ({others} more option{'s' if others > 1 else ''} wrong too)" if others else ""
    raise UserError(f"{where}: {place} = {preview(value)} is not valid for {owner}: {first['msg']}; the option "
                    f"{key!r} takes {expected}{more}.")


def _located(options: dict[str, Any], loc: tuple[Any, ...]) -> tuple[str, Any]:
    """The dotted key and value a pydantic error location points at, without its union-branch labels
    (``dialogue_column.list[str].0`` is ``dialogue_column[0]``)."""
    place, value = "", options
    for part in loc:
        if isinstance(value, dict) and part in value:
            place, value = f"{place}.{part}" if place else str(part), value[part]
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            place, value = f"{place}[{part}]", value[part]
    return place or "(file)", value


def _resolved(value: Any, folder: Path) -> Any:
    """``value`` with each relative path string (also inside lists and tables) made absolute against ``folder``."""
    if isinstance(value, str):
        candidate = Path(value).expanduser()
        return str(candidate if candidate.is_absolute() else folder / candidate)
    if isinstance(value, dict):
        return {key: _resolved(item, folder) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item, folder) for item in value]
    return value
