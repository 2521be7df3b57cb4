"""Split kept rows: train-role rows -> train/validation (stratified), test-role -> test.

Test rows come from their own source and are never mixed into training or selection.
"""

from __future__ import annotations

import math
from collections import Counter

from sklearn.model_selection import train_test_split

from medops.data.ingest import Record

SPLITS = ("train", "validation", "test")


class SplitError(ValueError):
    """The kept rows cannot be split as the recipe asks."""


def _check_stratifiable(train_rows: list[Record], classes: list[str], fraction: float) -> None:
    if len(classes) < 2:
        raise SplitError(
            f"{len(classes)} class(es) left after cleaning and class selection; a classifier "
            "needs 2. Check data.columns, data.min_chars and data.classes"
        )
    counts = Counter(r.label for r in train_rows)
    thin = sorted(c for c in classes if counts[c] < 2)
    if thin:
        raise SplitError(
            f"class(es) {thin} have fewer than 2 train rows after cleaning; a stratified "
            "split needs 2. Drop them from data.classes or lower data.top_k_classes"
        )
    n_validation = math.ceil(len(train_rows) * fraction)  # as sklearn rounds
    if n_validation < len(classes) or len(train_rows) - n_validation < len(classes):
        raise SplitError(
            f"{len(train_rows)} train rows with validation_fraction {fraction} cannot hold "
            f"every one of the {len(classes)} classes on both sides; add data or change "
            "data.validation_fraction"
        )


def split_rows(
    records: list[Record], classes: list[str], fraction: float, seed: int
) -> dict[str, list[Record]]:
    """Seeded, stratified split; each split's rows sorted by id for stable files."""
    train_rows = sorted((r for r in records if r.role == "train"), key=lambda r: r.id)
    test_rows = sorted((r for r in records if r.role == "test"), key=lambda r: r.id)
    _check_stratifiable(train_rows, classes, fraction)
    train, validation = train_test_split(
        train_rows,
        test_size=fraction,
        random_state=seed,
        stratify=[r.label for r in train_rows],
    )
    return {
        "train": sorted(train, key=lambda r: r.id),
        "validation": sorted(validation, key=lambda r: r.id),
        "test": test_rows,
    }
