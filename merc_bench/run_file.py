"""Run files: ``--config FILE`` for ``run``, ``compare``, ``ablate`` and ``tune``, and ``config show``.

A run file holds what would otherwise be a line of flags, in TOML (``.toml``), YAML (``.yaml``,
``.yml``) or JSON (``.json``)::

    recipe = "sdt"                 # compare: recipes = ["sdt", "mmgcn"]
    dataset = "meld"               # or a table: [dataset] name = "meld", config = { ... }
    data_dir = "data/meld-ft"      # relative paths: against the file's folder
    modalities = ["text"]
    seeds = 5
    epochs = 15
    protocol = "clean"

    [set]                          # as --set, dotted or as tables
    training.lr = 3e-4
    model.hidden_size = 256

Besides these keys a file may hold the sections of a resolved configuration — ``encoder``,
``mixer``, ``fuser``, ``distiller`` as ``{name, config}`` tables, ``model``, ``training`` — so every
run folder's ``config.json`` (and ``merc-bench config show``'s output) is a run file that
reproduces that run (with ``--data-dir`` where the dataset reads a folder: the folder is not part
of the configuration). Precedence, lowest first: the recipe's defaults, its dataset family's
values, the file, the command line's ``--set``, the command line's flags (``--seeds``,
``--epochs``, ...). The file's values become ``--set`` strings placed before the command line's,
so they are validated, named in errors and typed exactly as ``--set`` values are.

The file is read like every configuration file from a stranger (:mod:`merc_bench.config_files`:
bounded size, UTF-8, no YAML aliases, TOML's slow dotted keys refused); an unknown key is refused
with the closest known one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merc_bench.config_files import FileKind, clip, parse_toml, parse_yaml, read_text_file
from merc_bench.errors import UserError, preview, unknown_name_message

__all__ = ["RunFile", "read_run_file", "to_toml"]

_KIND = FileKind(noun="run file", wanted="the TOML, YAML or JSON file of a run's settings",
                 formats="TOML, YAML or JSON", depth="a run file holds settings, lists and tables of them",
                 dotted="a run file needs at most 4 (set.mixer.teacher.epochs)")
_SLOTS = ("encoder", "mixer", "fuser", "distiller")
_SECTIONS = ("model", "training")
#: Keys that become ``--set`` strings of the same name.
_SETTINGS = ("modalities", "seeds", "protocol", "device")
_PATHS = ("data_dir", "dataset_config")
_KEYS = ("recipe", "recipes", "dataset", "epochs", "set", *_PATHS, *_SETTINGS, *_SLOTS, *_SECTIONS)


@dataclass
class RunFile:
    """What a run file asks for; ``overrides`` go before the command line's ``--set``."""

    path: Path
    recipes: list[str] = field(default_factory=list)
    dataset: str | None = None
    data_dir: Path | None = None
    dataset_config: Path | None = None
    seeds: int | None = None  # also among the overrides; `compare` needs it for its own default (5)
    overrides: list[str] = field(default_factory=list)

    def merged(self, *, dataset: str | None, data_dir: Path | None, dataset_config: Path | None,
               overrides: list[str] | None) -> tuple[str | None, Path | None, Path | None, list[str]]:
        """The command line's dataset, folders and ``--set`` strings over the file's."""
        return (dataset or self.dataset, data_dir or self.data_dir, dataset_config or self.dataset_config,
                [*self.overrides, *(overrides or [])])

    def recipe(self, given: str | None, command: str) -> str | None:
        """The one recipe of ``run``/``ablate``/``tune``: the command line's, else the file's."""
        if given is not None:
            return given
        if len(self.recipes) > 1:
            raise UserError(f"--config {str(self.path)!r} names {len(self.recipes)} recipes; `{command}` takes one "
                            "(`compare` takes several).")
        return self.recipes[0] if self.recipes else None


def read_run_file(path: Path) -> RunFile:
    """The run file at ``path``, checked; a :class:`UserError` naming the file and key otherwise."""
    path = Path(path).expanduser()
    where = f"--config {str(path)!r}"
    text = read_text_file(path, where, _KIND)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        values = parse_yaml(text, where, _KIND)
    elif suffix == ".json":
        try:
            values = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise UserError(f"{where} is not valid JSON: {clip(error)}") from None
    else:
        values = parse_toml(text, where, _KIND)
    if not isinstance(values, dict):
        raise UserError(f"{where}: a run file holds settings by name (recipe, dataset, set, ...), not a "
                        f"{type(values).__name__}.")
    for key in values:
        if key not in _KEYS:
            raise UserError(f"{where}: " + unknown_name_message("key", str(key), _KEYS))
    run = RunFile(path=path, recipes=_recipes(values, where))
    seeds = values.get("seeds")
    run.seeds = seeds if isinstance(seeds, int) and not isinstance(seeds, bool) else None
    run.dataset, dataset_options = _dataset(values.get("dataset"), where)
    for key in _PATHS:
        if values.get(key) is not None:
            if not isinstance(values[key], str) or not values[key]:
                raise UserError(f"{where}: {key} = {preview(values[key])} is not a path.")
            setattr(run, key, (path.parent / Path(values[key]).expanduser()))
    run.overrides = [*(_setting(f"dataset.{k}", v, where) for k, v in _leaves(dataset_options)),
                     *_section_overrides(values, where)]
    return run


def _recipes(values: dict[str, Any], where: str) -> list[str]:
    if "recipe" in values and "recipes" in values:
        raise UserError(f"{where} has both recipe and recipes; keep one.")
    given = values.get("recipes", values.get("recipe"))
    recipes = [given] if isinstance(given, str) else given
    if recipes is None:
        return []
    if not isinstance(recipes, list) or not recipes or not all(isinstance(r, str) and r for r in recipes):
        raise UserError(f"{where}: recipe(s) = {preview(given)} must be a recipe name or a list of them.")
    return recipes


def _dataset(value: Any, where: str) -> tuple[str | None, dict[str, Any]]:
    """The dataset's name and options: ``dataset = "meld"`` or ``{name = "meld", config = {...}}``."""
    if value is None or isinstance(value, str):
        return value, {}
    if isinstance(value, dict) and set(value) <= {"name", "config"} and isinstance(value.get("name"), str) \
            and isinstance(value.get("config", {}), dict):
        return value["name"], value.get("config", {})
    raise UserError(f"{where}: dataset = {preview(value)} must be a dataset name or a table with name and config.")


def _section_overrides(values: dict[str, Any], where: str) -> list[str]:
    overrides = [_setting(key, values[key], where) for key in _SETTINGS if key in values]
    if "epochs" in values:
        overrides.append(_setting("training.epochs", values["epochs"], where))
    for slot in _SLOTS:  # {name, config} as config.json writes them; the name first (it resets the options)
        if slot in values:
            choice = values[slot]
            if not isinstance(choice, dict) or set(choice) - {"name", "config"} or not isinstance(
                    choice.get("config", {}), dict):
                raise UserError(f"{where}: {slot} = {preview(choice)} must be a table with name and config "
                                f"(as config.json writes it); to set one option use [set] {slot}.OPTION = VALUE.")
            if "name" in choice:
                overrides.append(_setting(slot, choice["name"], where))
            overrides += [_setting(f"{slot}.{k}", v, where) for k, v in _leaves(choice.get("config", {}))]
    for section in _SECTIONS:
        if section in values:
            if not isinstance(values[section], dict):
                raise UserError(f"{where}: {section} = {preview(values[section])} must be a table of settings.")
            overrides += [_setting(f"{section}.{k}", v, where) for k, v in _leaves(values[section])]
    given = values.get("set", {})
    if not isinstance(given, dict):
        raise UserError(f"{where}: set = {preview(given)} must be a table of settings (as --set KEY=VALUE).")
    return overrides + [_setting(k, v, where) for k, v in _leaves(given, slots_first=True)]


def _leaves(table: dict[str, Any], prefix: str = "", slots_first: bool = False) -> list[tuple[str, Any]]:
    """Dotted paths to every non-table value; with ``slots_first``, a component's name before its options."""
    leaves: list[tuple[str, Any]] = []
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            leaves += _leaves(value, f"{dotted}.")
        else:
            leaves.append((dotted, value))
    if slots_first:
        leaves.sort(key=lambda item: item[0] not in _SLOTS)  # stable: `mixer = "bigru"` before `mixer.heads`
    return leaves


def _setting(key: str, value: Any, where: str) -> str:
    try:
        return f"{key}={json.dumps(value, allow_nan=False)}"
    except (TypeError, ValueError):
        raise UserError(f"{where}: {key} = {preview(value)} is not a number, string, boolean or list of them.") \
            from None


# -- writing ----------------------------------------------------------------------------------------
def to_toml(values: dict[str, Any]) -> str:
    """A resolved configuration as TOML: plain values first, then a table per group. TOML has no null:
    a null value is written as a comment (``# key = null``), meaning "the default" when read back."""
    lines: list[str] = []
    _write_table(values, [], lines)
    return "\n".join(lines).strip() + "\n"


def _write_table(table: dict[str, Any], path: list[str], lines: list[str]) -> None:
    plain = [(k, v) for k, v in table.items() if not isinstance(v, dict)]
    groups = [(k, v) for k, v in table.items() if isinstance(v, dict)]
    if path and (plain or not groups):
        lines += ["", f"[{'.'.join(_key(p) for p in path)}]"]
    for key, value in plain:
        lines.append(f"# {_key(key)} = null" if value is None else f"{_key(key)} = {json.dumps(value)}")
    for key, value in groups:
        _write_table(value, [*path, key], lines)


def _key(name: str) -> str:
    return name if name and all(c.isalnum() or c in "-_" for c in name) else json.dumps(name)
