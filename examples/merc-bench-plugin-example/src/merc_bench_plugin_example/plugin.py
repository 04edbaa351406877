"""The hook implementations merc-bench calls: this module is the package's ``merc_bench`` entry point.

Names are registered bare (``lmf``); merc-bench stores them as ``merc-bench-plugin-example:lmf``
and finds them by ``lmf`` as long as no other installed distribution registers an ``lmf`` too.
"""

from __future__ import annotations

from merc_bench import Recipe, hookimpl

from merc_bench_plugin_example import lmf_fuser, tiny_dialogues

PAPER = "Liu et al., Efficient Low-rank Multimodal Fusion with Modality-Specific Factors, ACL 2018"

LMF = Recipe(
    name="lmf",
    description="LMF: a BiGRU per modality, then low-rank multimodal fusion (example plugin)",
    paper=PAPER,
    requires=("basic",),  # merc-bench's linear encoder, bigru mixer and no distiller
    encoder={"name": "linear"},
    mixer={"name": "bigru"},
    fuser={"name": "lmf", "config": {"rank": 4, "dropout": 0.1}},  # the short name, resolved at build time
    distiller={"name": "none"},
    model={"hidden_size": 64, "head_dropout": 0.1, "modality_heads": False},
    training={"lr": 1e-3, "weight_decay": 1e-5, "batch_size": 16, "epochs": 20},
)


@hookimpl
def merc_bench_register(registry) -> None:
    # Components are declared beside their classes (@merc_bench.component); recipes are values.
    registry.register_declared(lmf_fuser, tiny_dialogues)
    registry.register("recipe", "lmf", LMF, description=LMF.description, paper=PAPER)


_best: dict[tuple, float] = {}


@hookimpl
def merc_bench_after_epoch(epoch: int, metrics: dict[str, float], run: dict) -> dict[str, float] | None:
    """Log the best dev w-F1 reached so far in this run and seed (a lifecycle hook adding a metric)."""
    if "dev_weighted_f1" not in metrics:
        return None  # the paper protocol selects on test; nothing to add
    key = (run.get("recipe"), run.get("dataset"), run.get("seed"), run.get("protocol"))
    if epoch == 1:
        _best.pop(key, None)
    _best[key] = max(_best.get(key, 0.0), metrics["dev_weighted_f1"])
    return {"best_dev_weighted_f1_so_far": _best[key]}
