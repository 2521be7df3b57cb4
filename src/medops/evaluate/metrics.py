"""Classification metrics the gate and the report read: accuracy and P/R/F1 at every level."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from medops.errors import DataError


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
