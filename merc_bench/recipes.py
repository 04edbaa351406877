"""Recipes: named compositions of registered components plus training defaults per dataset family.

A recipe is data, not code: it names an encoder, a mixer, a fuser and a distiller with their
options, the model-wide sizes and the training settings, and then, per dataset family (``meld``,
``iemocap``), the values its paper published for that family. :meth:`Recipe.resolve` merges them
into the dict a :class:`~merc_bench.config.RunConfig` is built from; ``--set`` applies after it.

A recipe that uses another plugin's components names that plugin in ``requires`` (entry-point
names, the keys of ``[project.entry-points.merc_bench]``): the SUMMER recipes use SDT's encoder, so
``requires=("sdt",)``. Plugins do not import each other; when a required plugin is missing, blocked
or broken, looking the recipe up says which (see :meth:`merc_bench.registry.Registry.get`), instead
of failing later on a component name nobody registered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from merc_bench.config import deep_merge

__all__ = ["Recipe"]


@dataclass(frozen=True)
class Recipe:
    """A named composition. Component slots are ``{"name": ..., "config": {...}}`` dicts."""

    name: str
    description: str
    encoder: dict[str, Any]
    mixer: dict[str, Any]
    fuser: dict[str, Any]
    distiller: dict[str, Any]
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    family_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    paper: str = ""
    #: Plugins (entry-point names) whose components this recipe uses besides its own plugin's.
    requires: tuple[str, ...] = ()

    def resolve(self, family: str) -> dict[str, Any]:
        """The run-config dict (without dataset) for a dataset family."""
        base = {
            "recipe": self.name,
            "encoder": _choice(self.encoder),
            "mixer": _choice(self.mixer),
            "fuser": _choice(self.fuser),
            "distiller": _choice(self.distiller),
            "model": dict(self.model),
            "training": dict(self.training),
        }
        return deep_merge(base, self.family_defaults.get(family, {}))


def _choice(slot: dict[str, Any]) -> dict[str, Any]:
    return {"name": slot["name"], "config": dict(slot.get("config", {}))}
