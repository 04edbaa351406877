"""CORECT's encoder, fuser and recipe, registered through merc-bench's public plugin hook."""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_corect import encoder, fuser
from merc_bench_corect.recipe import CORECT


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(encoder, fuser)
    registry.register("recipe", CORECT.name, CORECT, description=CORECT.description, paper=CORECT.paper)
