"""DialogueGCN's fuser and recipe, registered through merc-bench's public plugin hook."""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_dialoguegcn import fuser
from merc_bench_dialoguegcn.recipe import DIALOGUEGCN


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(fuser)
    registry.register("recipe", DIALOGUEGCN.name, DIALOGUEGCN, description=DIALOGUEGCN.description,
                      paper=DIALOGUEGCN.paper)
