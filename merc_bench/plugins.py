"""Plugin discovery with pluggy and the process-wide registry built from it.

Environment variables:

``MERC_BENCH_DISABLE_PLUGIN_AUTOLOAD``
    When set to a non-empty value, no entry points are loaded; only plugins registered
    explicitly through :func:`plugin_manager` ``.register(...)`` contribute.
``MERC_BENCH_BLOCK_PLUGINS``
    Comma-separated entry-point names to skip (for example ``sdt,synthetic``).
"""

from __future__ import annotations

import os
from functools import lru_cache

import pluggy

from merc_bench import hookspecs
from merc_bench.registry import Registry

__all__ = ["plugin_manager", "get_registry", "reset", "plugin_distributions"]

AUTOLOAD_VARIABLE = "MERC_BENCH_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_VARIABLE = "MERC_BENCH_BLOCK_PLUGINS"


@lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with installed plugins loaded unless autoload is disabled."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for blocked in filter(None, (part.strip() for part in os.environ.get(BLOCK_VARIABLE, "").split(","))):
        manager.set_blocked(blocked)
    if not os.environ.get(AUTOLOAD_VARIABLE):
        manager.load_setuptools_entrypoints(hookspecs.PROJECT)
    manager.check_pending()
    return manager


def plugin_distributions() -> dict[object, tuple[str, str]]:
    """Map each loaded plugin object to (distribution name, version)."""
    return {
        plugin: (distribution.metadata["name"], distribution.version)
        for plugin, distribution in plugin_manager().list_plugin_distinfo()
    }


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The registry filled by every plugin's ``merc_bench_register`` hook (built once per process)."""
    manager = plugin_manager()
    manager.check_pending()
    registry = Registry()
    owners = plugin_distributions()
    named = [(name, plugin) for name, plugin in manager.list_name_plugin() if plugin is not None]
    for name, plugin in named:
        if not hasattr(plugin, "merc_bench_register"):
            continue
        owner = owners.get(plugin, ("(registered in process)", ""))[0]
        others = [other for _, other in named if other is not plugin]
        # One call per plugin so each registration is attributed to its distribution and plugin name.
        manager.subset_hook_caller("merc_bench_register", remove_plugins=others)(
            registry=registry.scoped(owner, name)
        )
    return registry


def reset() -> None:
    """Forget the plugin manager and registry (tests use this after changing the environment)."""
    get_registry.cache_clear()
    plugin_manager.cache_clear()
