"""Split kept rows: train-role rows -> train/validation (stratified), test-role -> test.

Test rows come from their own source and are never mixed into training or selection. When
train rows carry patient ids, train/validation are split by patient: one patient's notes
share wording and label, so a row-level split would let validation grade memorised
patients. Rows without a patient id are each their own group. The test source is never
altered here; ``leakage`` reports its patients that also appear in training.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Hashable, Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from medops.data.ingest import Record
from medops.errors import MedopsError

SPLITS = ("train", "validation", "test")


class SplitError(MedopsError, ValueError):
    """The kept rows cannot be split as the recipe asks."""


def _check_classes(
    rows: list[Record], groups: Sequence[Hashable], classes: list[str], unit: str
) -> None:
    """Every class needs 2 groups (rows, or patients) to be on both sides of the split."""
    if len(classes) < 2:
        raise SplitError(
            f"{len(classes)} class(es) left after cleaning and class selection; a classifier "
            "needs 2. Check data.columns, data.min_chars and data.classes"
        )
    spread: dict[str, set[Hashable]] = defaultdict(set)
    for row, group in zip(rows, groups, strict=True):
        spread[row.label].add(group)
    thin = sorted(c for c in classes if len(spread[c]) < 2)
    if thin:
        raise SplitError(
            f"class(es) {thin} have fewer than 2 train {unit} after cleaning; a stratified "
            "split needs 2. Drop them from data.classes or lower data.top_k_classes"
        )


def _split_by_row(
    rows: list[Record], classes: list[str], fraction: float, seed: int
) -> tuple[list[Record], list[Record]]:
    _check_classes(rows, range(len(rows)), classes, "rows")
    n_validation = math.ceil(len(rows) * fraction)  # as sklearn rounds
    if n_validation < len(classes) or len(rows) - n_validation < len(classes):
        raise SplitError(
            f"{len(rows)} train rows with validation_fraction {fraction} cannot hold "
            f"every one of the {len(classes)} classes on both sides; add data or change "
            "data.validation_fraction"
        )
    return train_test_split(
        rows, test_size=fraction, random_state=seed, stratify=[r.label for r in rows]
    )


def _split_by_patient(
    rows: list[Record], classes: list[str], fraction: float, seed: int
) -> tuple[list[Record], list[Record]]:
    """The first of round(1/fraction) stratified group folds that has every class on both
    sides becomes validation, so validation holds about 1/round(1/fraction) of the rows."""
    groups = [f"patient:{r.patient}" if r.patient else f"row:{r.id}" for r in rows]
    _check_classes(rows, groups, classes, "patients")
    n_folds = round(1 / fraction)
    if len(set(groups)) < n_folds:
        raise SplitError(
            f"{len(set(groups))} train patients cannot be split {n_folds} ways for "
            f"validation_fraction {fraction}; add data or raise data.validation_fraction"
        )
    labels = [r.label for r in rows]
    folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # "least populated class has fewer members than n_splits": the class check below decides
        warnings.simplefilter("ignore", UserWarning)
        for train, validation in folds.split(np.zeros(len(rows)), labels, groups):
            if all({labels[i] for i in side} >= set(classes) for side in (train, validation)):
                return [rows[i] for i in train], [rows[i] for i in validation]
    raise SplitError(
        f"no split of the {len(set(groups))} train patients puts every class in both train and "
        "validation; add data, raise data.validation_fraction or drop rare classes"
    )


def split_rows(
    records: list[Record], classes: list[str], fraction: float, seed: int
) -> dict[str, list[Record]]:
    """Seeded, stratified split (by patient when train rows have patient ids); each split's
    rows sorted by id for stable files."""
    train_rows = sorted((r for r in records if r.role == "train"), key=lambda r: r.id)
    test_rows = sorted((r for r in records if r.role == "test"), key=lambda r: r.id)
    by_patient = any(r.patient for r in train_rows)
    split = _split_by_patient if by_patient else _split_by_row
    train, validation = split(train_rows, classes, fraction, seed)
    return {
        "train": sorted(train, key=lambda r: r.id),
        "validation": sorted(validation, key=lambda r: r.id),
        "test": test_rows,
    }


def leakage(splits: dict[str, list[Record]]) -> dict[str, int]:
    """Patients per split, and those in more than one with their rows: the manifest's proof
    that validation and test grade unseen patients (rows without a patient id are not
    counted)."""
    patients = {name: {r.patient for r in splits[name] if r.patient} for name in SPLITS}
    seen: dict[str, int] = defaultdict(int)
    for members in patients.values():
        for patient in members:
            seen[patient] += 1
    shared = {patient for patient, n in seen.items() if n > 1}
    report = {f"patients_{name}": len(patients[name]) for name in SPLITS}
    report["patients_in_two_splits"] = len(shared)
    rows = (row for name in SPLITS for row in splits[name])
    report["rows_of_shared_patients"] = sum(row.patient in shared for row in rows)
    return report
