"""MMGCN's fuser, focal-loss distiller and recipe, registered through merc-bench's public plugin hook."""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_mmgcn import focal_loss, fuser
from merc_bench_mmgcn.recipe import MMGCN


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(fuser, focal_loss)
    registry.register("recipe", MMGCN.name, MMGCN, description=MMGCN.description, paper=MMGCN.paper)
