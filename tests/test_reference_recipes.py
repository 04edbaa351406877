"""The early- and late-fusion reference recipes: what each predicts from, where gradients go, and
that both train end to end."""

import pytest
import torch

from merc_bench.config import RunConfig
from merc_bench.data import DatasetInfo
from merc_bench.losses import masked_cross_entropy
from merc_bench.model import build_model, count_parameters
from merc_bench.plugins import get_registry
from merc_bench.pipeline import prepare
from merc_bench.testing import SMALL_CONTEXT, make_batch
from merc_bench.trainer import Trainer

MODALITIES = ("text", "audio", "visual")
SMALL = DatasetInfo("small", "meld", tuple("abcd"), dict(SMALL_CONTEXT["feature_dims"]), 3)
IEMOCAP = DatasetInfo("iemocap-dims", "iemocap", tuple("abcdef"), {"text": 1024, "audio": 1582, "visual": 342}, 2)


def recipe_config(name: str, family: str = "meld", hidden_size: int | None = 16, **changes) -> RunConfig:
    values = get_registry().get("recipe", name).obj.resolve(family)
    values["dataset"] = {"name": "synthetic"}
    if hidden_size is not None:
        values["model"]["hidden_size"] = hidden_size
    values.update(changes)
    return RunConfig.model_validate(values)


def build(name: str, **changes):
    torch.manual_seed(0)
    model, distiller = build_model(recipe_config(name, **changes), SMALL, get_registry())
    return model, distiller


def test_recipe_settings():
    early, late = recipe_config("early-fusion", hidden_size=None), recipe_config("late-fusion", hidden_size=None)
    for config in (early, late):
        assert config.model.hidden_size == 256
        assert (config.training.lr, config.training.weight_decay) == (1e-3, 1e-5)
        assert (config.training.batch_size, config.training.epochs) == (16, 30)
    assert (early.encoder.name, early.mixer.name, early.fuser.name, early.distiller.name) == (
        "linear", "identity", "concat-bigru", "none")
    assert (early.model.prediction, early.model.modality_heads) == ("fused", False)
    assert (late.encoder.name, late.mixer.name, late.fuser.name, late.distiller.name) == (
        "linear", "bigru", "mean", "per-modality-ce")
    assert (late.model.prediction, late.model.modality_heads, late.model.head_dropout) == (
        "modality_average", True, 0.1)


@pytest.mark.parametrize(
    "name, total", [("early-fusion", 1_250_310), ("late-fusion", 1_649_426)], ids=["early", "late"]
)
def test_parameter_counts_at_paper_sizes(name, total):
    model, distiller = build_model(recipe_config(name, "iemocap", hidden_size=None), IEMOCAP, get_registry())
    assert count_parameters(model, distiller) == (total, total)


def test_late_fusion_predicts_the_log_of_the_mean_head_probability():
    model, _ = build("late-fusion")
    model.eval()
    assert model.head is None  # nothing is trained on the fused representation
    batch = make_batch()
    output = model(batch)
    probabilities = torch.stack([output.modality_logits[m].softmax(-1) for m in MODALITIES]).mean(0)  # (B, L, C)
    assert torch.allclose(output.logits, probabilities.log(), atol=1e-6)
    assert torch.allclose(output.logits.exp().sum(-1), torch.ones(batch.mask.shape), atol=1e-6)
    assert torch.equal(output.logits.argmax(-1), probabilities.argmax(-1))


def test_per_modality_ce_terms_are_each_heads_own_cross_entropy():
    model, distiller = build("late-fusion")
    assert distiller.replaces_task_loss
    batch = make_batch()
    output = model(batch)
    weights = torch.tensor([1.0, 2.0, 0.5, 1.5])
    terms = distiller(output=output, batch=batch, class_weights=weights)
    assert set(terms) == {f"ce.{m}" for m in MODALITIES}
    for m in MODALITIES:
        expected = masked_cross_entropy(output.modality_logits[m], batch.labels, batch.mask, weights)
        assert torch.equal(terms[f"ce.{m}"], expected)


def test_per_modality_ce_gradient_reaches_each_modality_only_through_its_own_term():
    model, distiller = build("late-fusion")
    batch = make_batch()
    for modality in MODALITIES:
        model.zero_grad(set_to_none=True)
        terms = distiller(output=model(batch), batch=batch, class_weights=None)
        terms[f"ce.{modality}"].backward()
        for name, parameter in model.named_parameters():
            own = f".{modality}." in f".{name}"  # encoder.projections.<m>, mixers.<m>, modality_heads.<m>
            reached = parameter.grad is not None and bool(parameter.grad.abs().sum() > 0)
            assert reached == own, f"ce.{modality}: gradient {'missing in' if own else 'leaks into'} {name}"


def test_per_modality_ce_needs_modality_heads():
    _, distiller = build("late-fusion")
    model, _ = build("early-fusion")
    with pytest.raises(ValueError, match="modality_heads"):
        distiller(output=model(make_batch()), batch=make_batch(), class_weights=None)


def test_early_fusion_output_at_each_step_depends_on_every_modality():
    model, _ = build("early-fusion")
    model.eval()
    batch = make_batch(lengths=(5, 3, 1))
    step = 2
    reference = model(batch).logits  # (B, L, C)
    for modality in MODALITIES:
        for changed_step in (step, 0, 4):  # the utterance itself, its past and its future (BiGRU)
            features = dict(batch.features)
            features[modality] = features[modality].clone()
            features[modality][0, changed_step] += 1.0
            perturbed = type(batch)(features=features, speakers=batch.speakers, labels=batch.labels,
                                    mask=batch.mask, ids=batch.ids)
            changed = model(perturbed).logits
            assert not torch.allclose(changed[0, step], reference[0, step]), (
                f"step {step} ignores {modality} at step {changed_step}")
            assert torch.equal(changed[1:], reference[1:])  # other dialogues are untouched


@pytest.mark.parametrize("name", ["early-fusion", "late-fusion"])
@pytest.mark.parametrize("modalities", [["audio"], ["text", "visual"]])
def test_any_modality_subset(name, modalities):
    model, distiller = build(name, modalities=modalities)
    batch = make_batch()
    output = model(batch)
    assert output.logits.shape == (*batch.mask.shape, 4)
    assert torch.isfinite(output.logits[batch.mask]).all()
    terms = distiller(output=output, batch=batch, class_weights=None)
    assert set(terms) == ({f"ce.{m}" for m in modalities} if name == "late-fusion" else set())


TINY = ["dataset.train_dialogues=6", "dataset.dev_dialogues=3", "dataset.test_dialogues=3",
        "model.hidden_size=16", "training.epochs=1", "training.save_checkpoint=false"]


@pytest.mark.parametrize("name", ["early-fusion", "late-fusion"])
def test_recipe_trains_one_epoch_end_to_end(name):
    registry = get_registry()
    prepared = prepare(registry, recipe=name, dataset="synthetic", overrides=TINY, flags={"device": "cpu"})
    trainer = Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry)
    model, distiller = trainer.build()
    batch = trainer._batches(prepared.corpus.train, None)[0]
    _, terms, _ = trainer.loss(model, distiller, batch)
    assert set(terms) == ({"task"} if name == "early-fusion" else {"ce.text", "ce.audio", "ce.visual"})
    result = trainer.fit(0)
    assert len(result.history) == 1
    assert 0.0 <= result.test["weighted_f1"] <= 1.0
