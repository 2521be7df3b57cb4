"""The classifier's logistic head on embeddings: baseline, initialisation and refit alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
from sklearn.linear_model import LogisticRegression
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from medops.model.encoder import embed
from medops.model.probe import fit_probe
from medops.model.side_inputs import Context, SideInputs
from medops.tasks.classification.recipe import ClassificationRecipe


def fit_probe_on_rows(
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[dict[str, Any]],
    classes: Sequence[str],
    recipe: ClassificationRecipe,
    side: SideInputs | None = None,
) -> LogisticRegression:
    """The recipe's logistic head on ``rows``' embeddings (and their context's ``side``
    columns): the baseline, the head's initialisation and its refit all use this, so they
    differ only in the encoder."""
    features = embed(encoder, tokenizer, [r["text"] for r in rows], recipe.model.max_length)
    if side is not None:
        features = np.hstack([features, side.transform(contexts_of(rows))])
    labels = [r["label"] for r in rows]
    return fit_probe(features, labels, classes, recipe.train.probe_c, recipe.seed, balanced=True)


def contexts_of(rows: Sequence[Mapping[str, Any]]) -> list[Context]:
    """Each prepared row's point-in-time features (None: prepared without features)."""
    return [cast(Context, row.get("context")) for row in rows]


def side_inputs(rows: Sequence[Mapping[str, Any]]) -> SideInputs | None:
    """Side inputs fitted on the training ``rows`` when prepare joined context to them
    (a recipe with ``features:``); None for text-only rows."""
    contexts = contexts_of(rows)
    return SideInputs.fit(contexts) if any(c is not None for c in contexts) else None
