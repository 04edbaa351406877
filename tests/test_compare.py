"""`merc-bench compare`, the paired significance tests and the seed cache it resumes from."""

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from merc_bench.cli import main
from merc_bench.pipeline import prepare
from merc_bench.plugins import get_registry
from merc_bench.code_fingerprint import code_parts
from merc_bench.seed_cache import seed_key
from merc_bench.significance import metric_from_confusion, paired_bootstrap, wilcoxon_over_seeds

TINY = ["--set", "dataset.train_dialogues=8", "--set", "dataset.dev_dialogues=3", "--set", "dataset.test_dialogues=6",
        "--set", "model.hidden_size=16"]


def _test_set(seed=0, dialogues=60, classes=4):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 12, dialogues)
    dialogue = np.repeat(np.arange(dialogues), lengths)
    labels = rng.integers(0, classes, len(dialogue))
    return rng, labels, dialogue


def _predict(rng, labels, accuracy, seeds=3, classes=4):
    """(S, N) predictions that are right with probability ``accuracy``, wrong uniformly otherwise."""
    right = rng.random((seeds, len(labels))) < accuracy
    wrong = (labels + rng.integers(1, classes, (seeds, len(labels)))) % classes
    return np.where(right, labels, wrong)


def test_metric_from_confusion_matches_sklearn():
    rng = np.random.default_rng(3)
    labels, predictions = rng.integers(0, 5, 300), rng.integers(0, 4, 300)  # class 4 is never predicted
    confusion = confusion_matrix(labels, predictions, labels=range(5))
    assert metric_from_confusion(confusion, "accuracy") == pytest.approx(accuracy_score(labels, predictions))
    for metric, average in (("weighted_f1", "weighted"), ("macro_f1", "macro")):
        expected = f1_score(labels, predictions, labels=range(5), average=average, zero_division=0)
        assert metric_from_confusion(confusion, metric) == pytest.approx(expected)


def test_bootstrap_finds_no_difference_between_identical_recipes():
    rng, labels, dialogue = _test_set()
    predictions = _predict(rng, labels, 0.6)
    outcome = paired_bootstrap(labels, predictions, predictions.copy(), dialogue, num_classes=4)
    assert outcome.difference == 0.0
    assert outcome.p_value == 1.0


def test_bootstrap_detects_a_planted_difference_and_not_noise():
    rng, labels, dialogue = _test_set()
    reference = _predict(rng, labels, 0.5)
    better = _predict(rng, labels, 0.7)
    planted = paired_bootstrap(labels, better, reference, dialogue, num_classes=4)
    assert planted.difference > 0.1
    assert planted.p_value < 0.01
    same_quality = _predict(rng, labels, 0.5)  # different predictions, same accuracy: not significant
    noise = paired_bootstrap(labels, same_quality, reference, dialogue, num_classes=4)
    assert noise.p_value > 0.05
    worse = paired_bootstrap(labels, reference, better, dialogue, num_classes=4)  # two-sided
    assert worse.difference == pytest.approx(-planted.difference)
    assert worse.p_value < 0.01


def test_wilcoxon_over_seeds():
    assert wilcoxon_over_seeds(np.array([0.5, 0.6, 0.7]), np.array([0.5, 0.6, 0.7])).p_value == 1.0
    scores = np.linspace(0.5, 0.6, 12)
    assert wilcoxon_over_seeds(scores + 0.05, scores).p_value < 0.01


def test_seed_key_ignores_labels_but_not_settings():
    registry = get_registry()
    base = prepare(registry, recipe="bigru-concat", dataset="synthetic", overrides=["dataset.train_dialogues=4"])
    more_seeds = prepare(registry, recipe="bigru-concat", dataset="synthetic", overrides=["dataset.train_dialogues=4"],
                         flags={"seeds": 5})
    other_lr = prepare(registry, recipe="bigru-concat", dataset="synthetic",
                       overrides=["dataset.train_dialogues=4", "training.lr=0.5"])
    code = code_parts([base.config], registry)

    def key(prepared, seed=0, device="cpu"):
        return seed_key(prepared.config, prepared.corpus, seed, device, code).key

    assert key(more_seeds) == key(base)
    assert key(other_lr) != key(base)
    assert key(base, seed=1) != key(base)
    assert key(base, device="cuda") != key(base)
    # Seed 3 of a range starting at 0 is seed 3 of a range starting at 3: work can be split by seed.
    from_three = prepare(registry, recipe="bigru-concat", dataset="synthetic",
                         overrides=["dataset.train_dialogues=4", "training.seed=3"])
    assert key(from_three, seed=3) == key(base, seed=3)


def test_compare_writes_tables_and_plots_and_resumes(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "bigru-concat", "early-fusion", "--seeds", "2", "--epochs", "1", "--no-track",
            "--out", str(out), "--tsne", "early-fusion", *TINY]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    first = capsys.readouterr().out
    assert "reused" not in first
    markdown = (out / "comparison.md").read_text()
    assert markdown.splitlines()[0].startswith("| model | neutral ACC | neutral F1 |")
    assert "| bigru-concat |" in markdown and "| early-fusion |" in markdown
    assert "paired bootstrap over test dialogues" in markdown
    assert "\\begin{tabular}" in (out / "comparison.tex").read_text()
    csv = (out / "comparison.csv").read_text().splitlines()
    assert len(csv) == 3 and "w-F1 mean" in csv[0] and csv[0].endswith(",p,Δw-F1 95% CI low,Δw-F1 95% CI high,"
                                                                         "params (M)")
    counted = json.loads(next(out.glob("*-early-fusion/results.json")).read_text())["parameters"]["trainable"]
    row = next(line for line in csv if line.startswith("early-fusion,"))
    assert float(row.rsplit(",", 1)[1]) == pytest.approx(counted / 1e6, abs=1e-4)  # the run's own count
    for name in ("per_class_f1", "confusion_matrices", "tsne_early-fusion"):
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.pdf").stat().st_size > 1000
    assert not (out / "tsne_bigru-concat.png").exists()
    # Rerun with one more seed: the two finished seeds of each recipe are reused, only seed 2 trains.
    with pytest.raises(SystemExit) as stop:
        main([*argv[:3], "--seeds", "3", *argv[5:]])
    assert stop.value.code == 0
    second = capsys.readouterr().out
    assert second.count("reused from the seed cache") == 4
    assert "seed 2: selected epoch 1" in second


def test_compare_reports_bad_arguments(capsys):
    for argv, message in (
        (["compare", "bigru-concat", "no-such-recipe"], "no-such-recipe"),
        (["compare", "bigru-concat", "bigru-concat"], "named once"),
        (["compare", "bigru-concat", "--reference", "sdt"], "not one of the compared"),
        (["compare", "bigru-concat", "--significance", "t-test"], "t-test"),
        (["compare", "bigru-concat", "--tsne", "sdt"], "not compared"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        assert message in capsys.readouterr().err


def test_compare_with_published_rows(tmp_path):
    out = tmp_path / "cmp"
    with pytest.raises(SystemExit) as stop:
        main(["compare", "bigru-concat", "--seeds", "1", "--epochs", "1", "--no-track", "--out", str(out),
              "--tsne", "none", "--with-published", *TINY])
    assert stop.value.code == 0
    markdown = (out / "comparison.md").read_text()
    summer = next(line for line in markdown.splitlines() if line.startswith("| SUMMER (published) |"))
    assert "69.81" in summer and "68.78" in summer  # Table III: the student's w-F1 and w-ACC on MELD
    assert "| MultiEMO (published) |" in markdown and "not measured here" in markdown
    assert "**" not in summer  # bold marks only measured values


def test_compare_paper_protocol_with_wilcoxon_says_so(tmp_path):
    out = tmp_path / "cmp"
    with pytest.raises(SystemExit) as stop:
        main(["compare", "bigru-concat", "early-fusion", "--seeds", "2", "--epochs", "1", "--no-track",
              "--out", str(out), "--tsne", "none", "--protocol", "paper", "--significance", "wilcoxon", *TINY])
    assert stop.value.code == 0
    note = (out / "comparison.md").read_text()
    assert "Wilcoxon signed-rank test over the per-seed w-F1" in note
    assert "epoch chosen on test" in note and "not an unbiased estimate" in note
