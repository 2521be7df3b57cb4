"""The classifier's logistic head on embeddings: baseline, initialisation and refit alike."""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.linear_model import LogisticRegression
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from medops.model.encoder import embed
from medops.model.probe import fit_probe
from medops.tasks.classification.recipe import ClassificationRecipe


def fit_probe_on_rows(
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[dict[str, str]],
    classes: Sequence[str],
    recipe: ClassificationRecipe,
) -> LogisticRegression:
    """The recipe's logistic head on ``rows``' embeddings: the baseline, the head's
    initialisation and its refit all use this, so they differ only in the encoder."""
    features = embed(encoder, tokenizer, [r["text"] for r in rows], recipe.model.max_length)
    labels = [r["label"] for r in rows]
    return fit_probe(features, labels, classes, recipe.train.probe_c, recipe.seed, balanced=True)
