"""GraphSmile's encoder, GSF fuser, SDP distiller and recipe, registered through merc-bench's public
plugin hook."""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_graphsmile import encoder, fuser, sentiment_dynamics
from merc_bench_graphsmile.recipe import GRAPHSMILE


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(encoder, fuser, sentiment_dynamics)
    registry.register("recipe", GRAPHSMILE.name, GRAPHSMILE, description=GRAPHSMILE.description,
                      paper=GRAPHSMILE.paper)
