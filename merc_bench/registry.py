"""The component registry: every encoder, mixer, fuser, distiller, dataset, feature extractor and recipe by name.

A component is declared once, beside its class, with :func:`component` (exported as
``merc_bench.component``)::

    class ConcatFuserConfig(BaseModel):
        model_config = ConfigDict(extra="forbid")
        dropout: float = Field(0.1, ge=0.0, lt=1.0)

    @merc_bench.component("fuser", "concat", config=ConcatFuserConfig, search_space=search_space)
    class ConcatFuser(nn.Module):
        def __init__(self, config: ConcatFuserConfig, *, modalities: tuple[str, ...], hidden_size: int):
            ...

The decorator only records that declaration on the class. The plugin's ``merc_bench_register``
hook (see :mod:`merc_bench.hookspecs`) then registers what its modules declare,
``registry.register_declared(concat_fuser, mean_fuser, ...)``; the core's own plugins arrive the
same way as third parties'. Recipes, which are values rather than classes, are registered with
``registry.register("recipe", name, recipe)``.

An entry binds a name to a class, a pydantic config model (``extra="forbid"``), an optional Optuna
search space ``search_space(trial, prefix) -> dict`` and metadata. Registration checks the class
against its kind's interface and the constructor against the config: the validated config object
is the constructor's one positional parameter (the options live in the config and nowhere else),
and every keyword-only parameter is a build-context name (:class:`BuildContext`), which the model
builder passes by name. That keeps model-wide facts (one hidden size for all components, the
dataset's dimensions) out of the per-component configs, where they could disagree.

Names: the built-in plugins (distribution ``merc-bench``) register bare names (``transformer``);
every other distribution's names are namespaced ``dist:name`` (``merc-bench-plugin-example:tensor-fusion``)
so two packages can never collide silently. A bare name also finds a third-party entry when exactly
one distribution registered it (the short alias); two → a clear "ambiguous" error naming both. A
third party may not register a built-in's bare name (the alias would shadow it), and nobody may
register the same qualified name twice; both errors name the two owners.

A recipe names the plugins (entry-point names) whose components it uses besides its own
(``Recipe(requires=("sdt",))``); looking up a recipe whose required plugin did not register anything
(not installed, blocked, or failed to load) is an error naming that plugin and why it is missing.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import pydantic

from merc_bench.errors import UserError, preview, unknown_name_message

__all__ = ["KINDS", "CONTEXT_NAMES", "BUILTIN_DISTRIBUTION", "BuildContext", "BuildRefused", "Declaration", "Entry",
           "Option", "Registry", "RegistrationError", "component", "config_options", "declared_components", "describe_type"]

#: The distribution whose plugins register bare (un-namespaced) names.
BUILTIN_DISTRIBUTION = "merc-bench"

KINDS = ("encoder", "mixer", "fuser", "distiller", "dataset", "text_encoder", "audio_encoder", "visual_encoder",
         "recipe")



class BuildContext(TypedDict):
    """The model-wide values a constructor may ask for, each as a keyword-only parameter of that name.

    :func:`merc_bench.model.build_context` makes them from the run configuration and the dataset;
    :data:`merc_bench.testing.SMALL_CONTEXT` is the small one the contract kit builds with. A
    constructor asks only for the names it uses: ``__init__(self, config, *, modalities, hidden_size)``.
    Datasets are built with ``data_dir`` alone and text, audio and visual encoders with none.
    """

    #: H, the size of every component's per-utterance representation (``model.hidden_size``).
    hidden_size: int
    #: The run's modalities: a non-empty subset of the dataset's (``--modalities``), in the dataset's
    #: order — ``text``, ``audio``, ``visual`` first, in that order, then any others the dataset has.
    #: Components iterate over it (or over the dicts they receive), never over hard-coded names.
    modalities: tuple[str, ...]
    #: D_m per run modality, in the order of ``modalities`` (the feature sizes of the input features).
    feature_dims: dict[str, int]
    #: The dataset's number of distinct speakers; batches hold indices 0..num_speakers-1 for real
    #: utterances and ``num_speakers`` at padded positions.
    num_speakers: int
    #: C, the number of emotion classes.
    num_classes: int
    #: The dataset family: ``"meld"`` or ``"iemocap"`` (the layout and label set its features follow),
    #: which also selects a recipe's per-family defaults.
    family: str
    #: The folder ``--data-dir`` names (datasets only; None when not given, and for model components).
    data_dir: Path | None


#: Values the model builder passes to constructors that name them as keyword-only parameters.
CONTEXT_NAMES = frozenset(BuildContext.__annotations__)

#: The attribute :func:`component` sets on a declared class.
DECLARATION_ATTRIBUTE = "__merc_bench_component__"

# The methods each kind must define (the recipe kind holds Recipe values, checked by type).
_REQUIRED_METHODS = {
    "encoder": ("forward",),
    "mixer": ("forward",),
    "fuser": ("forward",),
    "distiller": ("forward",),
    "dataset": ("load",),
    "text_encoder": ("encode",),  # encode(texts: list[str]) -> float32 array (len(texts), D)
    # encode(clips) -> float32 (len(clips), D); clips: mono samples (S,) at .sample_rate, or RGB frames
    # (T, height, width, 3) uint8 at .frame_rate and .frame_size (merc_bench.media_features)
    "audio_encoder": ("encode",),
    "visual_encoder": ("encode",),
}
_MODEL_KINDS = ("encoder", "mixer", "fuser", "distiller")


class RegistrationError(Exception):
    """A plugin tried to register something that breaks the registry's rules (a plugin bug)."""


@dataclass(frozen=True)
class Declaration:
    """What :func:`component` records on a class: everything its registry entry needs but the owner."""

    kind: str
    name: str
    config: type[pydantic.BaseModel]
    search_space: Callable[..., dict[str, Any]] | None = None
    description: str = ""
    paper: str = ""


def component(
    kind: str,
    name: str,
    *,
    config: type[pydantic.BaseModel],
    search_space: Callable[..., dict[str, Any]] | None = None,
    description: str = "",
    paper: str = "",
) -> Callable[[type], type]:
    """Declare the decorated class a component of ``kind`` named ``name`` (bare; the registry adds
    the namespace), built from ``config``.

    The class is returned unchanged apart from the recorded :class:`Declaration`; nothing is
    registered until the plugin's ``merc_bench_register`` hook calls ``registry.register_declared``
    with the module, and the registry's checks (interface, config, constructor) run then.
    ``description`` defaults to the first line of the class's docstring.
    """

    def declare(cls: type) -> type:
        if not inspect.isclass(cls):
            raise RegistrationError(f"@component({kind!r}, {name!r}) decorates classes, not {cls!r}")
        if DECLARATION_ATTRIBUTE in vars(cls):
            raise RegistrationError(f"{cls.__qualname__} is declared twice (@component on it more than once)")
        setattr(cls, DECLARATION_ATTRIBUTE, Declaration(kind, name, config, search_space, description, paper))
        return cls

    return declare


def declared_components(source: Any) -> list[type]:
    """The declared classes of a module, in definition order (or ``[source]`` for one declared class).

    Only classes defined in the module count, so a declared class imported from elsewhere is not
    registered twice; a subclass of a declared class is not declared unless decorated itself.
    """
    if inspect.isclass(source):
        if DECLARATION_ATTRIBUTE not in vars(source):
            raise RegistrationError(f"{source.__qualname__} is not declared: decorate it with @merc_bench.component")
        return [source]
    if not isinstance(source, types.ModuleType):
        raise RegistrationError(f"register_declared takes modules or declared classes, not {source!r}")
    found = [value for value in vars(source).values()
             if inspect.isclass(value) and DECLARATION_ATTRIBUTE in vars(value) and value.__module__ == source.__name__]
    if not found:
        raise RegistrationError(f"module {source.__name__} declares no component (@merc_bench.component)")
    return found


@dataclass(frozen=True)
class Entry:
    """One registered component."""

    kind: str
    name: str  # the qualified name: bare for built-ins, "namespace:name" for everyone else
    obj: Any  # the class (or, for recipes, the Recipe value)
    config: type[pydantic.BaseModel] | None
    search_space: Callable[..., dict[str, Any]] | None = None
    description: str = ""
    paper: str = ""
    plugin: str = BUILTIN_DISTRIBUTION  # distribution that registered it
    source: str = ""  # plugin (entry-point) name within that distribution
    namespace: str = ""  # "" for built-ins; otherwise the prefix of ``name``

    @property
    def short_name(self) -> str:
        """The name without its namespace."""
        return self.name.split(":", 1)[1] if self.namespace else self.name

    def make_config(self, values: dict[str, Any] | None = None, *, where: str = "") -> pydantic.BaseModel:
        """Validate ``values`` against this entry's config, turning pydantic errors into one paragraph."""
        assert self.config is not None
        try:
            return self.config.model_validate(values or {})
        except pydantic.ValidationError as error:
            raise UserError(describe_validation_error(error, f"{where or self.kind} {self.name!r}",
                                                      self.config)) from None

    def context_parameters(self) -> list[str]:
        """The build-context names this entry's constructor asks for (its keyword-only parameters)."""
        if not inspect.isclass(self.obj):
            return []
        parameters = inspect.signature(self.obj.__init__).parameters
        return [name for name, spec in parameters.items() if spec.kind is inspect.Parameter.KEYWORD_ONLY]

    def build(self, config: pydantic.BaseModel, context: BuildContext | dict[str, Any]) -> Any:
        """Instantiate the class: ``cls(config, **{name: context[name] for each context name it asks for})``.

        A constructor refuses a configuration it cannot work with by raising :class:`UserError`,
        ``ValueError`` or ``TypeError``; that becomes a :class:`BuildRefused` naming this component and
        its distribution. Any other exception is a bug in the component and propagates unchanged.
        """
        assert self.config is not None and isinstance(config, self.config), "build takes make_config's result"
        values = {name: context[name] for name in self.context_parameters()}
        try:
            return self.obj(config, **values)
        except (UserError, ValueError, TypeError) as error:
            raise BuildRefused(self, error) from error


def _declarations(sources: tuple[Any, ...]) -> list[tuple[type, Declaration]]:
    return [(cls, vars(cls)[DECLARATION_ATTRIBUTE]) for each in sources for cls in declared_components(each)]


class BuildRefused(UserError):
    """A component's constructor refused its configuration (the one way for a component to say no)."""

    def __init__(self, entry: Entry, error: BaseException) -> None:
        self.entry = entry
        self.error = error
        super().__init__(
            f"{entry.kind} {entry.name!r} ({_distribution_label(entry.plugin)}) refused to build: "
            f"{_one_paragraph(error)}. Change the {entry.kind}'s options (--set {entry.kind}.<option>=...), "
            f"the model-wide sizes or --modalities, or choose another {entry.kind}."
        )


#: A component's own message is shown at most this long: it may quote values a user typed.
REFUSAL_MESSAGE_LIMIT = 400


def _one_paragraph(error: BaseException) -> str:
    """The exception's message on one line, bounded; the type too unless it is a UserError."""
    text = " ".join(str(error).split()).rstrip(".")
    if len(text) > REFUSAL_MESSAGE_LIMIT:
        text = text[: REFUSAL_MESSAGE_LIMIT - 1] + "…"
    if isinstance(error, UserError):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _distribution_label(distribution: str) -> str:
    """``distribution <name> <version>``, the version read from the installed metadata when there is one."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"distribution {distribution} {version(distribution)}"
    except (PackageNotFoundError, ValueError):
        return f"distribution {distribution}"


def describe_validation_error(error: pydantic.ValidationError, owner: str,
                              model: type[pydantic.BaseModel] | None = None) -> str:
    """One paragraph naming every bad field, its value and what was expected; with the ``model`` that
    was validated, an unknown option also gets the closest valid ones (``training.lrr`` → ``training.lr``)."""
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(config)"
        if item["type"] == "extra_forbidden":
            problems.append(f"{preview(location)} is not an option{_closest_options(model, item['loc'])}")
        else:
            problems.append(f"{preview(location)} = {preview(item.get('input'))}: {item['msg']}")
    return f"invalid configuration for {owner}: " + "; ".join(problems[:_MAX_PROBLEMS]) + (
        f"; and {len(problems) - _MAX_PROBLEMS} more problems." if len(problems) > _MAX_PROBLEMS else ".")


def _closest_options(model: type[pydantic.BaseModel] | None, location: tuple[Any, ...]) -> str:
    """" (did you mean 'training.lr'?)", or the valid options beside it; empty when they are not known."""
    import difflib

    group = model
    for part in location[:-1]:  # down the nested models to the one holding the unknown key
        field = group.model_fields.get(part) if isinstance(part, str) and group is not None else None
        group = _nested_model(field.annotation) if field is not None else None
    if group is None or not group.model_fields:
        return ""
    prefix = "".join(f"{part}." for part in location[:-1])
    known = list(group.model_fields)
    typed = str(location[-1])
    close = difflib.get_close_matches(typed, known, n=3, cutoff=0.6) if len(typed) <= 100 else []
    if close:
        return f" (did you mean {' or '.join(repr(prefix + name) for name in close)}?)"
    return f" ({'the options of ' + prefix.rstrip('.') if prefix else 'its options'}: {', '.join(known)})"


def _nested_model(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The pydantic model a field holds, directly or as the one model of an Optional/Union."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    models = [arg for arg in typing.get_args(annotation) if isinstance(arg, type) and issubclass(arg, pydantic.BaseModel)]
    return models[0] if len(models) == 1 else None


#: Enough problems to fix at once; a config with hundreds of bad keys would otherwise print them all.
_MAX_PROBLEMS = 5


@dataclass(frozen=True)
class Option:
    """One option of a component's config as ``merc-bench list KIND NAME`` shows it."""

    name: str
    type: str  # as describe_type writes it
    default: str  # JSON, as --set takes it; "required" when there is none
    description: str


def describe_type(annotation: Any) -> str:
    """An option's type as a user writes values: ``str | list[str]``, ``error | first | join``, ``null``."""
    if annotation is type(None):
        return "null"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:  # bounds and markers inside lists and tables
        return describe_type(args[0])
    if origin is typing.Literal:
        return " | ".join(json.dumps(value) if not isinstance(value, str) else value for value in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(describe_type(arg) for arg in args)
    if origin is not None and args:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(describe_type(arg) for arg in args)}]"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def config_options(config: type[pydantic.BaseModel]) -> list[Option]:
    """Every option of ``config`` with its type, default and description, in declaration order."""
    options = []
    for name, spec in config.model_fields.items():
        if spec.is_required():
            default = "required"
        else:
            value = spec.get_default(call_default_factory=True, validated_data={})
            default = json.dumps(value, default=str, ensure_ascii=False)
        options.append(Option(name, describe_type(spec.annotation), default, spec.description or ""))
    return options


@dataclass
class Registry:
    """All registered components, by kind and name."""

    _entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {kind: {} for kind in KINDS})
    #: plugin (entry-point) name -> why it registered nothing: blocked, failed to import or to
    #: register (filled by merc_bench.plugins); used to say why a recipe's required plugin is missing.
    unavailable: dict[str, str] = field(default_factory=dict)

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
        plugin: str = BUILTIN_DISTRIBUTION,
        source: str = "",
        namespace: str | None = None,
    ) -> Entry:
        """Add one component under ``namespace:name`` (bare for built-ins); raises :class:`RegistrationError`.

        ``namespace`` defaults to "" for the built-in distribution and to ``plugin`` otherwise.
        """
        if kind not in KINDS:
            raise RegistrationError(f"{plugin}: unknown kind {kind!r} for {name!r}; kinds are {', '.join(KINDS)}")
        if not name or ":" in name:
            raise RegistrationError(f"{plugin}: {kind} name {name!r} must be non-empty and without ':' "
                                    "(the registry adds the namespace)")
        if namespace is None:
            namespace = "" if plugin == BUILTIN_DISTRIBUTION else plugin
        qualified = f"{namespace}:{name}" if namespace else name
        if qualified in self._entries[kind]:
            owner = self._entries[kind][qualified].plugin
            raise RegistrationError(f"{kind} {qualified!r} is registered twice: by {owner!r} and by {plugin!r}")
        clash = self._bare_clash(kind, name, builtin=not namespace)
        if clash is not None:
            raise RegistrationError(
                f"{kind} {name!r} from {plugin!r} clashes with the built-in {kind} {clash.name!r} of {clash.plugin!r}"
                if namespace else
                f"built-in {kind} {name!r} from {plugin!r} clashes with {clash.name!r} of {clash.plugin!r}"
            )
        _check_interface(kind, qualified, obj, config)
        if search_space is not None and not callable(search_space):
            raise RegistrationError(f"{kind} {qualified!r}: search_space must be callable (trial, prefix) -> dict")
        entry = Entry(kind, qualified, obj, config, search_space, description or _first_line(obj), paper, plugin,
                      source, namespace)
        self._entries[kind][qualified] = entry
        return entry

    def register_declared(self, *sources: Any, plugin: str = BUILTIN_DISTRIBUTION, source: str = "",
                          namespace: str | None = None) -> list[Entry]:
        """Register every class that ``sources`` (modules, or declared classes) declare with :func:`component`."""
        return [self.register(d.kind, d.name, cls, config=d.config, search_space=d.search_space,
                              description=d.description, paper=d.paper, plugin=plugin, source=source,
                              namespace=namespace)
                for cls, d in _declarations(sources)]

    def _bare_clash(self, kind: str, name: str, *, builtin: bool) -> Entry | None:
        """A third-party name equal to a built-in's bare name (either registered first)."""
        for entry in self._entries[kind].values():
            if entry.short_name == name and bool(entry.namespace) == builtin:
                return entry
        return None

    def unregister(self, kind: str, name: str) -> None:
        """Remove one entry (used to roll back a plugin whose registration failed half-way)."""
        self._entries[kind].pop(name, None)

    def scoped(self, plugin: str, source: str = "", namespace: str | None = None) -> ScopedRegistry:
        """A view that records ``plugin`` (distribution) and ``source`` (plugin name) as the owner."""
        return ScopedRegistry(self, plugin, source, namespace)

    # -- lookup ---------------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> Entry:
        """The entry for a qualified name, or for a bare name that exactly one entry has.

        Raises a :class:`UserError` naming the known names and close matches when absent, or the
        candidates when a bare name is ambiguous.
        """
        entries = self._entries[kind]
        if name in entries:
            return self._available(entries[name])
        candidates = [entry for entry in entries.values() if entry.namespace and entry.short_name == name]
        if len(candidates) == 1:
            return self._available(candidates[0])
        if candidates:
            raise UserError(f"{kind} {name!r} is ambiguous: " + ", ".join(sorted(c.name for c in candidates))
                            + " all have it; use the full name.")
        raise UserError(unknown_name_message(kind, name, entries)) from None

    def _available(self, entry: Entry) -> Entry:
        """``entry``, unless it is a recipe one of whose required plugins registered nothing."""
        if entry.kind != "recipe":
            return entry
        loaded = self.plugin_names()
        for required in entry.obj.requires:
            if required not in loaded:
                why = self.unavailable.get(required, "no installed distribution provides it (no such entry point "
                                                     "in the merc_bench group)")
                raise UserError(
                    f"recipe {entry.name!r} needs plugin {required!r}, which is not loaded: {why}. "
                    f"Install or unblock it (see `merc-bench plugins`), or choose another recipe.")
        return entry

    def plugin_names(self) -> set[str]:
        """The plugins (entry-point names) that registered at least one entry."""
        return {entry.source for kind in KINDS for entry in self._entries[kind].values() if entry.source}

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

    _registry: Registry = field(repr=False)
    plugin: str
    source: str = ""
    namespace: str | None = None
    added: list[tuple[str, str]] = field(default_factory=list, repr=False)  # (kind, qualified name), for rollback

    def register(self, kind: str, name: str, obj: Any, **options: Any) -> Entry:
        """Register ``name`` (bare; the registry adds this plugin's namespace) — see :meth:`Registry.register`."""
        entry = self._registry.register(kind, name, obj, plugin=self.plugin, source=self.source,
                                        namespace=self.namespace, **options)
        self.added.append((kind, entry.name))
        return entry

    def register_declared(self, *sources: Any) -> list[Entry]:
        """Register every component the given modules (or declared classes) declare with
        :func:`merc_bench.component`, in their definition order — see :meth:`Registry.register_declared`."""
        return [self.register(d.kind, d.name, cls, config=d.config, search_space=d.search_space,
                              description=d.description, paper=d.paper)
                for cls, d in _declarations(sources)]

    def rollback(self) -> None:
        """Remove everything this plugin registered."""
        for kind, name in self.added:
            self._registry.unregister(kind, name)
        self.added.clear()


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _check_interface(kind: str, name: str, obj: Any, config: type[pydantic.BaseModel] | None) -> None:
    if kind == "recipe":
        from merc_bench.recipes import Recipe  # local: recipes import the registry's users

        if not isinstance(obj, Recipe):
            raise RegistrationError(f"recipe {name!r} must be a merc_bench.Recipe, got {type(obj).__name__}")
        if not isinstance(obj.requires, tuple) or not all(isinstance(r, str) and r for r in obj.requires):
            raise RegistrationError(f"recipe {name!r}: requires must be a tuple of plugin (entry-point) names, "
                                    f"got {obj.requires!r}")
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
    _check_constructor(kind, name, obj, config)


def _check_constructor(kind: str, name: str, obj: type, config: type[pydantic.BaseModel]) -> None:
    """``__init__(self, config, *, <build-context names>)``: the config object is the only positional
    parameter, so the options are declared once (in the config), and every keyword-only parameter is a
    build-context value the builder can pass."""
    where = f"{kind} {name!r} ({obj.__qualname__})"
    shape = f"__init__(self, config: {config.__name__}, *, <build-context names it needs>)"
    parameters = [spec for p, spec in inspect.signature(obj.__init__).parameters.items() if p != "self"]
    variadic = [spec.name for spec in parameters
                if spec.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if variadic:
        raise RegistrationError(f"{where}: the constructor may not take *args or **kwargs ({variadic}); "
                                f"it must be {shape}")
    positional = [spec for spec in parameters if spec.kind is not inspect.Parameter.KEYWORD_ONLY]
    if len(positional) != 1:
        raise RegistrationError(
            f"{where}: the constructor must take its validated config as its one positional parameter, "
            f"{shape}; it has {[spec.name for spec in positional] or 'none'}. Options belong in "
            f"{config.__name__}, not in the constructor's signature")
    keyword_only = [spec.name for spec in parameters if spec.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = [p for p in keyword_only if p not in CONTEXT_NAMES]
    if unknown:
        raise RegistrationError(
            f"{where}: keyword-only constructor parameters {unknown} are not build-context names "
            f"({', '.join(sorted(CONTEXT_NAMES))}); an option belongs in {config.__name__}, which the "
            "constructor receives whole")
    annotation = _annotation(obj, positional[0].name)
    if inspect.isclass(annotation) and not issubclass(config, annotation):
        raise RegistrationError(f"{where}: the constructor's config parameter is annotated {annotation.__name__}, "
                                f"but the component is declared with config {config.__name__}")


def _annotation(obj: type, parameter: str) -> Any:
    """The evaluated annotation of a constructor parameter, or None when absent or not evaluable."""
    try:
        return inspect.get_annotations(obj.__init__, eval_str=True).get(parameter)
    except Exception:  # a forward reference that does not resolve is not the registry's business
        return None
