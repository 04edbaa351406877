"""The numbers the golden-output test pins, computed the one way both the test and the generator use.

Two levels, for every registered recipe:

* **forward** — for each dataset family (``meld``, ``iemocap``, whose recipe defaults differ): the
  recipe at hidden size 16 on :data:`~merc_bench.testing.SMALL_CONTEXT`-sized data, built after
  ``torch.manual_seed(0)``; eval-mode logits on :func:`~merc_bench.testing.make_batch`, the loss
  terms in train mode (dropout seeded with 1) and the 2-norm of the gradient of their sum. A
  distiller that learns from a teacher gets :func:`~merc_bench.testing.small_teacher`.
* **training** — two epochs of the whole pipeline on a tiny synthetic corpus (one seed, teachers
  trained as in a real run): every epoch's training loss and dev scores, and the test scores.

Both run with one CPU thread (reductions then add in one order). A refactor that changes none of
the model's arithmetic, its parameters' creation order or the training loop leaves every number
equal; ``python tests/golden/make_golden.py`` writes them again after a change that is *meant* to
change numbers (say so in the commit).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch

FAMILIES = ("meld", "iemocap")
TINY = ["dataset.train_dialogues=6", "dataset.dev_dialogues=3", "dataset.test_dialogues=3",
        "model.hidden_size=16", "training.epochs=2", "training.save_checkpoint=false", "seeds=1"]


@contextlib.contextmanager
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def recipes() -> list[str]:
    """The recipes merc-bench ships (built-ins): a third-party plugin installed beside it has no golden values."""
    from merc_bench.plugins import get_registry

    return sorted(e.name for e in get_registry().entries("recipe") if not e.namespace)


def forward(recipe: str, family: str) -> dict[str, Any]:
    from merc_bench.config import RunConfig
    from merc_bench.data import DatasetInfo
    from merc_bench.losses import masked_cross_entropy
    from merc_bench.model import build_model
    from merc_bench.plugins import get_registry
    from merc_bench.testing import SMALL_CONTEXT, make_batch, small_teacher

    registry = get_registry()
    values = registry.get("recipe", recipe).obj.resolve(family)
    values["dataset"] = {"name": "synthetic"}
    values["model"]["hidden_size"] = 16
    values["training"]["class_weights"] = "none"  # the family's weights have the real class count
    config = RunConfig.model_validate(values)
    info = DatasetInfo("small", family, tuple("abcd"), dict(SMALL_CONTEXT["feature_dims"]), 3)
    with one_thread():
        torch.manual_seed(0)
        model, distiller = build_model(config, info, registry)
        if callable(getattr(distiller, "attach_teacher", None)):
            distiller.attach_teacher(small_teacher(), SMALL_CONTEXT["hidden_size"])
        batch = make_batch()
        model.eval()
        distiller.eval()
        with torch.no_grad():
            logits = model(batch).logits[batch.mask]  # (N, C)
        model.train()
        distiller.train()
        torch.manual_seed(1)
        output = model(batch)
        terms = {}
        if not getattr(distiller, "replaces_task_loss", False):
            terms["task"] = masked_cross_entropy(output.logits, batch.labels, batch.mask, None)
        terms.update(distiller(output=output, batch=batch, class_weights=None))
        terms.update(output.aux_losses)
        total = sum(terms.values())
        total.backward()
        gradients = [p.grad for p in list(model.parameters()) + list(distiller.parameters()) if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in gradients]))
    return {"logits": logits.tolist(), "terms": {k: float(v.detach()) for k, v in terms.items()},
            "gradient_norm": float(norm)}


def training(recipe: str) -> dict[str, Any]:
    from merc_bench.plugins import get_registry
    from merc_bench.pipeline import prepare, train_seed
    from merc_bench.trainer import Trainer

    registry = get_registry()
    with one_thread():
        prepared = prepare(registry, recipe=recipe, dataset="synthetic", overrides=TINY, flags={"device": "cpu"})
        result = train_seed(Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry), 0)
    keys = ("train_loss", "dev_accuracy", "dev_weighted_f1", "dev_macro_f1")
    return {"history": [{k: row[k] for k in keys} for row in result.history],
            "selected_epoch": result.selected_epoch,
            "test": {k: result.test[k] for k in ("accuracy", "weighted_f1", "macro_f1")}}


def everything() -> dict[str, Any]:
    assert os.environ.get("MERC_BENCH_CACHE"), "set MERC_BENCH_CACHE to an empty folder: teachers must train"
    return {recipe: {"forward": {family: forward(recipe, family) for family in FAMILIES},
                     "training": training(recipe)} for recipe in recipes()}
