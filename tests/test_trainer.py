"""The trainer: determinism, protocols, class weights, configuration precedence."""

import numpy as np
import pytest
import torch

from merc_bench.errors import TrainingDiverged, UserError
from merc_bench.plugins import get_registry
from merc_bench.pipeline import prepare
from merc_bench.trainer import Trainer, class_weight_tensor

TINY = ["dataset.train_dialogues=16", "dataset.dev_dialogues=6", "dataset.test_dialogues=6",
        "model.hidden_size=32", "training.epochs=3"]


def make_trainer(*overrides, recipe="bigru-concat", **flags):
    registry = get_registry()
    prepared = prepare(registry, recipe=recipe, dataset="synthetic", overrides=[*TINY, *overrides],
                       flags={"device": "cpu", **flags})
    return Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry)


def test_same_seed_same_numbers_on_cpu():
    first = make_trainer().fit(7)
    second = make_trainer().fit(7)
    assert first.history == second.history
    assert np.array_equal(first.test_predictions, second.test_predictions)
    other = make_trainer().fit(8)
    assert other.history != first.history


def test_clean_protocol_selects_on_dev_and_never_reads_test_during_training():
    trainer = make_trainer()
    seen = []
    original = trainer.evaluate

    def spy(model, split):
        seen.append(split)
        return original(model, split)

    trainer.evaluate = spy
    result = trainer.fit(0)
    assert seen == ["dev"] * 3 + ["dev", "test"]  # one dev pass per epoch, then dev and test once
    scores = [row["dev_weighted_f1"] for row in result.history]
    assert result.selected_epoch == scores.index(max(scores)) + 1
    assert all("test_weighted_f1" not in row for row in result.history)


def test_paper_protocol_trains_on_train_and_dev():
    trainer = make_trainer(protocol="paper")
    assert len(trainer.train_split) == 16 + 6
    assert trainer.select_split == "test"


def test_class_weights():
    trainer = make_trainer("training.class_weights=inverse_frequency")
    counts = trainer.corpus.class_counts("train")
    weights = class_weight_tensor(trainer.config, trainer.corpus, torch.device("cpu"))
    assert torch.allclose(weights, torch.tensor(counts.sum() / np.maximum(counts, 1), dtype=torch.float32))
    with pytest.raises(UserError, match="has 2 values, but dataset 'synthetic' has 7 classes"):
        make_trainer("training.class_weights=[1, 2]")


def test_precedence_recipe_then_set_then_flags():
    trainer = make_trainer("training.epochs=5", epochs=None)
    assert trainer.config.training.epochs == 5
    registry = get_registry()
    prepared = prepare(registry, recipe="bigru-concat", dataset="synthetic",
                       overrides=["training.epochs=5"], flags={"training.epochs": 2})
    assert prepared.config.training.epochs == 2


def test_bf16_on_a_cpu_without_native_bf16_is_refused_naming_the_flags(monkeypatch):
    monkeypatch.setattr("merc_bench.trainer._cpu_flags", lambda: {"avx2", "avx512f"})
    with pytest.raises(UserError, match="needs native bf16 instructions \\(the CPU flag avx512_bf16 or amx_bf16\\)"):
        make_trainer("training.precision=bf16")


def test_bf16_autocast_on_the_cpu_keeps_fp32_weights_and_losses(monkeypatch):
    monkeypatch.setattr("merc_bench.trainer._cpu_flags", lambda: {"avx512_bf16"})
    trainer = make_trainer("training.precision=bf16")
    model, distiller = trainer.build()
    batch = trainer._batches(trainer.train_split[:2], None)[0]
    total, terms, output = trainer.loss(model, distiller, batch)
    assert output.logits.dtype == torch.bfloat16  # the forward ran under autocast
    assert total.dtype == torch.float32 and all(t.dtype == torch.float32 for t in terms.values())
    result = trainer.fit(0)
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    assert np.isfinite(result.history[-1]["train_loss"]) and 0 <= result.test["weighted_f1"] <= 1


def test_standardized_features_use_train_statistics_only():
    trainer = make_trainer("training.standardize_features=true")
    train = np.concatenate([d.features["text"] for d in trainer.corpus.train])
    assert np.allclose(train.mean(axis=0), 0.0, atol=1e-4) and np.allclose(train.std(axis=0), 1.0, atol=1e-3)
    test = np.concatenate([d.features["text"] for d in trainer.corpus.test])
    assert not np.allclose(test.mean(axis=0), 0.0, atol=1e-4)  # dev/test are transformed, not re-fitted
    assert trainer.corpus.provenance["standardized"].startswith("per dimension")
    trained_on = np.concatenate([d.features["text"] for d in trainer.train_split])  # what the batches are made of
    assert np.array_equal(trained_on, train)  # the standardised features, not the raw ones
    result = trainer.fit(0)
    # Test is scored on the standardised test features the trainer holds, one prediction per utterance.
    test_labels = np.concatenate([d.labels for d in trainer.corpus.test])
    assert np.array_equal(result.test_labels, test_labels)
    from sklearn.metrics import f1_score

    expected = f1_score(test_labels, result.test_predictions, average="weighted", zero_division=0)
    assert result.test["weighted_f1"] == pytest.approx(expected)


def test_epoch_sums_are_utterance_weighted_means_of_the_steps():
    """The trainer keeps loss and metric sums on the device; the epoch row must still be the exact means."""
    trainer = make_trainer("training.epochs=1", "training.batch_size=4")
    original = trainer.loss
    steps = []

    def spy(model, distiller, batch):
        total, terms, output = original(model, distiller, batch)
        output.metrics["probe"] = torch.tensor(float(len(steps)))  # a plugin metric: 0, 1, 2, … per step
        steps.append((float(total.detach()), int(batch.mask.sum())))
        return total, terms, output

    trainer.loss = spy
    row = trainer.fit(0).history[0]
    assert len(steps) > 1
    expected = sum(loss * count for loss, count in steps) / sum(count for _, count in steps)
    assert row["train_loss"] == pytest.approx(expected, rel=1e-6)
    assert row["train_probe"] == pytest.approx((len(steps) - 1) / 2)  # mean over batches of 0..n-1


def test_non_finite_loss_stops_training_with_a_user_error_naming_epoch_step_and_seed(tmp_path):
    trainer = make_trainer("training.batch_size=4")
    original = trainer.loss
    calls = []

    def poisoned(model, distiller, batch):
        total, terms, output = original(model, distiller, batch)
        calls.append(1)
        return (total * float("nan") if len(calls) == 2 else total), terms, output

    trainer.loss = poisoned
    with pytest.raises(TrainingDiverged, match="seed 3, epoch 1, step 2 of 4: the training loss became non-finite"):
        trainer.fit(3, checkpoint_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # a diverged seed writes no checkpoint


def test_non_finite_gradients_stop_training_even_when_the_loss_is_finite():
    trainer = make_trainer("training.batch_size=4", "training.epochs=2")
    original = trainer.loss
    calls = []

    def poisoned(model, distiller, batch):
        total, terms, output = original(model, distiller, batch)
        calls.append(1)
        if len(calls) == 7:  # epoch 2, step 3: a finite loss whose gradient is NaN
            total = total + _nan_gradient(next(model.parameters()))
        return total, terms, output

    trainer.loss = poisoned
    with pytest.raises(TrainingDiverged, match="epoch 2, step 3 of 4: the gradients became non-finite"):
        trainer.fit(0)


def _nan_gradient(parameter):
    """A term whose value is 0 but whose gradient with respect to ``parameter`` is NaN."""

    class NanGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.shape = x.shape
            return x.sum() * 0

        @staticmethod
        def backward(ctx, grad):
            return torch.full(ctx.shape, float("nan"))

    return NanGrad.apply(parameter)


def test_weights_overflowing_in_the_update_stop_training_before_evaluation():
    """A finite loss and finite gradients, but a step so large the weights overflow float32."""
    trainer = make_trainer("training.batch_size=4")
    # Bypass the config's bounds (a learning rate this large is refused there): the trainer must
    # still catch it if it happens.
    trainer.config = trainer.config.model_copy(
        update={"training": trainer.config.training.model_copy(update={"lr": 1e39})})
    evaluated = []
    trainer.evaluate = lambda *a, **k: evaluated.append(a) or pytest.fail("evaluated diverged weights")
    with pytest.raises(TrainingDiverged, match="step 1 of 4: the weights after the optimiser step became"):
        trainer.fit(0)
    assert not evaluated


@pytest.mark.slow
def test_compiled_training_matches_eager():
    """training.compile=true trains through torch.compile (inductor) and must learn the same numbers.

    Dropout off: compiled kernels draw their random numbers differently from eager ones.
    """
    settings = ["training.epochs=1", "training.batch_size=8", "model.hidden_size=16", "mixer.dropout=0",
                "fuser.dropout=0", "model.head_dropout=0"]
    eager = make_trainer(*settings, recipe="sdt", modalities=["text", "audio"]).fit(0)
    compiled = make_trainer(*settings, "training.compile=true", recipe="sdt", modalities=["text", "audio"]).fit(0)
    assert compiled.history[0]["train_loss"] == pytest.approx(eager.history[0]["train_loss"], rel=1e-4)
    assert compiled.history[0]["dev_weighted_f1"] == pytest.approx(eager.history[0]["dev_weighted_f1"], abs=1e-6)


def test_class_weights_of_the_wrong_length_are_refused_by_validate(capsys):
    from merc_bench.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["validate", "bigru-concat", "--set", "training.class_weights=[1, 2]"])
    assert stop.value.code == 2
    assert "class_weights has 2 values, but dataset 'synthetic' has 7 classes" in " ".join(capsys.readouterr().err.split())
