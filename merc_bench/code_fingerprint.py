"""What code produced a result: the source of every participating component and plugin version.

The seed and teacher caches reuse a finished result only when the code that would produce it now is
the code that produced it then. A version number alone cannot tell: a plugin's fuser edited in
place, or merc-bench run from a git checkout, keeps its version. So a result is keyed on

* ``merc-bench`` — the core's version and a digest of the core modules on the training path
  (every module of the ``merc_bench`` package except the presentation and orchestration modules in
  :data:`NOT_TRAINING`, which cannot change a number a seed learns);
* one part per participating component package — for each component a run builds (encoder, mixer,
  fuser, distiller, and a teacher's components), the distribution that registered it, that
  distribution's version, and a digest of every ``.py`` file of the component's top-level package.
  The whole package, not the class's own module, because a component reads helpers beside it
  (SDT's fuser uses ``transformer.py``).

:func:`code_parts` returns these parts as a dict, :func:`changed_parts` says which differ between
two of them — what the caches print when they retrain instead of reusing.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from merc_bench import __version__

__all__ = ["NOT_TRAINING", "code_parts", "changed_parts", "package_digest"]

#: Core modules that only present, track, orchestrate or convert — never part of a seed's numbers.
NOT_TRAINING = frozenset({
    "cli.py", "comparison.py", "report.py", "tracking.py", "published.py", "significance.py", "seed_cache.py",
    "ablation.py", "convert.py", "prepare.py", "testing.py", "hookspecs.py", "plugins.py", "tuning",
    "code_fingerprint.py", "events.py", "subscribers.py", "api.py", "paths.py",
})
_COMPONENT_SLOTS = ("encoder", "mixer", "fuser", "distiller")


@functools.cache
def package_digest(folder: str, *, exclude: frozenset[str] = frozenset()) -> str:
    """sha256 over every ``.py`` file under ``folder`` (relative path and bytes, in sorted order).

    ``exclude`` names top-level files or folders to leave out. Cached per process: a package edited
    while a comparison runs is seen by the next process.
    """
    root = Path(folder)
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*.py") if p.relative_to(root).parts[0] not in exclude)
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _package_folder(obj: Any) -> tuple[str, str]:
    """(top-level package name, its folder) of the module defining ``obj``."""
    top = obj.__module__.split(".", 1)[0]
    module = sys.modules[top]
    path = Path(module.__file__)  # a package's __init__.py, or a single-module plugin
    return top, str(path.parent if path.name == "__init__.py" else path)


def _distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:  # registered from a test or a plain path
        return "unversioned"


def code_parts(configs: Iterable[Any], registry: Any) -> dict[str, dict[str, str]]:
    """The code behind every component the run configurations ``configs`` build, part by part.

    Each part: ``{"distribution": …, "version": …, "source": <digest>}``.
    """
    core = Path(__file__).parent
    parts = {"merc-bench": {"distribution": "merc-bench", "version": __version__,
                            "source": package_digest(str(core), exclude=NOT_TRAINING)}}
    for config in configs:
        for slot in _COMPONENT_SLOTS:
            entry = registry.get(slot, getattr(config, slot).name)
            package, folder = _package_folder(entry.obj)
            if Path(folder).is_dir():
                digest = package_digest(folder)
            else:  # a single-file plugin module
                digest = hashlib.sha256(Path(folder).read_bytes()).hexdigest()[:16]
            parts[package] = {"distribution": entry.plugin, "version": _distribution_version(entry.plugin),
                              "source": digest}
    return dict(sorted(parts.items()))


def changed_parts(before: dict[str, dict[str, str]], now: dict[str, dict[str, str]]) -> list[str]:
    """What differs between two :func:`code_parts` results, in words."""
    changes = []
    for name in sorted(set(before) | set(now)):
        old, new = before.get(name), now.get(name)
        if old == new:
            continue
        if old is None or new is None:
            changes.append(f"{name} {'now used' if old is None else 'no longer used'}")
        elif old.get("version") != new.get("version"):
            changes.append(f"{name} upgraded from {old.get('version')} to {new.get('version')}")
        elif old.get("source") != new.get("source"):
            changes.append(f"{name}'s source was edited")
        else:
            changes.append(f"{name} now comes from {new.get('distribution')}")
    return changes
