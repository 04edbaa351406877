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

The file is checked completely before a study is created, so that a mistake is one error at the
start instead of a study whose every trial fails. Its form (size, UTF-8, TOML/YAML syntax without
aliases, nesting, value types) is :mod:`.space_file`'s job; :func:`build_space` checks its meaning.
Names are resolved like everywhere else (a third-party component's short name works in ``[slots]``
and in ``[fuser.<name>]``); an unknown section, slot, component, option or range key names the
close matches. Every range needs finite numbers of the setting's type (integers for an integer
setting) with low ≤ high, a positive ``step``, ``log`` only with low > 0 and without ``step``;
every choice, fixed value and range end is validated by the setting's own pydantic config (the run
configuration, or the component's), the other settings at the base recipe's values — so a value
the configuration refuses never reaches a trial.

The slot choices are sorted and, with the ranges, frozen into the study when it is created
(:meth:`SearchSpace.to_json`), so installing a plugin later cannot change a resumed study.

Compatibility rule (so that no trial is wasted on a combination that cannot train): a distiller
that fails without per-modality heads but works with them (SDT's self-distillation,
``per-modality-ce``) gets ``model.modality_heads = true``; every other trial gets heads only when
``model.prediction = "modality_average"`` needs them. Which distillers need heads is found once, when
the study is created, by calling each allowed distiller on a small fake model output with and
without modality logits (:func:`distillers_needing_heads`), and frozen with the space. A ``model``
entry ``modality_heads`` in the space file overrides the rule.

Trial 0 is the base recipe's own settings, exactly, whatever the space says
(:func:`recipe_in_space`): the recipe's values that the space can hold are its Optuna parameters,
so the sampler learns from it; the ones it cannot hold are reported ("outside the space") and
trial 0 still trains with them.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

import pydantic
import torch

from merc_bench.config import ModelConfig, RunConfig, TrainingConfig
from merc_bench.data import Corpus, batches
from merc_bench.errors import UserError, unknown_name_message
from merc_bench.model import ModelOutput
from merc_bench.registry import Registry
from merc_bench.tuning.space_file import SCALARS, bounded_name, clip, preview, read_space_file

__all__ = ["SLOTS", "TRAINER_DEFAULTS", "SearchSpace", "read_space_file", "build_space", "sample_config",
           "recipe_in_space", "RecipeTrial", "distillers_needing_heads"]

SLOTS = ("encoder", "mixer", "fuser", "distiller")

#: Trainer parameters searched unless the space file says otherwise (Optuna names).
TRAINER_DEFAULTS: dict[str, dict[str, Any]] = {
    "training.lr": {"low": 1e-5, "high": 1e-2, "log": True},
    "training.weight_decay": {"low": 1e-7, "high": 1e-3, "log": True},
    "training.batch_size": {"choices": [4, 8, 16, 32]},
    "model.head_dropout": {"low": 0.0, "high": 0.5},
}
_TRAINER_SECTIONS = {"training": TrainingConfig, "model": ModelConfig}
_RANGE_KEYS = ("low", "high", "log", "step")
#: Choices per parameter: TPE's categorical kernel grows with them, and nobody lists more by hand.
MAX_CHOICES = 256
#: Optuna keeps parameters as float64, which holds integers exactly up to 2**53.
_MAX_INT = 2**53


@dataclass(frozen=True)
class SearchSpace:
    """What a study searches; stored in the study as JSON and read back when it resumes."""

    slots: dict[str, list[str]]  # slot -> allowed registered names, sorted
    params: dict[str, dict[str, Any]]  # Optuna name -> {"low","high","log","step"} | {"choices"} | {"value"}
    heads_needed_by: list[str] = field(default_factory=list)  # distillers that need model.modality_heads

    def to_json(self) -> dict[str, Any]:
        return {"slots": self.slots, "params": self.params, "heads_needed_by": self.heads_needed_by}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> SearchSpace:
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


# -- the space file: tables → a checked search space -------------------------------------------------
_UNSHOWN = object()  # Checker.fail: no "= value" in the message


class _Checker:
    """Turns the file's values into specs, checking each against the registry and the pydantic configs."""

    def __init__(self, registry: Registry, base: dict[str, Any], where: str) -> None:
        self.registry = registry
        self.base = base
        self.where = where

    def fail(self, key: str, value: Any, why: str) -> UserError:
        shown = "" if value is _UNSHOWN else f" = {preview(value)}"
        return UserError(f"--space {self.where!r}: {key}{shown}: {why}")

    def component(self, slot: str, name: Any, key: str, shown: Any = _UNSHOWN) -> str:
        """The qualified registered name for ``name`` (a short alias works), or a did-you-mean error."""
        if not isinstance(name, str) or not name:
            raise self.fail(key, name, f"give the name of a registered {slot}.")
        if len(name) > 200:
            raise self.fail(key, name, f"not a registered {slot} (a name of {len(name)} characters).")
        try:
            return self.registry.get(slot, name).name
        except UserError as error:
            raise self.fail(key, shown, str(error)) from None

    def table(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, value, "expected a table of settings.")
        return value

    def spec(self, key: str, value: Any, kind: str, validate: Callable[[Any], Any]) -> dict[str, Any]:
        """A file value as a spec — a table is a range, a list the choices, anything else a fixed
        value — with every value checked by ``validate`` (the setting's pydantic config)."""
        def checked(item: Any, what: str = "") -> Any:
            try:
                return validate(item)
            except _Invalid as error:
                raise self.fail(key, value, f"{what}{error}") from None

        if isinstance(value, list):
            return {"choices": self._choices(key, value, kind, checked)}
        if not isinstance(value, dict):
            self._of_kind(key, value, value, kind, "the value")
            return {"value": checked(value)}
        unknown = [k for k in value if k not in _RANGE_KEYS]
        if unknown:
            raise self.fail(key, value, unknown_name_message("range key", bounded_name(unknown[0]), _RANGE_KEYS)
                            + " A range is { low = ..., high = ... } with optional log = true or step = ...")
        if "low" not in value or "high" not in value:
            raise self.fail(key, value, "a range needs both low and high: { low = ..., high = ... }.")
        if kind == "categorical":
            raise self.fail(key, value, "this setting is not a number; give a list of choices.")
        low, high = (self._of_kind(key, value, value[end], kind, end) for end in ("low", "high"))
        if low > high:
            raise self.fail(key, value, f"low ({low}) is above high ({high}).")
        log = value.get("log", False)
        if not isinstance(log, bool):
            raise self.fail(key, value, f"log must be true or false, not {preview(log)}.")
        spec: dict[str, Any] = {"low": low, "high": high}
        if "step" in value:
            step = self._of_kind(key, value, value["step"], kind, "step")
            if step <= 0:
                raise self.fail(key, value, f"step must be above 0, not {step}.")
            if log:
                raise self.fail(key, value, "a range takes log = true or a step, not both (Optuna cannot combine "
                                            "them).")
            spec["step"] = step
        if log:
            if low <= 0:
                raise self.fail(key, value, f"a log range needs low > 0, not {low}.")
            spec["log"] = True
        for end, number in (("low", low), ("high", high)):  # the config's own bounds (gt, le, ...) at both ends
            checked(number, f"{end} = {number}: ")
        return spec

    def _choices(self, key: str, values: list[Any], kind: str, checked: Callable[[Any, str], Any]) -> list[Any]:
        if not values:
            raise self.fail(key, values, "an empty list of choices; give at least one value.")
        if len(values) > MAX_CHOICES:
            raise self.fail(key, values, f"{len(values)} choices; a parameter may have at most {MAX_CHOICES}.")
        choices: list[Any] = []
        for index, value in enumerate(values):
            if not isinstance(value, SCALARS):
                raise self.fail(f"{key}[{index}]", value, "a choice is a plain value (a number, string or boolean), "
                                                         "not a list or table.")
            what = f"the choice {preview(value)}"
            self._of_kind(key, values, value, kind, what)
            choice = checked(value, f"{what}: ")
            if any(type(choice) is type(c) and choice == c for c in choices):
                raise self.fail(key, values, f"{what} is listed twice.")
            choices.append(choice)
        return choices

    def _of_kind(self, key: str, shown: Any, value: Any, kind: str, what: str) -> Any:
        """``value`` as a number of ``kind`` ("int", "float"); categorical settings take any plain value."""
        if kind == "categorical":
            return value
        wrong_type = isinstance(value, bool) or not isinstance(value, (int, float))
        if wrong_type or (kind == "int" and isinstance(value, float)):
            hint = ""
            if isinstance(value, str) and self.where.lower().endswith((".yaml", ".yml")) and re.fullmatch(
                    r"\s*[-+]?\d+[eE][-+]?\d+\s*", value):
                hint = " (YAML 1.1 reads 1e-3 as text: write 1.0e-3)"
            raise self.fail(key, shown, f"{what} must be {'an integer' if kind == 'int' else 'a number'}, not a "
                                        f"{type(value).__name__}{hint}.")
        if not math.isfinite(value):
            raise self.fail(key, shown, f"{what} must be finite.")
        if abs(value) > _MAX_INT:
            raise self.fail(key, shown, f"{what} is beyond ±2**53, which Optuna cannot store exactly.")
        return float(value) if kind == "float" else value

    # -- validation through the pydantic configs, the other settings at the base's values ------------
    def trainer_validator(self, section: str, option: str) -> Callable[[Any], Any]:
        def validate(value: Any) -> Any:
            values = copy.deepcopy(self.base)
            values.setdefault(section, {})[option] = value
            try:
                config = RunConfig.model_validate(values)
            except pydantic.ValidationError as error:
                raise _Invalid(_problems(error, (section, option))) from None
            return config.model_dump(mode="json")[section][option]
        return validate

    def component_validator(self, slot: str, name: str, option: str) -> Callable[[Any], Any]:
        entry = self.registry.get(slot, name)
        own = self.component(slot, self.base[slot]["name"], slot) == name
        options = dict(self.base[slot]["config"]) if own else {}

        def validate(value: Any) -> Any:
            try:
                config = entry.config.model_validate(options | {option: value})
            except pydantic.ValidationError as error:
                raise _Invalid(_problems(error, (option,))) from None
            return config.model_dump(mode="json")[option]
        return validate


class _Invalid(Exception):
    """A value the setting's pydantic config refuses; the message is pydantic's, without the value."""


def _problems(error: pydantic.ValidationError, location: tuple[str, ...]) -> str:
    """pydantic's complaints without the offending input (which may be long); ``location`` is the
    setting's own place, not repeated."""
    problems = []
    for item in error.errors()[:3]:
        where = ".".join(str(part) for part in item["loc"]) if tuple(item["loc"]) != location else ""
        problems.append(f"{clip(where, 80)}: {clip(item['msg'], 200)}" if where else clip(item["msg"], 200))
    return "; ".join(problems) + "."


def build_space(registry: Registry, base: dict[str, Any], file_values: dict[str, Any], *, fixed_slots: bool,
                where: str, context: dict[str, Any], corpus: Corpus) -> SearchSpace:
    """The study's space: registry names (all, or the base recipe's when ``fixed_slots``), trainer
    defaults, then the space file's changes, each checked against the registry and the configs."""
    check = _Checker(registry, base, where)
    slots = {slot: [check.component(slot, base[slot]["name"], slot)] if fixed_slots else registry.names(slot)
             for slot in SLOTS}
    params = copy.deepcopy(TRAINER_DEFAULTS)
    for section, content in file_values.items():
        if section == "slots":
            slots.update(_slot_section(check, content))
        elif section in _TRAINER_SECTIONS:
            params.update(_trainer_section(check, section, content))
        elif section in SLOTS:
            params.update(_component_section(check, registry, section, content))
        else:
            raise check.fail(bounded_name(section), content, unknown_name_message(
                "section", bounded_name(section), ("slots", "training", "model", *SLOTS))
                + " A component's options go under [<slot>.<component>], e.g. [mixer.sdmoe].")
    for key in params:
        slot, _, rest = key.partition(".")
        name = rest.rpartition(".")[0]
        if slot in SLOTS and name not in slots[slot]:
            raise check.fail(f"[{slot}.{bounded_name(name)}]", _UNSHOWN, f"{slot} {name!r} is not among the allowed "
                                                                        f"{slot}s ({', '.join(slots[slot])}); add it "
                                                                        "under [slots].")
    heads = distillers_needing_heads(registry, slots["distiller"], context, corpus)
    return SearchSpace(slots, params, heads)


def _slot_section(check: _Checker, content: Any) -> dict[str, list[str]]:
    """``[slots]``: the registered names each slot may take."""
    slots = {}
    for slot, names in check.table(content, "slots").items():
        key = f"slots.{bounded_name(slot)}"
        if slot not in SLOTS:
            raise check.fail(key, names, unknown_name_message("slot", bounded_name(slot), SLOTS))
        if not isinstance(names, list) or not names:
            raise check.fail(key, names, "give a non-empty list of registered names.")
        slots[slot] = sorted({check.component(slot, name, key) for name in names})
    return slots


def _trainer_section(check: _Checker, section: str, content: Any) -> dict[str, Any]:
    """``[training]`` or ``[model]``: ranges, choices or fixed values of the trainer's settings."""
    params = {}
    fields = _TRAINER_SECTIONS[section].model_fields
    for option, value in check.table(content, section).items():
        key = f"{section}.{bounded_name(option)}"
        if option not in fields:
            raise check.fail(key, value, unknown_name_message(f"{section} setting", bounded_name(option), fields))
        if key == "training.selection_metric":
            raise check.fail(key, value, "the study's --metric sets it (the objective and the epoch "
                                         "selection must agree).")
        params[key] = check.spec(key, value, _field_kind(_TRAINER_SECTIONS[section], option),
                                 check.trainer_validator(section, option))
    return params


def _component_section(check: _Checker, registry: Registry, section: str, content: Any) -> dict[str, Any]:
    """``[<slot>.<component>]``: a component's options, checked against its config and search space."""
    params = {}
    for name, options in check.table(content, section).items():
        qualified = check.component(section, name, f"[{section}.{bounded_name(name)}]")
        known = _component_parameters(registry, section, qualified)
        for option, value in check.table(options, f"{section}.{bounded_name(name)}").items():
            key = f"{section}.{qualified}.{option}"
            shown = f"{section}.{bounded_name(name)}.{bounded_name(option)}"
            if option not in known:
                raise check.fail(shown, value, unknown_name_message(f"{section} {qualified!r} option",
                                                                    bounded_name(option), known))
            kind = known[option]
            if kind == "fixed":
                kind = _field_kind(registry.get(section, qualified).config, option)
            params[key] = check.spec(shown, value, kind, check.component_validator(section, qualified, option))
    return params


def _component_parameters(registry: Registry, slot: str, name: str) -> dict[str, str]:
    """Option name → how it is searched ("int", "float", "categorical"; "fixed" for config fields the
    component's search space leaves alone), from one dry run of the search space."""
    entry = registry.get(slot, name)
    recorder = _Recorder()
    if entry.search_space is not None:
        entry.search_space(recorder, "")
    fields = {option: "fixed" for option in (entry.config.model_fields if entry.config else ())}
    return fields | {option: spec["kind"] for option, spec in recorder.specs.items()}


class _Recorder:
    """A stand-in trial that records what a search space asks for (and answers the low end, the first choice)."""

    def __init__(self) -> None:
        self.specs: dict[str, dict[str, Any]] = {}

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        self.specs[name] = {"kind": "float", "low": low, "high": high, "log": log} | ({"step": step} if step else {})
        return low

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        self.specs[name] = {"kind": "int", "low": low, "high": high, "log": log, "step": step}
        return low

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.specs[name] = {"kind": "categorical", "choices": list(choices)}
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


def _qualified(registry: Registry, slot: str, name: str) -> str:
    return registry.get(slot, name).name


def sample_config(trial: Any, space: SearchSpace, base: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """The run-config dict of one trial: the base recipe's values with the sampled choices applied."""
    values = copy.deepcopy(base)
    for slot in SLOTS:
        choices = space.slots[slot]
        name = choices[0] if len(choices) == 1 else trial.suggest_categorical(slot, choices)
        entry = registry.get(slot, name)
        # The base recipe's options stay for its own component; another component starts from its defaults.
        options = dict(base[slot]["config"]) if _qualified(registry, slot, base[slot]["name"]) == name else {}
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


# -- trial 0: the recipe's own settings -------------------------------------------------------------
def recipe_in_space(space: SearchSpace, base: dict[str, Any], registry: Registry) -> tuple[dict[str, Any], list[str]]:
    """(the Optuna parameters of the base recipe's settings that the space can hold, a description
    of each setting it cannot hold — empty when the recipe lies inside the space).

    The parameters are enqueued as trial 0 (:class:`RecipeTrial` records exactly these); trial 0
    trains the recipe's settings whatever this function finds.
    """
    params: dict[str, Any] = {}
    outside: list[str] = []
    for slot in SLOTS:
        name = _qualified(registry, slot, base[slot]["name"])
        if name not in space.slots[slot]:
            outside.append(f"{slot} {name!r} (the space allows {', '.join(space.slots[slot])})")
            continue
        if len(space.slots[slot]) > 1:
            params[slot] = name
        entry = registry.get(slot, name)
        prefix = f"{slot}.{name}."
        recorder = _Recorder()
        if entry.search_space is not None:
            entry.search_space(recorder, prefix)
        resolved = entry.make_config(base[slot]["config"], where=slot).model_dump(mode="json")
        for key in [*recorder.specs, *(k for k in space.params if k.startswith(prefix) and k not in recorder.specs)]:
            option = key[len(prefix):]
            kind = recorder.specs[key]["kind"] if key in recorder.specs else _field_kind(entry.config, option)
            if option in resolved:  # the space file's spec replaces the component's own
                _place(key, resolved[option], space.params.get(key, recorder.specs.get(key)) | {"kind": kind},
                       params, outside)
    for key, spec in space.params.items():
        section, _, option = key.partition(".")
        if section in _TRAINER_SECTIONS:
            value = base.get(section, {}).get(option, _TRAINER_SECTIONS[section].model_fields[option].default)
            _place(key, value, spec | {"kind": _field_kind(_TRAINER_SECTIONS[section], option)}, params, outside)
    return params, outside


def _place(key: str, value: Any, spec: dict[str, Any], params: dict[str, Any], outside: list[str]) -> None:
    """Record the recipe's ``value`` of ``key`` as a parameter, or as outside the space."""
    if "value" in spec:
        if value != spec["value"]:
            outside.append(f"{key} = {preview(value)} (the space fixes {preview(spec['value'])})")
    elif _contains(spec, value):
        params[key] = value
    elif "choices" in spec:
        outside.append(f"{key} = {preview(value)} (the space: {', '.join(preview(c) for c in spec['choices'])})")
    else:
        step = spec.get("step")
        outside.append(f"{key} = {preview(value)} (the space: {spec['low']} to {spec['high']}"
                       f"{', log' if spec.get('log') else ''}{f', step {step}' if step and step != 1 else ''})")


def _contains(spec: dict[str, Any], value: Any, kind: str | None = None) -> bool:
    """Whether the distribution ``spec`` can produce ``value``."""
    kind = kind or spec.get("kind", "float")
    if "choices" in spec:
        return any(type(value) is type(c) and value == c for c in spec["choices"])
    if "value" in spec:
        return value == spec["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if not spec["low"] <= value <= spec["high"]:
        return False
    if kind == "int":
        return float(value).is_integer() and (int(value) - int(spec["low"])) % int(spec.get("step") or 1) == 0
    step = spec.get("step")
    if step:
        steps = (value - spec["low"]) / step
        return abs(steps - round(steps)) < 1e-8
    return True


class RecipeTrial:
    """Trial 0's view of its trial for :func:`sample_config`: a parameter is suggested (and so
    recorded) only when it is one of the recipe's own values that the space holds; other
    suggestions return a placeholder that trial 0 never uses, since it trains the recipe itself."""

    def __init__(self, trial: Any, params: dict[str, Any]) -> None:
        self._trial = trial
        self._params = params

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        spec = {"low": low, "high": high} | ({"step": step} if step else {})
        if name in self._params and _contains(spec, self._params[name], "float"):
            return self._trial.suggest_float(name, low, high, step=step, log=log)
        return low

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        if name in self._params and _contains({"low": low, "high": high, "step": step}, self._params[name], "int"):
            return self._trial.suggest_int(name, low, high, step=step, log=log)
        return low

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        if name in self._params and _contains({"choices": list(choices)}, self._params[name]):
            return self._trial.suggest_categorical(name, choices)
        return list(choices)[0]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)


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
