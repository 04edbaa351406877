"""M3Net's fuser and recipe, registered through merc-bench's public plugin hook."""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_m3net import fuser
from merc_bench_m3net.recipe import M3NET


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(fuser)
    registry.register("recipe", M3NET.name, M3NET, description=M3NET.description, paper=M3NET.paper)
