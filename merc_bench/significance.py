"""Paired significance tests between two recipes evaluated on the same test set with the same seeds.

* ``bootstrap`` (default): a paired bootstrap over test **dialogues** (Koehn, EMNLP 2004;
  Berg-Kirkpatrick et al., EMNLP 2012), with every seed's predictions pooled. Utterances of one
  dialogue share speakers and context, so resampling whole dialogues (a cluster bootstrap) keeps
  their correlation; resampling single utterances would overstate significance. Each resample
  draws the test dialogues with replacement, pools both recipes' predictions on them over all
  seeds, and computes the metric difference. The two-sided p-value is
  ``min(1, 2 · min(P(δ* ≤ 0), P(δ* ≥ 0)))`` from the resampled differences δ*, with the +1
  correction of Davison & Hinkley (1997) so it is never exactly 0.
* ``wilcoxon``: the Wilcoxon signed-rank test over the per-seed metric pairs. It ignores the
  variation of the test set and needs many seeds: with 5 seeds the smallest possible two-sided
  p-value is 0.0625, so nothing can be significant at 0.05.

Both take the metric from the confusion counts (weighted F1 as sklearn computes it, accuracy, or
macro F1), so a resample costs one matrix product rather than a call to sklearn.

Beside either p-value, :func:`seed_difference_interval` gives a 95 % confidence interval of the
difference from the paired per-seed scores (a Student t interval; its docstring says why).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PairedTest", "paired_bootstrap", "wilcoxon_over_seeds", "seed_difference_interval", "metric_from_confusion",
           "METHODS"]

METHODS = ("bootstrap", "wilcoxon")


@dataclass(frozen=True)
class PairedTest:
    """The observed difference (candidate − reference) of a metric and its two-sided p-value."""

    difference: float
    p_value: float
    method: str


def metric_from_confusion(confusion: np.ndarray, metric: str) -> np.ndarray:
    """Metric of confusion matrices (..., C, C) with rows = true class; sklearn's zero_division=0."""
    true_positive = np.diagonal(confusion, axis1=-2, axis2=-1).astype(np.float64)  # (..., C)
    support = confusion.sum(axis=-1).astype(np.float64)  # (..., C) true counts
    predicted = confusion.sum(axis=-2).astype(np.float64)  # (..., C)
    total = support.sum(axis=-1)  # (...)
    if metric == "accuracy":
        return true_positive.sum(axis=-1) / np.maximum(total, 1)
    denominator = support + predicted  # 2·TP + FP + FN
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    if metric == "weighted_f1":
        return (f1 * support).sum(axis=-1) / np.maximum(total, 1)
    if metric == "macro_f1":
        return f1.mean(axis=-1)
    raise ValueError(f"unknown metric {metric!r}; use accuracy, weighted_f1 or macro_f1")


def _dialogue_confusions(labels: np.ndarray, predictions: np.ndarray, dialogue: np.ndarray,
                         num_classes: int) -> np.ndarray:
    """Confusion counts per test dialogue, summed over seeds: (D, C·C). predictions is (S, N)."""
    dialogues = int(dialogue.max()) + 1
    cell = labels[None, :] * num_classes + predictions  # (S, N) flat confusion cell of each prediction
    index = dialogue[None, :] * num_classes * num_classes + cell  # (S, N)
    counts = np.bincount(index.ravel(), minlength=dialogues * num_classes * num_classes)
    return counts.reshape(dialogues, num_classes * num_classes)


def paired_bootstrap(
    labels: np.ndarray,
    candidate: np.ndarray,
    reference: np.ndarray,
    dialogue: np.ndarray,
    *,
    num_classes: int,
    metric: str = "weighted_f1",
    resamples: int = 2000,
    seed: int = 0,
) -> PairedTest:
    """Paired cluster bootstrap over test dialogues; ``candidate``/``reference`` are (S, N) predictions.

    ``labels`` (N,) and ``dialogue`` (N,) (each utterance's test-dialogue index) are shared; both
    recipes must have been run with the same seeds so the pooled predictions pair up.
    """
    candidate, reference = np.atleast_2d(candidate), np.atleast_2d(reference)
    if candidate.shape != reference.shape or candidate.shape[1] != labels.shape[0]:
        raise ValueError(f"prediction shapes differ: {candidate.shape} vs {reference.shape} for {labels.shape[0]} labels")
    shape = (num_classes, num_classes)
    per_dialogue_a = _dialogue_confusions(labels, candidate, dialogue, num_classes)  # (D, C·C)
    per_dialogue_b = _dialogue_confusions(labels, reference, dialogue, num_classes)
    observed = float(metric_from_confusion(per_dialogue_a.sum(0).reshape(shape), metric)
                     - metric_from_confusion(per_dialogue_b.sum(0).reshape(shape), metric))
    rng = np.random.default_rng(seed)
    dialogues = per_dialogue_a.shape[0]
    # How often each dialogue is drawn in each resample: (R, D); then all resampled confusions at once.
    draws = rng.multinomial(dialogues, np.full(dialogues, 1.0 / dialogues), size=resamples).astype(np.float64)
    resampled_a = (draws @ per_dialogue_a).reshape(resamples, *shape)  # (R, C, C)
    resampled_b = (draws @ per_dialogue_b).reshape(resamples, *shape)
    differences = metric_from_confusion(resampled_a, metric) - metric_from_confusion(resampled_b, metric)  # (R,)
    at_most_zero = (np.sum(differences <= 0) + 1) / (resamples + 1)
    at_least_zero = (np.sum(differences >= 0) + 1) / (resamples + 1)
    return PairedTest(observed, float(min(1.0, 2 * min(at_most_zero, at_least_zero))), "bootstrap")


def wilcoxon_over_seeds(candidate_scores: np.ndarray, reference_scores: np.ndarray) -> PairedTest:
    """Wilcoxon signed-rank test over per-seed scores (same seeds, same order); p = 1 when all pairs tie."""
    from scipy.stats import wilcoxon

    candidate_scores, reference_scores = np.asarray(candidate_scores), np.asarray(reference_scores)
    differences = candidate_scores - reference_scores
    observed = float(differences.mean())
    if np.allclose(differences, 0):
        return PairedTest(observed, 1.0, "wilcoxon")
    return PairedTest(observed, float(wilcoxon(candidate_scores, reference_scores).pvalue), "wilcoxon")


def seed_difference_interval(candidate_scores: np.ndarray, reference_scores: np.ndarray, *,
                             level: float = 0.95) -> tuple[float, float] | None:
    """Confidence interval of the mean per-seed difference (candidate − reference); None for one seed.

    The scores are paired by seed (same seeds, same order), so each seed gives one difference
    d_s, and the interval is the paired Student t interval ``mean(d) ± t_{(1+level)/2, n−1} ·
    sd(d) / √n`` (sd with ddof = 1). Why this one: it is the textbook interval for a handful of
    paired measurements, and it answers what a reader of a seed table asks — how much the gap
    moves when the models are retrained. It measures training variation only, not the sampling of
    the test set (the bootstrap's p-value measures that), so it can be narrow where the p-value is
    large, and it is centred on the mean per-seed difference, which can differ a little from the
    bootstrap's Δ on pooled predictions. With one seed there is no spread to estimate: None (shown
    as "n/a"), never an invented interval. Identical differences give a zero-width interval.
    """
    from scipy.stats import t

    differences = np.asarray(candidate_scores, dtype=np.float64) - np.asarray(reference_scores, dtype=np.float64)
    if differences.ndim != 1 or len(differences) < 2:
        return None
    mean = float(differences.mean())
    half_width = float(t.ppf(0.5 + level / 2, df=len(differences) - 1) * differences.std(ddof=1)
                       / np.sqrt(len(differences)))
    return mean - half_width, mean + half_width
