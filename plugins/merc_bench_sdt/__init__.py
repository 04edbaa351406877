"""SDT's components and recipe, registered through merc-bench's public plugin hook."""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_sdt import distiller, encoder, fuser, mixer
from merc_bench_sdt.recipe import SDT


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(encoder, mixer, fuser, distiller)
    registry.register("recipe", "sdt", SDT, description=SDT.description, paper=SDT.paper)
