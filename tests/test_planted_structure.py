"""With fixed seeds, the synthetic dataset separates models the way real MERC data should:
a context model beats the same model without context, and all three modalities beat the best
single modality. Trained with the cheap ``bigru-concat`` recipe (hidden 256)."""

import pytest

from merc_bench.plugins import get_registry
from merc_bench.pipeline import prepare
from merc_bench.trainer import Trainer

# The shared fixture trains five models (~26 s on a loaded 2-core machine).
pytestmark = pytest.mark.slow

SIZE = ["dataset.train_dialogues=150", "dataset.dev_dialogues=40", "dataset.test_dialogues=80", "training.epochs=12"]


def trained_weighted_f1(overrides=(), modalities=None) -> float:
    registry = get_registry()
    prepared = prepare(registry, recipe="bigru-concat", dataset="synthetic", overrides=[*SIZE, *overrides],
                       flags={"modalities": modalities, "device": "cpu"})
    trainer = Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry)
    return trainer.fit(0).test["weighted_f1"]




@pytest.fixture(scope="module")
def scores():
    return {
        "all": trained_weighted_f1(),
        "no_context": trained_weighted_f1(["mixer=identity"]),
        **{m: trained_weighted_f1(modalities=[m]) for m in ("text", "audio", "visual")},
    }


def test_context_model_beats_the_same_model_without_context(scores):
    print(scores)
    assert scores["all"] >= scores["no_context"] + 0.03


def test_three_modalities_beat_the_best_single_modality(scores):
    best_single = max(scores["text"], scores["audio"], scores["visual"])
    assert best_single == scores["text"]  # text is planted as the most informative
    assert scores["all"] >= best_single + 0.05
