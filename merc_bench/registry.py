"""The component registry: every encoder, mixer, fuser, distiller, dataset and recipe by name.

Plugins fill it through the ``merc_bench_register`` hook (see :mod:`merc_bench.hookspecs`); the
core's own components arrive the same way. An entry binds a name to a class, a pydantic config
model (``extra="forbid"``), an optional Optuna search space ``search_space(trial, prefix) -> dict``
and metadata. Registration checks the class against its kind's interface and checks that every
config field is a keyword-only constructor parameter, so a config can always build its class.

Names: the built-in plugins (distribution ``merc-bench``) register bare names (``transformer``);
every other distribution's names are namespaced ``dist:name`` (``merc-bench-plugin-example:tensor-fusion``)
so two packages can never collide silently. A bare name also finds a third-party entry when exactly
one distribution registered it (the short alias); two → a clear "ambiguous" error naming both. A
third party may not register a built-in's bare name (the alias would shadow it), and nobody may
register the same qualified name twice; both errors name the two owners.

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

from merc_bench.errors import UserError, preview, unknown_name_message

__all__ = ["KINDS", "CONTEXT_NAMES", "BUILTIN_DISTRIBUTION", "BuildRefused", "Entry", "Registry", "RegistrationError"]

#: The distribution whose plugins register bare (un-namespaced) names.
BUILTIN_DISTRIBUTION = "merc-bench"

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
            raise UserError(describe_validation_error(error, f"{where or self.kind} {self.name!r}")) from None

    def context_parameters(self) -> list[str]:
        """The build-context names this entry's constructor asks for (a config field of the same name wins)."""
        if not inspect.isclass(self.obj):
            return []
        parameters = inspect.signature(self.obj.__init__).parameters
        fields = self.config.model_fields if self.config is not None else {}
        return [name for name in parameters if name in CONTEXT_NAMES and name not in fields]

    def build(self, config: pydantic.BaseModel, context: dict[str, Any]) -> Any:
        """Instantiate the class from a validated config plus the context values it asks for.

        A constructor refuses a configuration it cannot work with by raising :class:`UserError`,
        ``ValueError`` or ``TypeError``; that becomes a :class:`BuildRefused` naming this component and
        its distribution. Any other exception is a bug in the component and propagates unchanged.
        """
        kwargs = config.model_dump()
        for name in self.context_parameters():
            kwargs[name] = context[name]
        try:
            return self.obj(**kwargs)
        except (UserError, ValueError, TypeError) as error:
            raise BuildRefused(self, error) from error


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


def describe_validation_error(error: pydantic.ValidationError, owner: str) -> str:
    """One paragraph naming every bad field, its value and what was expected."""
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(config)"
        if item["type"] == "extra_forbidden":
            problems.append(f"{preview(location)} is not an option")
        else:
            problems.append(f"{preview(location)} = {preview(item.get('input'))}: {item['msg']}")
    return f"invalid configuration for {owner}: " + "; ".join(problems[:_MAX_PROBLEMS]) + (
        f"; and {len(problems) - _MAX_PROBLEMS} more problems." if len(problems) > _MAX_PROBLEMS else ".")


#: Enough problems to fix at once; a config with hundreds of bad keys would otherwise print them all.
_MAX_PROBLEMS = 5
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

    def _bare_clash(self, kind: str, name: str, *, builtin: bool) -> Entry | None:
        """A third-party name equal to a built-in's bare name (either registered first)."""
        for entry in self._entries[kind].values():
            if entry.short_name == name and bool(entry.namespace) == builtin:
                return entry
        return None

    def unregister(self, kind: str, name: str) -> None:
        """Remove one entry (used to roll back a plugin whose registration failed half-way)."""
        self._entries[kind].pop(name, None)

    def scoped(self, plugin: str, source: str = "", namespace: str | None = None) -> "ScopedRegistry":
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
            return entries[name]
        candidates = [entry for entry in entries.values() if entry.namespace and entry.short_name == name]
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            raise UserError(f"{kind} {name!r} is ambiguous: " + ", ".join(sorted(c.name for c in candidates))
                            + " all have it; use the full name.")
        raise UserError(unknown_name_message(kind, name, entries)) from None

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
