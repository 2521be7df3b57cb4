"""Logistic regression on frozen embeddings: the baseline, and the head's starting point."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from medops.errors import DataError
from medops.model.encoder import embed
from medops.recipe import Recipe


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


def fit_probe_on_rows(
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[dict[str, str]],
    classes: Sequence[str],
    recipe: Recipe,
) -> LogisticRegression:
    """The recipe's logistic head on ``rows``' embeddings: the baseline, the head's
    initialisation and its refit all use this, so they differ only in the encoder."""
    features = embed(encoder, tokenizer, [r["text"] for r in rows], recipe.model.max_length)
    labels = [r["label"] for r in rows]
    return fit_probe(features, labels, classes, recipe.train.probe_c, recipe.seed, balanced=True)
