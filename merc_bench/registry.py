"""The component registry: every encoder, mixer, fuser, distiller, dataset and recipe by name.

Plugins fill it through the ``merc_bench_register`` hook (see :mod:`merc_bench.hookspecs`); the
core's own components arrive the same way. An entry binds a name to a class, a pydantic config
model (``extra="forbid"``), an optional Optuna search space ``search_space(trial, prefix) -> dict``
and metadata. Registration checks the class against its kind's interface and checks that every
config field is a keyword-only constructor parameter, so a config can always build its class.

Constructors receive their config fields plus, by name, any *build context* values they ask for
(``hidden_size``, ``modalities``, ``feature_dims``, ``num_speakers``, ``num_classes``, ``family``,
``data_dir``). That keeps model-wide facts (one hidden size for all components, the dataset's
dimensions) out of the per-component configs, where they could disagree.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pydantic

from merc_bench.errors import UserError, unknown_name_message

__all__ = ["KINDS", "CONTEXT_NAMES", "Entry", "Registry", "RegistrationError"]

KINDS = ("encoder", "mixer", "fuser", "distiller", "dataset", "text_encoder", "recipe")

#: Values the model builder passes to constructors that name them as keyword-only parameters.
CONTEXT_NAMES = frozenset(
    {"hidden_size", "modalities", "feature_dims", "num_speakers", "num_classes", "family", "data_dir"}
)

# The methods each kind must define (the recipe kind holds Recipe values, checked by type).
_REQUIRED_METHODS = {
    "encoder": ("forward",),
    "mixer": ("forward",),
    "fuser": ("forward",),
    "distiller": ("forward",),
    "dataset": ("load",),
    "text_encoder": ("encode",),  # encode(texts: list[str]) -> float32 array (len(texts), D)
}
_MODEL_KINDS = ("encoder", "mixer", "fuser", "distiller")


class RegistrationError(Exception):
    """A plugin tried to register something that breaks the registry's rules (a plugin bug)."""


@dataclass(frozen=True)
class Entry:
    """One registered component."""

    kind: str
    name: str
    obj: Any  # the class (or, for recipes, the Recipe value)
    config: type[pydantic.BaseModel] | None
    search_space: Callable[..., dict[str, Any]] | None = None
    description: str = ""
    paper: str = ""
    plugin: str = "merc-bench"  # distribution that registered it
    source: str = ""  # plugin (entry-point) name within that distribution

    def make_config(self, values: dict[str, Any] | None = None, *, where: str = "") -> pydantic.BaseModel:
        """Validate ``values`` against this entry's config, turning pydantic errors into one paragraph."""
        assert self.config is not None
        try:
            return self.config.model_validate(values or {})
        except pydantic.ValidationError as error:
            raise UserError(describe_validation_error(error, f"{where or self.kind} {self.name!r}")) from None

    def context_parameters(self) -> list[str]:
        """The build-context names this entry's constructor asks for (a config field of the same name wins)."""
        if not inspect.isclass(self.obj):
            return []
        parameters = inspect.signature(self.obj.__init__).parameters
        fields = self.config.model_fields if self.config is not None else {}
        return [name for name in parameters if name in CONTEXT_NAMES and name not in fields]

    def build(self, config: pydantic.BaseModel, context: dict[str, Any]) -> Any:
        """Instantiate the class from a validated config plus the context values it asks for."""
        kwargs = config.model_dump()
        for name in self.context_parameters():
            kwargs[name] = context[name]
        return self.obj(**kwargs)


def describe_validation_error(error: pydantic.ValidationError, owner: str) -> str:
    """One paragraph naming every bad field, its value and what was expected."""
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(config)"
        if item["type"] == "extra_forbidden":
            problems.append(f"{location!r} is not an option")
        else:
            problems.append(f"{location!r} = {item.get('input')!r}: {item['msg']}")
    return f"invalid configuration for {owner}: " + "; ".join(problems) + "."


@dataclass
class Registry:
    """All registered components, by kind and name."""

    _entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {kind: {} for kind in KINDS})

    # -- registration -------------------------------------------------------------------------
    def register(
        self,
        kind: str,
        name: str,
        obj: Any,
        *,
        config: type[pydantic.BaseModel] | None = None,
        search_space: Callable[..., dict[str, Any]] | None = None,
        description: str = "",
        paper: str = "",
        plugin: str = "merc-bench",
        source: str = "",
    ) -> Entry:
        """Add one component; raises :class:`RegistrationError` if it breaks a rule."""
        if kind not in KINDS:
            raise RegistrationError(f"{plugin}: unknown kind {kind!r} for {name!r}; kinds are {', '.join(KINDS)}")
        if name in self._entries[kind]:
            owner = self._entries[kind][name].plugin
            raise RegistrationError(f"{kind} {name!r} is registered twice: by {owner!r} and by {plugin!r}")
        _check_interface(kind, name, obj, config)
        if search_space is not None and not callable(search_space):
            raise RegistrationError(f"{kind} {name!r}: search_space must be callable (trial, prefix) -> dict")
        entry = Entry(kind, name, obj, config, search_space, description or _first_line(obj), paper, plugin, source)
        self._entries[kind][name] = entry
        return entry

    def scoped(self, plugin: str, source: str = "") -> "ScopedRegistry":
        """A view that records ``plugin`` (distribution) and ``source`` (plugin name) as the owner."""
        return ScopedRegistry(self, plugin, source)

    # -- lookup ---------------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Entry:
        """The entry for ``name``; a :class:`UserError` naming known names and close matches if absent."""
        try:
            return self._entries[kind][name]
        except KeyError:
            raise UserError(unknown_name_message(kind, name, self._entries[kind])) from None

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: str | None = None) -> Iterator[Entry]:
        kinds = KINDS if kind is None else (kind,)
        for each in kinds:
            for name in sorted(self._entries[each]):
                yield self._entries[each][name]


@dataclass
class ScopedRegistry:
    """What a plugin's ``merc_bench_register`` hook receives: ``register`` with the owner filled in."""

    _registry: Registry
    plugin: str
    source: str = ""

    def register(self, kind: str, name: str, obj: Any, **options: Any) -> Entry:
        return self._registry.register(kind, name, obj, plugin=self.plugin, source=self.source, **options)


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _check_interface(kind: str, name: str, obj: Any, config: type[pydantic.BaseModel] | None) -> None:
    if kind == "recipe":
        from merc_bench.recipes import Recipe  # local: recipes import the registry's users

        if not isinstance(obj, Recipe):
            raise RegistrationError(f"recipe {name!r} must be a merc_bench.Recipe, got {type(obj).__name__}")
        return
    if not inspect.isclass(obj):
        raise RegistrationError(f"{kind} {name!r} must be a class, got {obj!r}")
    missing = [method for method in _REQUIRED_METHODS[kind] if not callable(getattr(obj, method, None))]
    if missing:
        raise RegistrationError(f"{kind} {name!r} ({obj.__qualname__}) lacks {', '.join(missing)}()")
    if kind in _MODEL_KINDS:
        import torch

        if not issubclass(obj, torch.nn.Module):
            raise RegistrationError(f"{kind} {name!r} ({obj.__qualname__}) must be a torch.nn.Module")
    if config is None or not (inspect.isclass(config) and issubclass(config, pydantic.BaseModel)):
        raise RegistrationError(f"{kind} {name!r} needs a pydantic config model (config=...)")
    if config.model_config.get("extra") != "forbid":
        raise RegistrationError(f"{kind} {name!r}: config {config.__name__} must set extra='forbid'")
    parameters = inspect.signature(obj.__init__).parameters
    keyword_only = {p for p, spec in parameters.items() if spec.kind is inspect.Parameter.KEYWORD_ONLY}
    positional = [p for p, spec in parameters.items() if p != "self" and spec.kind is not inspect.Parameter.KEYWORD_ONLY
                  and spec.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    if positional:
        raise RegistrationError(f"{kind} {name!r}: constructor parameters must be keyword-only, not {positional}")
    not_in_constructor = set(config.model_fields) - keyword_only
    if not_in_constructor:
        raise RegistrationError(
            f"{kind} {name!r}: config fields {sorted(not_in_constructor)} are not constructor parameters"
        )
    unknown = {
        p
        for p, spec in parameters.items()
        if spec.kind is inspect.Parameter.KEYWORD_ONLY
        and p not in config.model_fields
        and p not in CONTEXT_NAMES
        and spec.default is inspect.Parameter.empty
    }
    if unknown:
        raise RegistrationError(
            f"{kind} {name!r}: required constructor parameters {sorted(unknown)} are neither config fields "
            f"nor build-context names ({', '.join(sorted(CONTEXT_NAMES))})"
        )
