"""Logistic regression on frozen embeddings: the baseline, and the head's starting point."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from medops.errors import DataError


def fit_probe(
    features: np.ndarray,
    labels: Sequence[str],
    classes: Sequence[str],
    c: float,
    seed: int,
    balanced: bool = False,
) -> LogisticRegression:
    """Multinomial L2 logistic regression; ``classes`` fixes the column order."""
    index = {name: i for i, name in enumerate(classes)}
    missing = sorted(set(labels) - set(index))
    if missing:
        raise DataError(f"labels {missing} are not in the class list {list(classes)}")
    y = np.array([index[name] for name in labels])
    probe = LogisticRegression(
        C=c,
        max_iter=5000,
        random_state=seed,
        class_weight="balanced" if balanced else None,
    )
    probe.fit(features, y)
    if list(probe.classes_) != list(range(len(classes))):
        absent = [classes[i] for i in range(len(classes)) if i not in set(probe.classes_)]
        raise DataError(f"classes {absent} have no training rows; the head needs every class")
    return probe
