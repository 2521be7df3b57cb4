"""Classification metrics the gate and the report read: accuracy and P/R/F1 at every level.

sklearn gives the reported numbers; :func:`label_scores` gives the same summary from
confusion-cell counts, vectorised, so bootstrap resamples and slices are scored without
calling sklearn once per resample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from medops.errors import DataError
from medops.evaluate.intervals import RowScores


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]
) -> dict[str, Any]:
    """Summary numbers (flat floats) plus per-class P/R/F1/support and the confusion matrix."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if not y_true:
        raise DataError("no rows to evaluate: the test split is empty")
    labels = list(classes)
    summary: dict[str, float] = {"accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        summary[f"{average}_precision"] = float(p)
        summary[f"{average}_recall"] = float(r)
        summary[f"{average}_f1"] = float(f)
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    per_class = {
        name: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, name in enumerate(labels)
    }
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    return {"summary": summary, "per_class": per_class, "confusion": np.asarray(matrix).tolist()}


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, 0 where the denominator is 0 (sklearn's zero_division=0)."""
    numerator, denominator = np.broadcast_arrays(
        np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    )
    return np.divide(numerator, denominator, out=np.zeros(numerator.shape), where=denominator > 0)


def summary_from_confusion(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """The ``summary`` of :func:`classification_metrics` from confusion counts.

    ``confusion`` is ``(..., L + 1, L + 1)``, true class by predicted class, leading axes
    kept (one per resample). The last column holds answers outside the L classes: they are
    wrong for accuracy and recall but no class's prediction, as sklearn counts with
    ``labels=``; the last row (a true label outside the classes) must be empty.
    """
    cells = np.asarray(confusion, dtype=float)
    tp = np.diagonal(cells[..., :-1, :-1], axis1=-2, axis2=-1)
    predicted = cells[..., :-1, :-1].sum(axis=-2)
    actual = cells[..., :-1, :].sum(axis=-1)
    per_class = {
        "precision": ratio(tp, predicted),
        "recall": ratio(tp, actual),
        "f1": ratio(2 * tp, predicted + actual),
    }
    hits, said, support = tp.sum(axis=-1), predicted.sum(axis=-1), actual.sum(axis=-1)
    summary = {"accuracy": ratio(hits, cells.sum(axis=(-2, -1)))}
    micro = {
        "precision": ratio(hits, said),
        "recall": ratio(hits, support),
        "f1": ratio(2 * hits, said + support),
    }
    for name, values in per_class.items():
        summary[f"macro_{name}"] = values.mean(axis=-1)
        summary[f"micro_{name}"] = micro[name]
        summary[f"weighted_{name}"] = ratio((values * actual).sum(axis=-1), support)
    return summary


def label_scores(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> RowScores:
    """Each row as its one confusion cell, so any resample or slice is scored by cell counts.

    A prediction outside ``classes`` (an unparseable answer) falls in the extra column.
    """
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({label for label in y_true if label not in index})
    if unknown:
        raise ValueError(f"{len(unknown)} true label(s) are not among the {len(index)} classes")
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    size = len(index) + 1
    cells = [index[t] * size + index.get(p, size - 1) for t, p in zip(y_true, y_pred, strict=True)]
    rows = len(cells)
    counts = sparse.csr_array(
        (np.ones(rows), (np.arange(rows), np.asarray(cells, dtype=int))), shape=(rows, size * size)
    )

    def metrics(totals: np.ndarray) -> dict[str, np.ndarray]:
        return summary_from_confusion(totals.reshape(*totals.shape[:-1], size, size))

    return RowScores(counts, metrics)
