"""Golden outputs: every recipe's logits, loss terms, gradient norm and two-epoch training curve, pinned.

The values were computed by ``tests/golden/compute.py`` and stored in ``tests/golden/recipes.json``;
a change to the orchestration (how configurations are resolved, how the trainer and teachers run)
or to a component's code layout must leave them equal. Tolerances are float32 rounding, far below
any change a real edit makes (a different initialisation order moves logits by ~0.1).
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))

import compute  # noqa: E402

STORED = json.loads((GOLDEN / "recipes.json").read_text())


def test_every_registered_recipe_has_golden_values():
    assert sorted(STORED) == compute.recipes()


@pytest.mark.parametrize("family", compute.FAMILIES)
@pytest.mark.parametrize("recipe", sorted(STORED))
def test_forward_outputs_unchanged(recipe, family):
    stored, now = STORED[recipe]["forward"][family], compute.forward(recipe, family)
    np.testing.assert_allclose(now["logits"], stored["logits"], rtol=1e-5, atol=1e-5)
    assert set(now["terms"]) == set(stored["terms"])
    for name, value in stored["terms"].items():
        assert now["terms"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert now["gradient_norm"] == pytest.approx(stored["gradient_norm"], rel=1e-4)


@pytest.mark.parametrize("recipe", sorted(STORED))
def test_training_curve_unchanged(recipe):
    stored, now = STORED[recipe]["training"], compute.training(recipe)
    assert len(now["history"]) == len(stored["history"])
    for epoch, (row, expected) in enumerate(zip(now["history"], stored["history"]), start=1):
        assert row["train_loss"] == pytest.approx(expected["train_loss"], rel=1e-4), f"epoch {epoch}"
        for key in ("dev_accuracy", "dev_weighted_f1", "dev_macro_f1"):
            assert row[key] == pytest.approx(expected[key], abs=1e-6), f"epoch {epoch} {key}"
    assert now["selected_epoch"] == stored["selected_epoch"]
    assert now["test"] == pytest.approx(stored["test"], abs=1e-6)
