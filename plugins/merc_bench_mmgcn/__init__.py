"""MMGCN's fuser, focal-loss distiller and recipe, registered through merc-bench's public plugin hook."""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_mmgcn import focal_loss, fuser
from merc_bench_mmgcn.recipe import MMGCN, PAPER


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register("fuser", "mmgcn", fuser.MMGCNFuser, config=fuser.MMGCNConfig,
                      search_space=fuser.search_space, paper=PAPER)
    registry.register("distiller", "focal-loss", focal_loss.FocalLoss, config=focal_loss.FocalLossConfig,
                      search_space=focal_loss.search_space,
                      paper="Lin et al., Focal Loss for Dense Object Detection, ICCV 2017 (used by MMGCN on MELD)")
    registry.register("recipe", MMGCN.name, MMGCN, description=MMGCN.description, paper=MMGCN.paper)
