"""MultiEMO: SWFC and Soft-HGR against their definitions and in the directions they should move,
masked utterances, the MultiAttn fuser on modality subsets, and the recipe end to end."""

import json

import pytest
import torch
import torch.nn.functional as F

from merc_bench.cli import main
from merc_bench.model import ModelOutput
from merc_bench.plugins import get_registry
from merc_bench.pipeline import prepare
from merc_bench.testing import make_batch
from merc_bench.trainer import Trainer
from merc_bench_multiemo.fuser import MultiAttnConfig, MultiAttnFuser
from merc_bench_multiemo.losses import (
    MultiEMOLosses,
    MultiEMOLossesConfig,
    sample_weighted_focal_contrastive,
    soft_hgr,
    soft_hgr_as_in_multiemo_code,
    swfc_class_weights,
)


def swfc_by_the_definition(features, labels, class_weights, temperature, focusing):
    """One anchor at a time, as the formula reads (and as the authors' loop computes it)."""
    z = F.normalize(features, dim=-1)
    total = 0.0
    for i in range(len(z)):
        others = [j for j in range(len(z)) if j != i]
        probabilities = torch.softmax(torch.stack([z[i] @ z[j] for j in others]) / temperature, dim=0)
        positives = [k for k, j in enumerate(others) if labels[j] == labels[i]]
        if positives:
            p = probabilities[positives]
            total = total + class_weights[labels[i]] * ((1 - p) ** focusing * p.log()).mean()
    return -total / len(z)


def test_swfc_matches_the_per_anchor_definition():
    torch.manual_seed(0)
    features, labels = torch.randn(9, 5), torch.tensor([0, 1, 0, 2, 1, 0, 3, 2, 0])  # class 3 has no positive
    weights = swfc_class_weights(torch.tensor([2.0, 4.0, 8.0, 1.5]), 4, 1.1, "cpu")
    expected = swfc_by_the_definition(features, labels, weights, 0.8, 2.4)
    actual = sample_weighted_focal_contrastive(features, labels, weights, 0.8, 2.4)
    assert actual.item() == pytest.approx(expected.item(), rel=1e-5)


def test_swfc_gradient_is_finite_and_degenerate_batches_give_zero():
    features = torch.randn(6, 4, requires_grad=True)
    weights = torch.full((3,), 1 / 3)
    sample_weighted_focal_contrastive(features, torch.tensor([0, 0, 1, 1, 2, 2]), weights, 0.5, 2.0).backward()
    assert torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0
    one = torch.randn(1, 4, requires_grad=True)
    assert sample_weighted_focal_contrastive(one, torch.tensor([0]), weights, 0.5, 2.0).item() == 0.0


def test_swfc_is_lower_when_same_class_representations_cluster():
    torch.manual_seed(0)
    labels = torch.arange(4).repeat_interleave(8)  # 4 classes × 8 utterances
    centres = torch.randn(4, 16) * 3
    clustered = centres[labels] + 0.1 * torch.randn(32, 16)
    scattered = torch.randn(32, 16)
    weights = torch.full((4,), 0.25)
    assert sample_weighted_focal_contrastive(clustered, labels, weights, 0.8, 2.4) < (
        sample_weighted_focal_contrastive(scattered, labels, weights, 0.8, 2.4)
    )


def test_swfc_class_weights_are_normalised_inverse_frequency_powers():
    counts = torch.tensor([100.0, 50.0, 10.0])
    inverse = counts.sum() / counts  # what training.class_weights = inverse_frequency gives
    weights = swfc_class_weights(inverse, 3, 1.2, "cpu")
    expected = (counts.sum() / counts) ** 1.2
    assert torch.allclose(weights, expected / expected.sum())
    assert torch.allclose(swfc_class_weights(None, 4, 1.2, "cpu"), torch.full((4,), 0.25))


def test_soft_hgr_matches_wang_et_al_and_prefers_correlated_features():
    torch.manual_seed(0)
    f, g = torch.randn(50, 6), torch.randn(50, 6)
    fc, gc = f - f.mean(0), g - g.mean(0)
    expected = (fc * gc).sum(-1).mean() * 50 / 49 - 0.5 * torch.trace(torch.cov(f.T) @ torch.cov(g.T))
    assert soft_hgr(f, g).item() == pytest.approx(expected.item(), rel=1e-5)
    shared, independent = torch.randn(200, 32), torch.randn(200, 32)
    # The losses are −soft-HGR: perfectly correlated modalities score better (lower) than independent ones.
    assert -soft_hgr(shared, shared) < -soft_hgr(shared, independent)
    assert -soft_hgr_as_in_multiemo_code(shared, shared) < -soft_hgr_as_in_multiemo_code(shared, independent)
    # ... but the code's N × N covariance penalises identical features once N exceeds about 2·D².
    many = torch.randn(500, 6)
    assert -soft_hgr_as_in_multiemo_code(many, many) > -soft_hgr_as_in_multiemo_code(many, torch.randn(500, 6))


def test_soft_hgr_code_variant_reproduces_the_authors_formula():
    torch.manual_seed(0)
    f, g = torch.randn(7, 5), torch.randn(7, 5)
    expected = torch.mean(torch.sum(f * g, dim=-1)) - torch.trace(torch.cov(f) @ torch.cov(g)) / 7 / 2
    assert soft_hgr_as_in_multiemo_code(f, g).item() == pytest.approx(expected.item(), rel=1e-5)


def output_for(batch, seed=0, modalities=("text", "audio", "visual"), padding_noise=0.0):
    generator = torch.Generator().manual_seed(seed)
    shape = (*batch.mask.shape,)
    pad = (~batch.mask)[..., None].float() * padding_noise
    hidden = {m: torch.randn(*shape, 8, generator=generator) + pad for m in modalities}
    return ModelOutput(
        logits=torch.randn(*shape, 4, generator=generator) + pad,
        modality_logits={},
        hidden=torch.randn(*shape, 8, generator=generator) - pad,
        modality_hidden=hidden,
    )


@pytest.mark.parametrize("variant", ["wang2019", "multiemo_code"])
def test_masked_utterances_do_not_change_any_term(variant):
    batch = make_batch(lengths=(5, 3, 2))
    losses = MultiEMOLosses(MultiEMOLossesConfig(soft_hgr_variant=variant))
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0])
    clean = losses(output=output_for(batch), batch=batch, class_weights=weights)
    noisy = losses(output=output_for(batch, padding_noise=100.0), batch=batch, class_weights=weights)
    assert set(clean) == {"task", "swfc", "soft_hgr"}
    for name in clean:
        assert torch.allclose(clean[name], noisy[name], atol=1e-5), name


def test_terms_are_weighted_and_the_cross_entropy_is_unweighted_by_default():
    batch = make_batch(lengths=(5, 3, 2))
    output = output_for(batch)
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0])
    unit = MultiEMOLosses(MultiEMOLossesConfig(ce_weight=1.0, swfc_weight=1.0, soft_hgr_weight=1.0))
    scaled = MultiEMOLosses(MultiEMOLossesConfig(ce_weight=0.2, swfc_weight=0.4, soft_hgr_weight=0.3))
    a = unit(output=output, batch=batch, class_weights=weights)
    b = scaled(output=output, batch=batch, class_weights=weights)
    for name, weight in (("task", 0.2), ("swfc", 0.4), ("soft_hgr", 0.3)):
        assert b[name].item() == pytest.approx(weight * a[name].item(), rel=1e-5)
    plain = F.cross_entropy(output.logits[batch.mask], batch.labels[batch.mask])
    assert a["task"].item() == pytest.approx(plain.item(), rel=1e-6)
    weighted_losses = MultiEMOLosses(MultiEMOLossesConfig(ce_weight=1.0, weighted_cross_entropy=True))
    weighted = weighted_losses(output=output, batch=batch, class_weights=weights)
    assert weighted["task"].item() != pytest.approx(plain.item(), rel=1e-6)
    assert MultiEMOLosses.replaces_task_loss
    single = MultiEMOLosses(MultiEMOLossesConfig())(output=output_for(batch, modalities=("text",)), batch=batch,
                                                    class_weights=None)
    assert single["soft_hgr"].item() == 0.0  # no pair of modalities


@pytest.mark.parametrize(
    "modalities,cross", [(("text",), 0), (("text", "visual"), 1), (("text", "audio", "visual"), 2)]
)
def test_multiattn_cross_attention_sublayers_follow_the_modality_count(modalities, cross):
    torch.manual_seed(0)
    fuser = MultiAttnFuser(MultiAttnConfig(heads=2, layers=2), modalities=modalities, hidden_size=8).eval()
    assert all(len(layer.attentions) == cross for layers in fuser.branches.values() for layer in layers)
    if len(modalities) == 3:
        assert fuser.partners == {"text": ["audio", "visual"], "audio": ["text", "visual"], "visual": ["text", "audio"]}
    batch = make_batch(lengths=(4, 2))
    mixed = {m: torch.randn(2, 4, 8) for m in modalities}
    out = fuser(mixed=mixed, encoded=mixed, mask=batch.mask)
    assert out.fused.shape == (2, 4, 8) and set(out.per_modality) == set(modalities)
    if cross:  # a branch's output depends on its partners
        changed = dict(mixed, **{modalities[-1]: torch.randn(2, 4, 8)})
        again = fuser(mixed=changed, encoded=changed, mask=batch.mask)
        assert not torch.allclose(out.per_modality[modalities[0]], again.per_modality[modalities[0]])


def test_recipe_settings_per_family():
    registry = get_registry()
    meld = prepare(registry, recipe="multiemo", dataset="synthetic", flags={"device": "cpu"}).config
    iemocap = prepare(registry, recipe="multiemo", dataset="synthetic", overrides=["dataset.shape=iemocap"],
                      flags={"device": "cpu"}).config
    assert meld.fuser.config["layers"] == 2 and iemocap.fuser.config["layers"] == 6
    assert meld.mixer.config["bidirectional"] is False and iemocap.mixer.config["bidirectional"] is True
    assert meld.distiller.config["temperature"] == 1.4 and iemocap.distiller.config["focusing"] == 2.4
    assert meld.training.batch_size == 100 and iemocap.training.batch_size == 64
    assert meld.model.hidden_size == iemocap.model.hidden_size == 256


TINY = ["dataset.train_dialogues=6", "dataset.dev_dialogues=3", "dataset.test_dialogues=3", "model.hidden_size=16",
        "fuser.layers=1"]


@pytest.mark.parametrize("shape", ["meld", "iemocap"])
def test_recipe_trains_one_epoch_with_its_three_terms(shape):
    registry = get_registry()
    prepared = prepare(registry, recipe="multiemo", dataset="synthetic",
                       overrides=TINY + [f"dataset.shape={shape}", "training.epochs=1"], flags={"device": "cpu"})
    trainer = Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry)
    result = trainer.fit(0)
    assert len(result.history) == 1 and 0.0 <= result.test["weighted_f1"] <= 1.0
    model, distiller = trainer.build()
    _, terms, _ = trainer.loss(model, distiller, trainer._batches(prepared.corpus.train, None)[0])
    assert set(terms) == {"task", "swfc", "soft_hgr"}  # the distiller's CE replaces the trainer's


def test_cli_runs_the_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overrides = [arg for item in TINY for arg in ("--set", item)]
    with pytest.raises(SystemExit) as stop:
        main(["run", "multiemo", "--epochs", "1", "--no-track", "--out", str(tmp_path / "out"), *overrides])
    assert stop.value.code == 0
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["recipe"] == "multiemo" and 0.0 <= result["test"]["weighted_f1"]["mean"] <= 1.0
