"""Plugin discovery with pluggy and the process-wide registry built from it.

Every installed distribution that declares an entry point in the ``merc_bench`` group is a plugin,
merc-bench's own built-ins included. Plugin commands for the command line come from a second,
separate group, ``merc_bench.cli`` (:func:`command_plugin_manager`): its modules are loaded at
every start-up, so they must be light — the ``merc_bench`` group's modules import the components
and with them PyTorch, which ``merc-bench --help`` must not wait for. A plugin that fails — its module raises on import, or its
``merc_bench_register`` hook raises or breaks a registry rule — is reported with its distribution
and version (:func:`plugin_problems`; the CLI prints them as warnings), its half-made registrations
are rolled back, and every other plugin still loads. In strict mode the first failure stops the
command instead.

Environment variables:

``MERC_BENCH_DISABLE_PLUGIN_AUTOLOAD``
    When set to a non-empty value, no entry points are loaded; only plugins registered
    explicitly through :func:`plugin_manager` ``.register(...)`` contribute.
``MERC_BENCH_BLOCK_PLUGINS``
    Comma-separated entry-point names to skip (for example ``sdt,synthetic``).
``MERC_BENCH_STRICT_PLUGINS``
    When set to a non-empty value, a plugin that fails to load stops the command (``--strict-plugins``).
``MERC_BENCH_TRACE``
    When set to a non-empty value, every hook call is logged to stderr (``merc-bench --trace``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points

import pluggy

from merc_bench import hookspecs
from merc_bench.errors import UserError
from merc_bench.registry import BUILTIN_DISTRIBUTION, Registry

__all__ = ["plugin_manager", "get_registry", "reset", "plugin_distributions", "plugin_problems", "PluginProblem",
           "command_plugin_manager", "command_problems", "record_command_problem", "command_distribution",
           "COMMANDS_GROUP"]

AUTOLOAD_VARIABLE = "MERC_BENCH_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_VARIABLE = "MERC_BENCH_BLOCK_PLUGINS"
STRICT_VARIABLE = "MERC_BENCH_STRICT_PLUGINS"
TRACE_VARIABLE = "MERC_BENCH_TRACE"
IN_PROCESS = "(registered in process)"
#: The entry-point group of light modules that add commands to the command line (merc_bench_cli_commands).
COMMANDS_GROUP = "merc_bench.cli"


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that could not be loaded or could not register."""

    plugin: str  # entry-point (or in-process) name
    distribution: str
    version: str
    stage: str  # "import" or "register"; "command import" or "commands" for a merc_bench.cli module
    error: str

    def reason(self) -> str:
        """What went wrong, as a clause: ``distribution 'x 1.0' could not be imported: ...``."""
        owner = f"{self.distribution} {self.version}".strip()
        action = "could not be imported" if self.stage == "import" else "failed while registering"
        return f"its distribution {owner!r} {action}: {self.error}"

    def message(self) -> str:
        owner = f"{self.distribution} {self.version}".strip()
        action = {"import": "could not be imported", "register": "failed while registering",
                  "command import": "(its command-line module) could not be imported",
                  "commands": "failed while adding its commands"}[self.stage]
        lost = "commands" if self.stage.startswith("command") else "components"
        return (f"plugin {self.plugin!r} of distribution {owner!r} {action}: {self.error}. "
                f"Its {lost} are not available; the other plugins loaded.")


_problems: list[PluginProblem] = []
_command_problems: list[PluginProblem] = []
_distributions: dict[int, tuple[str, str]] = {}  # id(plugin object) -> (distribution, version)


def _strict() -> bool:
    return bool(os.environ.get(STRICT_VARIABLE))


def strict_message(problem: PluginProblem) -> str:
    """The problem's message as the error of strict plugin loading."""
    return problem.message().replace("the other plugins loaded", f"strict plugin loading ({STRICT_VARIABLE} or "
                                     "--strict-plugins) stops here")


def _record(problem: PluginProblem, problems: list[PluginProblem] | None = None) -> None:
    if _strict():
        raise UserError(strict_message(problem))
    (_problems if problems is None else problems).append(problem)


@lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with installed plugins loaded unless autoload is disabled."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    if os.environ.get(TRACE_VARIABLE):
        manager.trace.root.setwriter(lambda text: sys.stderr.write(f"[merc-bench hook] {text}"))
        manager.enable_tracing()
    for blocked in filter(None, (part.strip() for part in os.environ.get(BLOCK_VARIABLE, "").split(","))):
        manager.set_blocked(blocked)
    if not os.environ.get(AUTOLOAD_VARIABLE):
        _load_entry_points(manager)
    manager.check_pending()
    return manager


def _load_entry_points(manager: pluggy.PluginManager, group: str = hookspecs.PROJECT,
                       problems: list[PluginProblem] | None = None, stage: str = "import") -> None:
    """Load every entry point of ``group``, one at a time, so one broken plugin cannot stop the rest."""
    for point in sorted(entry_points(group=group), key=lambda p: p.name):
        if manager.is_blocked(point.name) or manager.get_plugin(point.name) is not None:
            continue
        distribution = point.dist.metadata["name"] if point.dist is not None else "(unknown distribution)"
        version = point.dist.version if point.dist is not None else ""
        try:
            plugin = point.load()
        except Exception as error:  # a third party's import error must not take merc-bench down
            _record(PluginProblem(point.name, distribution, version, stage, f"{type(error).__name__}: {error}"),
                    problems)
            continue
        manager.register(plugin, name=point.name)
        _distributions[id(plugin)] = (distribution, version)


def plugin_distributions() -> dict[object, tuple[str, str]]:
    """Map each loaded plugin object to (distribution name, version)."""
    manager = plugin_manager()
    return {plugin: _distributions[id(plugin)] for _, plugin in manager.list_name_plugin()
            if plugin is not None and id(plugin) in _distributions}


def plugin_problems() -> list[PluginProblem]:
    """Plugins that failed to import or to register (after :func:`get_registry` has run)."""
    get_registry()
    return list(_problems)


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The registry filled by every plugin's ``merc_bench_register`` hook (built once per process)."""
    manager = plugin_manager()
    manager.check_pending()
    registry = Registry()
    owners = plugin_distributions()
    named = [(name, plugin) for name, plugin in manager.list_name_plugin() if plugin is not None]
    _problems[:] = [p for p in _problems if p.stage == "import"]
    for name, plugin in named:
        if not hasattr(plugin, "merc_bench_register"):
            continue
        distribution, version = owners.get(plugin, (IN_PROCESS, ""))
        # Third-party names live under the distribution's name; a plugin registered in process
        # (tests, notebooks) has no distribution and uses its plugin name instead.
        namespace = "" if distribution == BUILTIN_DISTRIBUTION else (name if distribution == IN_PROCESS else distribution)
        scoped = registry.scoped(distribution, name, namespace)
        others = [other for _, other in named if other is not plugin]
        try:
            # One call per plugin so each registration is attributed to its distribution and plugin name.
            manager.subset_hook_caller("merc_bench_register", remove_plugins=others)(registry=scoped)
        except Exception as error:
            scoped.rollback()
            _record(PluginProblem(name, distribution, version, "register", f"{type(error).__name__}: {error}"))
    # Why a plugin a recipe requires is absent, for the recipe's error message.
    for name, plugin in manager.list_name_plugin():
        if plugin is None:
            registry.unavailable[name] = f"it is blocked ({BLOCK_VARIABLE})"
    for problem in _problems:
        registry.unavailable[problem.plugin] = problem.reason()
    return registry


@lru_cache(maxsize=1)
def command_plugin_manager() -> pluggy.PluginManager:
    """The plugin manager of the command line's plugin commands: the ``merc_bench.cli`` entry points.

    Separate from :func:`plugin_manager` so that the command line can ask every plugin for its
    commands (``merc_bench_cli_commands``) at start-up without importing any plugin's components.
    The same environment variables apply: autoload off, blocked names, strict loading. Tests and
    notebooks register command plugins here with ``.register(...)``.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for blocked in filter(None, (part.strip() for part in os.environ.get(BLOCK_VARIABLE, "").split(","))):
        manager.set_blocked(blocked)
    if not os.environ.get(AUTOLOAD_VARIABLE):
        _load_entry_points(manager, COMMANDS_GROUP, _command_problems, "command import")
    manager.check_pending()
    return manager


def command_problems() -> list[PluginProblem]:
    """Command modules that failed to import or to add their commands."""
    return list(_command_problems)


def record_command_problem(problem: PluginProblem) -> None:
    """Report a plugin whose commands could not be added (strict loading: raise)."""
    _record(problem, _command_problems)


def command_distribution(plugin: object) -> tuple[str, str]:
    """(distribution, version) of a loaded command module; (in process, "") for one registered in process."""
    return _distributions.get(id(plugin), (IN_PROCESS, ""))


def reset() -> None:
    """Forget the plugin manager and registry (tests use this after changing the environment)."""
    get_registry.cache_clear()
    plugin_manager.cache_clear()
    command_plugin_manager.cache_clear()
    _problems.clear()
    _command_problems.clear()
    _distributions.clear()
