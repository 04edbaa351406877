"""SUMMER's components and recipes, registered through merc-bench's public plugin hook."""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_summer import hcmf, ikd, sdmoe
from merc_bench_summer.recipe import SUMMER, SUMMER_SMALL, SUMMER_WIDE


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(sdmoe, hcmf, ikd)
    for recipe in (SUMMER, SUMMER_WIDE, SUMMER_SMALL):
        registry.register("recipe", recipe.name, recipe, description=recipe.description, paper=recipe.paper)


@hookimpl
def merc_bench_ablation_grids():
    from merc_bench_summer.grids import GRIDS

    return GRIDS
