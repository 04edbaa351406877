"""MultiEMO's components and recipe, registered through merc-bench's public plugin hook.

* fuser ``multiattn``: bidirectional multi-head cross-attention branches, concatenated, one linear layer;
* distiller ``multiemo-losses``: CE + SWFC + Soft-HGR (replaces the plain task loss);
* recipe ``multiemo`` (uses the ``dialoguernn`` mixer of the ``dialoguernn`` plugin: ``requires``).
"""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_multiemo import fuser, losses
from merc_bench_multiemo.recipe import MULTIEMO


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(fuser, losses)
    registry.register("recipe", MULTIEMO.name, MULTIEMO, description=MULTIEMO.description, paper=MULTIEMO.paper)
