"""Classification metrics over real (unpadded) utterances, computed with scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

__all__ = ["classification_metrics"]


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """accuracy, weighted F1, macro F1, per-class accuracy (= recall, the papers' "ACC") and F1, confusion.

    ``labels`` and ``predictions`` are flat arrays of class ids for real utterances only. The
    confusion matrix is rows = true class, columns = predicted class.
    """
    ids = np.arange(len(classes))
    confusion = confusion_matrix(labels, predictions, labels=ids)
    support = confusion.sum(axis=1)
    per_class_accuracy = np.divide(np.diag(confusion), support, out=np.zeros(len(classes)), where=support > 0)
    per_class_f1 = f1_score(labels, predictions, labels=ids, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "weighted_f1": float(f1_score(labels, predictions, labels=ids, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(labels, predictions, labels=ids, average="macro", zero_division=0)),
        "per_class": {
            name: {"accuracy": float(per_class_accuracy[i]), "f1": float(per_class_f1[i]), "support": int(support[i])}
            for i, name in enumerate(classes)
        },
        "confusion": confusion.tolist(),
    }
