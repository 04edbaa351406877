"""The search space of a study: component choices per slot, the components' own spaces, trainer ranges.

A trial's configuration is built in three steps (design.md, "Tracking and tuning"):

1. one categorical per component slot (``encoder``, ``mixer``, ``fuser``, ``distiller``) over the
   allowed registered names — a slot with one allowed name is fixed and not a parameter;
2. the chosen component's own ``search_space(trial, prefix)`` from its registry entry, with the
   prefix ``"<slot>.<name>."`` (``mixer.sdmoe.experts``), so two components never share a parameter;
3. the trainer parameters: ``training.lr``, ``training.weight_decay``, ``training.batch_size`` and
   ``model.head_dropout`` by default (:data:`TRAINER_DEFAULTS`).

A ``--space`` file (TOML, or YAML when PyYAML is installed) changes any of it::

    [slots]                      # allowed names per slot (restrict or widen)
    mixer = ["sdmoe", "transformer", "bigru"]
    [training]                   # a range, a list of choices, or one fixed value
    lr = { low = 1e-5, high = 1e-3, log = true }
    batch_size = [8, 16]
    epochs = 6
    [mixer.sdmoe]                # narrow or fix a component's own parameter by its option name
    experts = { low = 2, high = 4 }

The slot choices are sorted and, with the ranges, frozen into the study when it is created
(:meth:`SearchSpace.to_json`), so installing a plugin later cannot change a resumed study.

Compatibility rule (so that no trial is wasted on a combination that cannot train): a distiller
that fails without per-modality heads but works with them (SDT's self-distillation,
``per-modality-ce``) gets ``model.modality_heads = true``; every other trial gets heads only when
``model.prediction = "modality_average"`` needs them. Which distillers need heads is found once, when
the study is created, by calling each allowed distiller on a small fake model output with and
without modality logits (:func:`distillers_needing_heads`), and frozen with the space. A ``model``
entry ``modality_heads`` in the space file overrides the rule.
"""

from __future__ import annotations

import copy
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from merc_bench.config import ModelConfig, TrainingConfig
from merc_bench.data import Corpus, batches
from merc_bench.errors import UserError, unknown_name_message
from merc_bench.model import ModelOutput
from merc_bench.registry import Registry

__all__ = ["SLOTS", "TRAINER_DEFAULTS", "SearchSpace", "read_space_file", "build_space", "sample_config",
           "first_trial_params", "distillers_needing_heads"]

SLOTS = ("encoder", "mixer", "fuser", "distiller")

#: Trainer parameters searched unless the space file says otherwise (Optuna names).
TRAINER_DEFAULTS: dict[str, dict[str, Any]] = {
    "training.lr": {"low": 1e-5, "high": 1e-2, "log": True},
    "training.weight_decay": {"low": 1e-7, "high": 1e-3, "log": True},
    "training.batch_size": {"choices": [4, 8, 16, 32]},
    "model.head_dropout": {"low": 0.0, "high": 0.5},
}
_TRAINER_SECTIONS = {"training": TrainingConfig, "model": ModelConfig}
_RANGE_KEYS = {"low", "high", "log", "step"}


@dataclass(frozen=True)
class SearchSpace:
    """What a study searches; stored in the study as JSON and read back when it resumes."""

    slots: dict[str, list[str]]  # slot -> allowed registered names, sorted
    params: dict[str, dict[str, Any]]  # Optuna name -> {"low","high","log","step"} | {"choices"} | {"value"}
    heads_needed_by: list[str] = field(default_factory=list)  # distillers that need model.modality_heads

    def to_json(self) -> dict[str, Any]:
        return {"slots": self.slots, "params": self.params, "heads_needed_by": self.heads_needed_by}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "SearchSpace":
        return cls(values["slots"], values["params"], values.get("heads_needed_by", []))

    def check_registered(self, registry: Registry, study: str) -> None:
        """A resumed study needs every component it was created with."""
        for slot, names in self.slots.items():
            for name in names:
                if name not in registry.names(slot):
                    raise UserError(
                        f"study {study!r} was created with {slot} {name!r} among its choices, but no installed "
                        f"plugin registers it now. Install the plugin again, or start a new study (--study NAME)."
                    )


# -- the space file -------------------------------------------------------------------------------
def read_space_file(path: Path) -> dict[str, Any]:
    """The parsed ``--space`` file: TOML (``.toml``) or YAML (``.yaml``/``.yml``, needs PyYAML)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise UserError(f"cannot read --space {str(path)!r}: {error.strerror or error}.") from None
    is_yaml = path.suffix in (".yaml", ".yml")
    if is_yaml:
        try:
            import yaml
        except ImportError:
            raise UserError(f"--space {str(path)!r} is YAML, which needs PyYAML (pip install pyyaml); "
                            "or write the space as TOML.") from None
    try:
        values = (yaml.safe_load(text) or {}) if is_yaml else tomllib.loads(text)
    except Exception as error:  # TOMLDecodeError or PyYAML's YAMLError: both say where the file is wrong
        raise UserError(f"--space {str(path)!r} is not valid {'YAML' if is_yaml else 'TOML'}: {error}") from None
    if not isinstance(values, dict):
        raise UserError(f"--space {str(path)!r}: the file must hold tables (slots, training, model, ...).")
    return values


def build_space(registry: Registry, base: dict[str, Any], file_values: dict[str, Any], *, fixed_slots: bool,
                where: str, context: dict[str, Any], corpus: Corpus) -> SearchSpace:
    """The study's space: registry names (all, or the base recipe's when ``fixed_slots``), trainer
    defaults, then the space file's changes, each checked against the registry and the configs."""
    def fail(key: str, value: Any, why: str) -> UserError:
        return UserError(f"--space {where}: {key} = {value!r}: {why}")

    slots = {slot: [base[slot]["name"]] if fixed_slots else registry.names(slot) for slot in SLOTS}
    params = copy.deepcopy(TRAINER_DEFAULTS)
    for section, content in file_values.items():
        if section == "slots":
            for slot, names in _table(content, "slots", fail).items():
                if slot not in SLOTS:
                    raise fail(f"slots.{slot}", names, f"not a slot; slots are {', '.join(SLOTS)}.")
                if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                    raise fail(f"slots.{slot}", names, "give a non-empty list of registered names.")
                for name in names:
                    if name not in registry.names(slot):
                        raise fail(f"slots.{slot}", name, unknown_name_message(slot, name, registry.names(slot)))
                slots[slot] = sorted(set(names))
        elif section in _TRAINER_SECTIONS:
            fields = _TRAINER_SECTIONS[section].model_fields
            for option, value in _table(content, section, fail).items():
                if option not in fields:
                    raise fail(f"{section}.{option}", value, unknown_name_message(f"{section} setting", option, fields))
                if f"{section}.{option}" == "training.selection_metric":
                    raise fail("training.selection_metric", value, "the study's --metric sets it (the objective "
                                                                   "and the epoch selection must agree).")
                spec = params[f"{section}.{option}"] = _spec(f"{section}.{option}", value, fail)
                if "low" in spec and _field_kind(_TRAINER_SECTIONS[section], option) == "categorical":
                    raise fail(f"{section}.{option}", value, "this setting is not a number; give a list of choices.")
        elif section in SLOTS:
            for name, options in _table(content, section, fail).items():
                if name not in registry.names(section):
                    raise fail(f"{section}.{name}", options, unknown_name_message(section, name, registry.names(section)))
                known = _component_parameters(registry, section, name)
                for option, value in _table(options, f"{section}.{name}", fail).items():
                    key = f"{section}.{name}.{option}"
                    if option not in known:
                        raise fail(key, value, unknown_name_message(f"option of {section} {name!r}", option, known))
                    spec = params[key] = _spec(key, value, fail)
                    kind = known[option] if known[option] != "fixed" else _field_kind(
                        registry.get(section, name).config, option)
                    if "low" in spec and kind == "categorical":
                        raise fail(key, value, "this option is not a number; give a list of choices.")
        else:
            raise fail(section, content, f"not a section; use slots, training, model or a slot "
                                         f"({', '.join(SLOTS)}) with a component name, e.g. [mixer.sdmoe].")
    for key in params:
        slot, _, rest = key.partition(".")
        if slot in SLOTS and rest.split(".")[0] not in slots[slot]:
            raise fail(key, params[key], f"{slot} {rest.split('.')[0]!r} is not among the allowed {slot}s "
                                         f"({', '.join(slots[slot])}); add it under [slots].")
    heads = distillers_needing_heads(registry, slots["distiller"], context, corpus)
    return SearchSpace(slots, params, heads)


def _table(value: Any, key: str, fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(key, value, "expected a table of settings.")
    return value


def _spec(key: str, value: Any, fail: Any) -> dict[str, Any]:
    """A file value as a spec: a table is a range, a list the choices, anything else a fixed value."""
    if isinstance(value, list):
        if not value or not all(v is None or isinstance(v, (bool, int, float, str)) for v in value):
            raise fail(key, value, "give a non-empty list of plain values (numbers, strings, booleans).")
        return {"choices": value}
    if not isinstance(value, dict):
        return {"value": value}
    unknown = set(value) - _RANGE_KEYS
    if unknown or not {"low", "high"} <= set(value):
        raise fail(key, value, "a range is { low = ..., high = ... } with optional log = true or step = ...")
    if not value["low"] < value["high"]:
        raise fail(key, value, "low must be below high.")
    if value.get("log") and value["low"] <= 0:
        raise fail(key, value, "a log range needs low > 0.")
    return dict(value)


def _component_parameters(registry: Registry, slot: str, name: str) -> dict[str, str]:
    """Option name → how it is searched ("int", "float", "categorical"; "fixed" for config fields the
    component's search space leaves alone), from one dry run of the search space."""
    entry = registry.get(slot, name)
    recorder = _Recorder()
    if entry.search_space is not None:
        entry.search_space(recorder, "")
    fields = {option: "fixed" for option in (entry.config.model_fields if entry.config else ())}
    return fields | {option: kind for option, (kind, _) in recorder.kinds.items()}


class _Recorder:
    """A stand-in trial that records what a search space asks for (the first choice, the low end)."""

    def __init__(self) -> None:
        self.kinds: dict[str, tuple[str, list[Any] | None]] = {}

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        self.kinds[name] = ("float", None)
        return low

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        self.kinds[name] = ("int", None)
        return low

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.kinds[name] = ("categorical", list(choices))
        return list(choices)[0]


# -- one trial ------------------------------------------------------------------------------------
class _SpacedTrial:
    """The trial a component's ``search_space`` receives: the space file's ranges and fixed values
    replace the component's own by parameter name; everything else goes to the real trial."""

    def __init__(self, trial: Any, params: dict[str, dict[str, Any]]) -> None:
        self._trial = trial
        self._params = params

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        if name in self._params:
            return suggest(self._trial, name, self._params[name], "float")
        return self._trial.suggest_float(name, low, high, step=step, log=log)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        if name in self._params:
            return suggest(self._trial, name, self._params[name], "int")
        return self._trial.suggest_int(name, low, high, step=step, log=log)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        if name in self._params:
            return suggest(self._trial, name, self._params[name], "categorical")
        return self._trial.suggest_categorical(name, choices)

    def __getattr__(self, name: str) -> Any:  # number, user attributes, ... of the real trial
        return getattr(self._trial, name)


def suggest(trial: Any, name: str, spec: dict[str, Any], kind: str) -> Any:
    """One value for a spec: fixed values are not Optuna parameters; ranges follow the caller's kind."""
    if "value" in spec:
        return spec["value"]
    if "choices" in spec:
        return trial.suggest_categorical(name, spec["choices"])
    if kind == "categorical":
        raise UserError(f"parameter {name!r} is a choice among values; the space file must give it a list, not a range.")
    if kind == "int":
        return trial.suggest_int(name, int(spec["low"]), int(spec["high"]), step=int(spec.get("step", 1)),
                                 log=bool(spec.get("log", False)))
    return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), step=spec.get("step"),
                               log=bool(spec.get("log", False)))


def _field_kind(config: Any, option: str) -> str:
    """How a config field is sampled from a range: "int", "float", or "categorical" (choices only)."""
    annotation = config.model_fields[option].annotation if config is not None and option in config.model_fields else None
    return "int" if annotation is int else "float" if annotation is float else "categorical"


def sample_config(trial: Any, space: SearchSpace, base: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """The run-config dict of one trial: the base recipe's values with the sampled choices applied."""
    values = copy.deepcopy(base)
    for slot in SLOTS:
        choices = space.slots[slot]
        name = choices[0] if len(choices) == 1 else trial.suggest_categorical(slot, choices)
        entry = registry.get(slot, name)
        # The base recipe's options stay for its own component; another component starts from its defaults.
        options = dict(base[slot]["config"]) if base[slot]["name"] == name else {}
        prefix = f"{slot}.{name}."
        searched = entry.search_space(_SpacedTrial(trial, space.params), prefix) if entry.search_space else {}
        options.update(searched)
        for key, spec in space.params.items():  # the space file's settings for options the component leaves alone
            option = key[len(prefix):]
            if key.startswith(prefix) and option not in searched:
                options[option] = suggest(trial, key, spec, _field_kind(entry.config, option))
        values[slot] = {"name": name, "config": options}
    for key, spec in space.params.items():
        section, _, option = key.partition(".")
        if section in _TRAINER_SECTIONS:
            kind = _field_kind(_TRAINER_SECTIONS[section], option)
            values.setdefault(section, {})[option] = suggest(trial, key, spec, kind)
    if "model.modality_heads" not in space.params:
        model = values.setdefault("model", {})
        model["modality_heads"] = (values["distiller"]["name"] in space.heads_needed_by
                                   or model.get("prediction") == "modality_average")
    return values


def first_trial_params(space: SearchSpace, base: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """Optuna parameters that reproduce the base recipe's published settings (the first trial).

    Only values the space can hold are included (a categorical must list the value); anything
    else is left to the sampler.
    """
    params: dict[str, Any] = {}
    for slot in SLOTS:
        name = base[slot]["name"]
        if name not in space.slots[slot]:
            continue
        if len(space.slots[slot]) > 1:
            params[slot] = name
        entry = registry.get(slot, name)
        if entry.search_space is None:
            continue
        recorder = _Recorder()
        entry.search_space(recorder, f"{slot}.{name}.")
        resolved = entry.make_config(base[slot]["config"], where=slot).model_dump(mode="json")
        for key, (kind, choices) in recorder.kinds.items():
            option = key[len(f"{slot}.{name}."):]
            spec = space.params.get(key, {"choices": choices} if kind == "categorical" else {})
            if option in resolved and "value" not in spec and (
                    "choices" not in spec or resolved[option] in spec["choices"]):
                params[key] = resolved[option]
    for key, spec in space.params.items():
        section, _, option = key.partition(".")
        if section not in _TRAINER_SECTIONS or "value" in spec:
            continue
        value = base.get(section, {}).get(option, _TRAINER_SECTIONS[section].model_fields[option].default)
        if "choices" not in spec or value in spec["choices"]:
            params[key] = value
    return params


# -- the compatibility probe ----------------------------------------------------------------------
def distillers_needing_heads(registry: Registry, names: list[str], context: dict[str, Any],
                             corpus: Corpus) -> list[str]:
    """The distillers among ``names`` that fail without per-modality logits and work with them."""
    batch = batches(corpus.dev[:2] or corpus.train[:2], batch_size=2, modalities=context["modalities"],
                    num_speakers=context["num_speakers"])[0]
    size, length = batch.mask.shape
    logits = torch.zeros(size, length, context["num_classes"])  # (B, L, C)
    hidden = torch.randn(size, length, context["hidden_size"], generator=torch.Generator().manual_seed(0))  # (B, L, H)

    def works(distiller: torch.nn.Module, with_heads: bool) -> bool:
        heads = {m: logits for m in context["modalities"]} if with_heads else {}
        output = ModelOutput(logits=logits, modality_logits=heads, hidden=hidden,
                             modality_hidden={m: hidden for m in context["modalities"]})
        try:
            distiller(output=output, batch=batch, class_weights=None)
            return True
        except Exception:  # any failure counts: the probe only asks whether heads make the difference
            return False

    needing = []
    for name in names:
        entry = registry.get("distiller", name)
        distiller = entry.build(entry.make_config({}), context)
        if not works(distiller, False) and works(distiller, True):
            needing.append(name)
    return needing


def canonical(values: Any) -> str:
    """A stable text form of JSON-like values, for comparing a resumed study's request with its own."""
    return json.dumps(values, sort_keys=True, default=str)
