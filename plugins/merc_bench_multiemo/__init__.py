"""MultiEMO's components and recipe, registered through merc-bench's public plugin hook.

* fuser ``multiattn``: bidirectional multi-head cross-attention branches, concatenated, one linear layer;
* distiller ``multiemo-losses``: CE + SWFC + Soft-HGR (replaces the plain task loss);
* recipe ``multiemo`` (uses the ``dialoguernn`` mixer from merc_bench_dialoguernn).
"""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_multiemo import fuser, losses
from merc_bench_multiemo.recipe import MULTIEMO, PAPER


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register(
        "fuser",
        "multiattn",
        fuser.MultiAttnFuser,
        config=fuser.MultiAttnConfig,
        search_space=fuser.search_space,
        description="MultiAttn: per-modality stacks of cross-attention to the other modalities, then concat + linear",
        paper=PAPER,
    )
    registry.register(
        "distiller",
        "multiemo-losses",
        losses.MultiEMOLosses,
        config=losses.MultiEMOLossesConfig,
        search_space=losses.search_space,
        description="MultiEMO's objective: weighted CE + SWFC (fused) + Soft-HGR (modality pairs)",
        paper=PAPER,
    )
    registry.register("recipe", MULTIEMO.name, MULTIEMO, description=MULTIEMO.description, paper=PAPER)
